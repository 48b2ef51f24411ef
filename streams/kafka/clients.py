"""The one place that builds Kafka clients, so none of them can miss the security settings.

(The Schema Registry client is built here too, for the same reason: its credentials and
CA bundle come from ``[registry]``, never from the URL.)

Every aiokafka and confluent-kafka client the project makes comes from here: the worker,
the state stores, the admin helpers, replay, redrive, tail/explain, produce, the demo, the
devstack and the benchmark. ``tests/unit/test_kafka_clients.py`` scans the source and
fails when a client is constructed anywhere else.

A client is built from a :class:`~streams.settings.KafkaSettings`, or from a bare
``host:port`` string, which means a PLAINTEXT broker with default settings (the local dev
broker, the test harness)::

    from streams.kafka import clients

    producer = clients.producer(settings.kafka, {"enable.idempotence": True})
    consumer = clients.aio_consumer(settings.kafka, group_id="g", enable_auto_commit=False)

Options given at the call site win over the passthrough tables (``kafka.librdkafka``,
``kafka.aiokafka``), which fill in everything else: a passthrough can tune a client but
never turn off the guarantees a call site relies on, and it cannot set a key that a typed
setting owns (the settings refuse that).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.helpers import create_ssl_context
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.errors import ConfigError
from streams.kafka._oauth import ClientCredentialsTokenProvider
from streams.settings import KafkaSettings, RegistrySettings

__all__ = [
    "KafkaTarget",
    "admin_client",
    "aio_consumer",
    "aio_producer",
    "aiokafka_options",
    "as_settings",
    "consumer",
    "describe",
    "faust_app_options",
    "librdkafka_config",
    "producer",
    "schema_registry_client",
    "schema_registry_config",
]

#: What a client is built from: the settings, or a bare PLAINTEXT ``host:port`` list.
KafkaTarget = KafkaSettings | str


def as_settings(target: KafkaTarget) -> KafkaSettings:
    """``target`` as settings; a bare string is a PLAINTEXT broker with the defaults."""
    if isinstance(target, KafkaSettings):
        return target
    return KafkaSettings(bootstrap_servers=target)


def describe(target: KafkaTarget) -> str:
    """``SASL_SSL listener 127.0.0.1:9093``: where a client connects, for error messages."""
    kafka = as_settings(target)
    return f"{kafka.security_protocol} listener {kafka.bootstrap_servers}"


def librdkafka_config(
    target: KafkaTarget, options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The confluent-kafka (librdkafka) config: security, passthrough, then ``options``."""
    kafka = as_settings(target)
    # librdkafka prints its informational lines (level 6, e.g. an admin client's
    # "Purging 1 unserved events from background queue" at close) straight to stderr;
    # warnings and errors still print. The passthrough can raise it for debugging.
    config: dict[str, Any] = {"log_level": 4}
    config.update(kafka.librdkafka)
    config.update(options or {})
    config["bootstrap.servers"] = kafka.bootstrap_servers
    config["security.protocol"] = kafka.security_protocol.lower()
    mechanism = kafka.effective_sasl_mechanism
    if mechanism is not None:
        config["sasl.mechanism"] = mechanism
        secret = kafka.password.get_secret_value() if kafka.password is not None else None
        if mechanism == "OAUTHBEARER":
            config["sasl.oauthbearer.method"] = "oidc"
            config["sasl.oauthbearer.client.id"] = kafka.username
            config["sasl.oauthbearer.client.secret"] = secret
            config["sasl.oauthbearer.token.endpoint.url"] = kafka.oauth_token_endpoint
            if kafka.oauth_scope:
                config["sasl.oauthbearer.scope"] = kafka.oauth_scope
        else:
            config["sasl.username"] = kafka.username
            config["sasl.password"] = secret
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        if kafka.ssl_cafile is not None:
            config["ssl.ca.location"] = str(kafka.ssl_cafile)
        if kafka.ssl_certfile is not None:
            config["ssl.certificate.location"] = str(kafka.ssl_certfile)
        if kafka.ssl_keyfile is not None:
            config["ssl.key.location"] = str(kafka.ssl_keyfile)
        if kafka.ssl_key_password is not None:
            config["ssl.key.password"] = kafka.ssl_key_password.get_secret_value()
        config["ssl.endpoint.identification.algorithm"] = (
            "https" if kafka.ssl_check_hostname else "none"
        )
    return config


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    """The TLS context aiokafka clients use: the CA bundle, the mTLS pair, hostname checks."""
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None,
            certfile=str(kafka.ssl_certfile) if kafka.ssl_certfile else None,
            keyfile=str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None,
            password=kafka.ssl_key_password.get_secret_value() if kafka.ssl_key_password else None,
        )
    except ssl.SSLError as exc:
        files = f"kafka.ssl_cafile={kafka.ssl_cafile}"
        if kafka.ssl_certfile is not None:
            files += f", ssl_certfile={kafka.ssl_certfile}, ssl_keyfile={kafka.ssl_keyfile}"
        raise ConfigError(
            f"cannot load the TLS files ({files}): {exc.reason or exc}; "
            "they must be PEM (and the key password must match)"
        ) from None
    context.check_hostname = kafka.ssl_check_hostname
    return context


