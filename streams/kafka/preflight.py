"""Start-up checks that turn a secured cluster's refusals into one line each.

aiokafka reports a wrong password or an untrusted certificate as ``Unable to bootstrap``,
and a missing ACL only once a record is in flight. Before a worker builds its clients it
asks librdkafka instead, which says what went wrong:

* :func:`check_connection`: authentication and TLS. A wrong password is
  :class:`~streams.errors.KafkaAuthenticationFailed` naming the mechanism and the
  listener; a certificate that does not verify is :class:`~streams.errors.KafkaTLSFailed`
  naming which certificate and which setting.
* :func:`check_access`: the authorized operations on the input topic, the consumer group,
  the four output topics and the state topics (:func:`required_access`). A missing ACL is
  :class:`~streams.errors.KafkaAuthorizationFailed` naming the resource, the operation and
  the ``kafka-acls.sh`` command that adds it. The worker exits before it consumes anything.

A broker that is simply not reachable is not an error here: the worker's own bounded
waits report it, as they always did. A broker without an authorizer reports no
operations, and the access check then has nothing to check.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException, TopicCollection

from streams.errors import KafkaAuthenticationFailed, KafkaAuthorizationFailed, KafkaTLSFailed
from streams.kafka import clients
from streams.settings import KafkaSettings, PipelineSettings, Settings

__all__ = [
    "Access",
    "check_access",
    "check_connection",
    "preflight_access",
    "preflight_connection",
    "required_access",
]

log = logging.getLogger("streams.kafka.preflight")
#: Where a probe client's own librdkafka logs go: nowhere. Its refusals are expected, and
#: this module turns them into one line each.
_SILENT = logging.getLogger("streams.kafka.preflight.librdkafka")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False

_RETRY_GROUP = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
}
# librdkafka prefixes a broker's name and suffixes the state it failed in.
_BROKER_PREFIX = re.compile(r"^\S+://\S+?: ")
_STATE_SUFFIX = re.compile(r" \(after \d+ms in state \w+\)$")


@dataclass(frozen=True)
class Access:
    """One operation a pipeline needs on one topic or group, and what for."""

    kind: Literal["topic", "group", "transactional-id"]
    name: str
    operation: Literal["READ", "WRITE"]
    purpose: str

    def acl_command(self, kafka: KafkaSettings) -> str:
        principal = f"User:{kafka.username}" if kafka.username else "User:<principal>"
        return (
            f"kafka-acls.sh --bootstrap-server {kafka.bootstrap_servers} --add "
            f"--allow-principal {principal} --operation {self.operation.title()} "
            f"--{self.kind} {self.name}"
        )


def required_access(settings: Settings, pipeline: PipelineSettings) -> list[Access]:
    """Every ACL a worker of ``pipeline`` needs (READ and WRITE both imply DESCRIBE)."""
    group = settings.group_id(pipeline.name)
    needed = [
        Access("topic", pipeline.input_topic, "READ", "the input"),
        Access("group", group, "READ", "the consumer group's offsets"),
    ]
    for route in ("valid", "invalid", "over-budget", "dlq"):
        needed.append(Access("topic", pipeline.topic(route), "WRITE", f"the {route} outcomes"))
    state = []
    if settings.worker.cache:
        state.append(("cache", "the result cache"))
    budgets = settings.budgets
    if budgets.spend_cap_usd is not None or budgets.tenant_spend_cap_usd is not None:
        state.append(("spend", "the spend ledger"))
    for suffix, purpose in state:
        for operation in ("READ", "WRITE"):  # the cache and ledger read back what they write
            needed.append(Access("topic", pipeline.topic(suffix), operation, purpose))
    transactional_id = settings.transactional_id(pipeline.name)
    if transactional_id is not None:
        needed.append(
            Access("transactional-id", transactional_id, "WRITE", "exactly-once transactions")
        )
    return needed


def _clean(text: str) -> str:
    return _STATE_SUFFIX.sub("", _BROKER_PREFIX.sub("", text))


def check_connection(kafka: KafkaSettings, timeout_s: float = 15.0) -> None:
    """Raise a one-line error when the cluster refuses this client's credentials or TLS."""
    if kafka.security_protocol == "PLAINTEXT":
        return
    errors: list[KafkaError] = []
    admin = clients.admin_client(kafka, {"error_cb": errors.append, "log_level": 0})
    listener = clients.describe(kafka)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=1.0)
            return
        except KafkaException:
            admin.poll(0.1)  # serves error_cb: the reason is only in the callbacks
        _raise_refusal(kafka, listener, errors)


def _raise_refusal(kafka: KafkaSettings, listener: str, errors: list[KafkaError]) -> None:
    for error in errors:
        if error.code() == KafkaError._AUTHENTICATION:
            mechanism = kafka.effective_sasl_mechanism
            if mechanism == "OAUTHBEARER":
                raise KafkaAuthenticationFailed(
                    f"SASL OAUTHBEARER authentication as user {kafka.username!r} failed on the "
                    f"{listener} ({_clean(error.str())}); check kafka.username and "
                    "kafka.password (the OAuth client id and secret) and "
                    "kafka.oauth_token_endpoint",
                    listener=listener,
                    mechanism=mechanism,
                )
            raise KafkaAuthenticationFailed(
                f"SASL {mechanism} authentication as user {kafka.username!r} failed on the "
                f"{listener}: the broker rejected the credentials; check kafka.username and "
                "kafka.password (STREAMS_KAFKA__PASSWORD)",
                listener=listener,
                mechanism=mechanism,
            )
        if error.code() == KafkaError._SSL:
            raise _tls_error(kafka, listener, _clean(error.str()))
        # The broker's alert about our certificate arrives after the handshake, as a
        # failed receive.
        if error.code() == KafkaError._TRANSPORT and "SSL routines" in error.str():
            raise _tls_error(kafka, listener, _clean(error.str()))


def _tls_error(kafka: KafkaSettings, listener: str, reason: str) -> KafkaTLSFailed:
    reason = reason.removeprefix("SSL handshake failed: ")
    # librdkafka's own advice names its property and a Debian package; ours names ours.
    reason = reason.split(", verify that ssl.ca.location", 1)[0]
    if "certificate verify failed" in reason or "broker certificate" in reason:
        ca = f"kafka.ssl_cafile={kafka.ssl_cafile}" if kafka.ssl_cafile else "the system CAs"
        hint = (
            "the broker's certificate does not name that address; connect by a name it has"
            if "mismatch" in reason
            else "point kafka.ssl_cafile at the CA that signed the broker's certificate"
        )
        return KafkaTLSFailed(
            f"TLS handshake with the {listener} failed: the broker's certificate did not "
            f"verify against {ca} ({reason}); {hint}",
            listener=listener,
            certificate="broker",
        )
    reason = reason.removeprefix("Receive failed: ")
    if kafka.ssl_certfile is None:
        fix = "none is configured: set kafka.ssl_certfile and kafka.ssl_keyfile"
    else:
        fix = (
            f"kafka.ssl_certfile={kafka.ssl_certfile} was refused: it must be signed by a CA "
            "the broker trusts"
        )
    return KafkaTLSFailed(
        f"TLS handshake with the {listener} failed: the broker wants a client certificate "
        f"and {fix} ({reason})",
        listener=listener,
        certificate="client",
    )


def _granted(results: dict[str, Any], name: str) -> set[str] | None:
    """The operations granted on ``name``; None when the broker reports none (no authorizer)."""
    try:
        described = results[name].result(timeout=30)
    except KafkaException as exc:
        code = exc.args[0].code() if exc.args else None
        if code in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED):
            return set()  # not even DESCRIBE
        if code == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return None  # created later by whoever owns it; creating it is checked there
        raise
    ops = described.authorized_operations
    return None if ops is None else {op.name for op in ops}