def aiokafka_options(
    target: KafkaTarget, options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The keyword arguments of an aiokafka client: security, passthrough, then ``options``."""
    kafka = as_settings(target)
    config: dict[str, Any] = dict(kafka.aiokafka)
    config.update(options or {})
    config["bootstrap_servers"] = kafka.bootstrap_servers
    config["security_protocol"] = kafka.security_protocol
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        config["ssl_context"] = ssl_context(kafka)
    mechanism = kafka.effective_sasl_mechanism
    if mechanism is not None:
        config["sasl_mechanism"] = mechanism
        if mechanism == "OAUTHBEARER":
            assert kafka.oauth_token_endpoint is not None  # the settings checked all three
            assert kafka.username is not None
            assert kafka.password is not None
            config["sasl_oauth_token_provider"] = ClientCredentialsTokenProvider(
                kafka.oauth_token_endpoint, kafka.username, kafka.password, kafka.oauth_scope
            )
        else:
            config["sasl_plain_username"] = kafka.username
            assert kafka.password is not None
            config["sasl_plain_password"] = kafka.password.get_secret_value()
    return config


def admin_client(target: KafkaTarget, options: Mapping[str, Any] | None = None) -> AdminClient:
    """A confluent-kafka admin client."""
    return AdminClient(librdkafka_config(target, options))


def consumer(target: KafkaTarget, options: Mapping[str, Any]) -> Consumer:
    """A confluent-kafka consumer; ``options`` must name a ``group.id``."""
    return Consumer(librdkafka_config(target, options))


def producer(target: KafkaTarget, options: Mapping[str, Any] | None = None) -> Producer:
    """A confluent-kafka producer."""
    return Producer(librdkafka_config(target, options))


def aio_producer(target: KafkaTarget, **options: Any) -> AIOKafkaProducer:
    """An aiokafka producer (not started)."""
    return AIOKafkaProducer(**aiokafka_options(target, options))


def aio_consumer(target: KafkaTarget, *topics: str, **options: Any) -> AIOKafkaConsumer:
    """An aiokafka consumer (not started)."""
    return AIOKafkaConsumer(*topics, **aiokafka_options(target, options))


def faust_app_options(target: KafkaTarget, **options: Any) -> dict[str, Any]:
    """The keyword arguments of a ``faust.App``: broker URL and credentials, then ``options``.

    faust builds its aiokafka clients itself from ``broker`` and ``broker_credentials``;
    the credentials are translated from :func:`aiokafka_options`, so the TLS context, the
    SASL mechanism and the OAuth token provider are the very objects every other client
    gets. faust is an optional extra (``[faust]``): it is imported only here, on use.
    (The ``kafka.aiokafka`` passthrough does not reach faust's clients: faust has no
    door for arbitrary aiokafka arguments.)
    """
    from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials

    kafka = as_settings(target)
    auth = aiokafka_options(kafka)
    credentials: Any = None
    mechanism = auth.get("sasl_mechanism")
    if mechanism == "OAUTHBEARER":
        credentials = OAuthCredentials(
            oauth_cb=auth["sasl_oauth_token_provider"], ssl_context=auth.get("ssl_context")
        )
    elif mechanism is not None:
        credentials = SASLCredentials(
            username=auth["sasl_plain_username"],
            password=auth["sasl_plain_password"],
            ssl_context=auth.get("ssl_context"),
            mechanism=mechanism,
        )
    elif "ssl_context" in auth:
        credentials = SSLCredentials(auth["ssl_context"])
    if credentials is not None:
        # faust infers SASL_SSL from a context; SASL_PLAINTEXT must be said explicitly.
        from faust.types.auth import AuthProtocol

        credentials.protocol = AuthProtocol(kafka.security_protocol)
    servers = ";".join(f"kafka://{s.strip()}" for s in kafka.bootstrap_servers.split(","))
    return {"broker": servers, "broker_credentials": credentials, **options}


def schema_registry_config(
    registry: RegistrySettings, options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The confluent-kafka ``SchemaRegistryClient`` config: URL, auth, TLS, then ``options``."""
    config: dict[str, Any] = dict(options or {})
    config["url"] = registry.url
    if registry.username is not None and registry.password is not None:
        config["basic.auth.user.info"] = (
            f"{registry.username}:{registry.password.get_secret_value()}"
        )
    if registry.bearer_token is not None:
        config["bearer.auth.credentials.source"] = "STATIC_TOKEN"
        config["bearer.auth.token"] = registry.bearer_token.get_secret_value()
        config["bearer.auth.logical.cluster"] = registry.bearer_logical_cluster
    if registry.ca_file is not None:
        config["ssl.ca.location"] = str(registry.ca_file)
    if registry.certfile is not None:
        config["ssl.certificate.location"] = str(registry.certfile)
    if registry.keyfile is not None:
        config["ssl.key.location"] = str(registry.keyfile)
    if registry.key_password is not None:
        config["ssl.key.password"] = registry.key_password.get_secret_value()
    return config


def schema_registry_client(
    registry: RegistrySettings, options: Mapping[str, Any] | None = None
) -> SchemaRegistryClient:
    """A Schema Registry client (``mock://`` gives confluent-kafka's in-process stand-in)."""
    return SchemaRegistryClient.new_client(schema_registry_config(registry, options))