def check_access(kafka: KafkaSettings, needed: list[Access], timeout_s: float = 15.0) -> None:
    """Raise a one-line error naming the first ACL in ``needed`` the cluster does not grant."""
    admin = clients.admin_client(kafka, {"log_level": 0})
    topics = sorted({a.name for a in needed if a.kind == "topic"})
    granted: dict[tuple[str, str], set[str] | None] = {}
    try:
        described = admin.describe_topics(
            TopicCollection(topics), include_authorized_operations=True, request_timeout=timeout_s
        )
        for topic in topics:
            granted[("topic", topic)] = _granted(described, topic)
        for group in sorted({a.name for a in needed if a.kind == "group"}):
            granted[("group", group)] = _group_granted(admin, group, timeout_s)
        for tid in sorted({a.name for a in needed if a.kind == "transactional-id"}):
            granted[("transactional-id", tid)] = _transactional_granted(kafka, tid, timeout_s)
    except KafkaException as exc:
        # Not a refusal but an unreachable or busy cluster: the worker's own bounded waits
        # report that, as they did before this check existed.
        log.warning("could not check the ACLs on the %s (%s)", clients.describe(kafka), exc)
        return
    missing = [
        a
        for a in needed
        if (ops := granted[(a.kind, a.name)]) is not None and a.operation not in ops
    ]
    if not missing:
        return
    first = missing[0]
    who = f"user {kafka.username!r}" if kafka.username else "this client"
    more = ""
    if len(missing) > 1:
        rest = ", ".join(f"{a.operation} {a.kind} {a.name}" for a in missing[1:])
        more = f" ({len(missing) - 1} more missing: {rest})"
    listener = clients.describe(kafka)
    raise KafkaAuthorizationFailed(
        f"{who} may not {first.operation} {first.kind} {first.name!r} ({first.purpose}) on "
        f"the {listener}; add the ACL: {first.acl_command(kafka)}{more}",
        listener=listener,
        resource=first.kind,
        name=first.name,
        operation=first.operation,
    )


def _group_granted(admin: Any, group: str, timeout_s: float) -> set[str] | None:
    # A group's coordinator may still be loading (a fresh cluster): retry that, bounded.
    deadline = time.monotonic() + timeout_s
    while True:
        results = admin.describe_consumer_groups(
            [group], include_authorized_operations=True, request_timeout=timeout_s
        )
        try:
            return _granted(results, group)
        except KafkaException as exc:
            code = exc.args[0].code() if exc.args else None
            if code not in _RETRY_GROUP or time.monotonic() > deadline:
                raise
        time.sleep(0.3)


def _transactional_granted(kafka: KafkaSettings, tid: str, timeout_s: float) -> set[str] | None:
    """{"WRITE"} when the cluster lets this client use transactional id ``tid``.

    No admin call reports a transactional id's authorized operations, so this does what
    the worker is about to do anyway: initialise a transactional producer with that id
    (which fences an older instance of the same id, as the worker's own start does). The
    broker refuses it with TRANSACTIONAL_ID_AUTHORIZATION_FAILED without WRITE on the id,
    or with CLUSTER_AUTHORIZATION_FAILED where it still wants IdempotentWrite.
    """
    # The refusal is fatal to this producer, and librdkafka prints it at level 0 (which
    # log_level cannot hide) before the one line below says the same with its fix.
    producer = clients.producer(kafka, {"transactional.id": tid, "logger": _SILENT})
    try:
        producer.init_transactions(timeout_s)
    except KafkaException as exc:
        code = exc.args[0].code() if exc.args else None
        if code == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
            return set()
        if code == KafkaError.CLUSTER_AUTHORIZATION_FAILED:
            raise KafkaAuthorizationFailed(
                f"the {clients.describe(kafka)} wants IdempotentWrite on the cluster for "
                f"exactly-once transactions; add the ACL: kafka-acls.sh --bootstrap-server "
                f"{kafka.bootstrap_servers} --add --allow-principal "
                f"User:{kafka.username or '<principal>'} --operation IdempotentWrite --cluster",
                listener=clients.describe(kafka),
                resource="cluster",
                name="kafka-cluster",
                operation="IDEMPOTENT_WRITE",
            ) from None
        raise
    # Nothing was produced: no flush (which would raise on a producer in a fatal state).
    return {"WRITE"}


async def preflight_connection(kafka: KafkaSettings) -> None:
    """:func:`check_connection` off the event loop."""
    await asyncio.to_thread(check_connection, kafka)


async def preflight_access(settings: Settings, pipeline: PipelineSettings) -> None:
    """:func:`check_access` for everything ``pipeline`` needs, off the event loop."""
    await asyncio.to_thread(check_access, settings.kafka, required_access(settings, pipeline))
