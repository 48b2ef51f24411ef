"""Redrive reads ``.over-budget``, ``.invalid`` or ``.dlq`` envelopes and puts
each one's input back on the raw topic so it runs again (for example after a
budget was raised or a prompt fixed). Never a cut-down input:

    envelope                                    re-injected
    ------------------------------------------  ------------------------------------------
    whole ``document``                          a JSON envelope {id, text, source, tenant},
                                                the envelope's key
    whole ``raw_value_b64`` (undecodable)       the raw bytes, the input's key
    ``truncated: true``, or neither of those    the original record, re-read by offset and
                                                checked against ``input_sha256``; ``gone``
                                                if retention removed it or it differs
    already ``max_redrives`` redrives           nothing: ``refused``
    not an envelope, a tombstone                nothing: ``skipped``

A re-injected record keeps the input's headers (null values stay null) and
gets fresh lineage headers, replacing any earlier ones: ``streams.redrive-of``,
``-reason``, ``-at``, ``-count`` (1 + the input's count) and
``streams.original-source``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams.envelope import RawRecord, decode
from streams.errors import ConfigError, StreamsError
from streams.kafka import clients
from streams.kafka.clients import KafkaTarget
from streams.replay import Progress, partitions_of, say
from streams.settings import WorkerSettings

__all__ = ["REDRIVE_COUNT", "RedriveResult", "redrive"]

_DEFAULT_MAX_REDRIVES: int = WorkerSettings.model_fields["max_redrives"].default


@dataclass(frozen=True)
class RedriveResult:
    """What one ``redrive`` run did; every envelope read lands in exactly one count."""

    read: int
    """Envelopes read from the source topic."""
    redriven: int
    """Records produced back to the raw topic (and acknowledged)."""
    skipped: int
    """Envelopes with nothing to redrive (not an envelope, a tombstone, no source)."""
    gone: int = 0
    """Truncated envelopes whose original record is no longer in Kafka, or no longer matches."""
    refused: int = 0
    """Records already redriven ``max_redrives`` times."""


#: The count of earlier redrives a re-injected record carries.
REDRIVE_COUNT = "streams.redrive-count"
_LINEAGE_PREFIX = "streams.redrive-"
_ORIGINAL_SOURCE = "streams.original-source"

_Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True)
class _Input:
    """An input to put back on the raw topic: key, value and the input's own headers."""

    key: bytes | None
    value: bytes
    headers: _Headers


@dataclass(frozen=True)
class _NotRedriven:
    """Why an envelope produced nothing: the count it lands in and the line that says so."""

    count: Literal["skipped", "gone", "refused"]
    line: str | None = None


def redrive(
    kafka: KafkaTarget,
    source_topic: str,
    raw_topic: str,
    *,
    since: dt.datetime | None = None,
    max_redrives: int = _DEFAULT_MAX_REDRIVES,
    progress: Progress = say,
    idle_timeout_s: float = 5.0,
) -> RedriveResult:
    """Re-inject every envelope in ``source_topic`` (since ``since``) into ``raw_topic``.

    An envelope with its whole document goes back as a JSON envelope, one with
    the whole raw value (an undecodable input) as those bytes. A truncated one
    goes back as the original record, re-read by offset and checked against
    ``input_sha256``; when retention removed it, it is counted as ``gone``.
    A record already redriven ``max_redrives`` times is ``refused``.
    """
    consumer = clients.consumer(
        kafka,
        {
            "group.id": f"streams-redrive-{int(time.time() * 1000)}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        },
    )
    producer = clients.producer(kafka, {"enable.idempotence": True})
    originals = _Originals(kafka)
    failures: list[str] = []

    def delivered(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    counts = {"skipped": 0, "gone": 0, "refused": 0}
    read = redriven = 0
    try:
        parts = partitions_of(consumer, source_topic)
        start: dict[int, int] = {}
        end: dict[int, int] = {}
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(source_topic, p), timeout=10)
            start[p], end[p] = low, high
        if since is not None:
            ms = int(since.timestamp() * 1000)
            for tp in consumer.offsets_for_times(
                [TopicPartition(source_topic, p, ms) for p in parts], timeout=10
            ):
                start[tp.partition] = tp.offset if tp.offset >= 0 else end[tp.partition]
        pending = {p for p in parts if start[p] < end[p]}
        consumer.assign([TopicPartition(source_topic, p, start[p]) for p in pending])
        last_seen = time.monotonic()
        while pending and time.monotonic() - last_seen < idle_timeout_s:
            msg = consumer.poll(0.5)
            if msg is None:
                # Transaction markers take offsets but are never delivered: compare positions.
                for tp in consumer.position([TopicPartition(source_topic, p) for p in pending]):
                    if tp.offset >= end[tp.partition]:
                        pending.discard(tp.partition)
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise ConfigError(f"reading {source_topic} failed: {error}")
            last_seen = time.monotonic()
            read += 1
            part, offset = int(msg.partition() or 0), int(msg.offset() or 0)
            if offset + 1 >= end[part]:
                pending.discard(part)
            where = f"{source_topic}[{part}]@{offset}"
            planned = _plan(msg.value(), msg.key(), where, originals, max_redrives)
            if isinstance(planned, _NotRedriven):
                counts[planned.count] += 1
                if planned.line is not None:
                    progress(planned.line)
                continue
            record, envelope, prior = planned
            headers: list[tuple[str, str | bytes | None]] = [
                (k, v) for k, v in record.headers if not _is_lineage(k)
            ]
            headers += [
                ("streams.redrive-of", where.encode()),
                ("streams.redrive-reason", str(envelope.get("reason", "")).encode()),
                ("streams.redrive-at", dt.datetime.now(dt.UTC).isoformat().encode()),
                (REDRIVE_COUNT, str(prior + 1).encode()),
                (_ORIGINAL_SOURCE, json.dumps(envelope.get("source", {})).encode()),
            ]
            _produce(producer, raw_topic, record, headers, delivered)
            redriven += 1
            if redriven % 100 == 0:
                progress(f"redriven {redriven} record(s)")
        left = producer.flush(30)
        if left:
            raise ConfigError(f"{left} redriven record(s) were not acknowledged by the broker")
        if failures:
            raise ConfigError(
                f"{len(failures)} of {redriven} redriven record(s) were refused by the broker "
                f"(first: {failures[0]}); the rest are on {raw_topic}"
            )
    finally:
        consumer.close()
        originals.close()
    result = RedriveResult(read=read, redriven=redriven, **counts)
    progress(
        f"read {result.read}, redriven {result.redriven}, "
        f"skipped {result.skipped} (nothing to redrive), "
        f"gone {result.gone} (original no longer in Kafka), "
        f"refused {result.refused} (at worker.max_redrives = {max_redrives})"
    )
    return result


def _produce(
    producer: Producer,
    topic: str,
    record: _Input,
    headers: list[tuple[str, str | bytes | None]],
    on_delivery: Callable[[KafkaError | None, object], None],
) -> None:
    while True:
        try:
            producer.produce(
                topic,
                value=record.value,
                key=record.key,
                headers=headers,
                on_delivery=on_delivery,
            )
        except BufferError:  # the local queue is full: let deliveries drain it
            producer.poll(1.0)
            continue
        except KafkaException as exc:
            raise ConfigError(f"producing to {topic} failed: {exc}") from exc
        producer.poll(0)
        return


def _plan(
    value: bytes | None,
    key: bytes | None,
    where: str,
    originals: _Originals,
    max_redrives: int,
) -> tuple[_Input, dict[str, Any], int] | _NotRedriven:
    """The input to re-inject for one envelope, with the envelope and its redrive count."""
    try:
        envelope = json.loads(value or b"")
        if not isinstance(envelope, dict):
            return _NotRedriven("skipped")
        stored = _stored_headers(envelope.get("headers"))
    except (ValueError, KeyError, TypeError):  # binascii.Error is a ValueError
        return _NotRedriven("skipped")
    refused = _refusal(where, stored, max_redrives)
    if refused is not None:
        return refused
    source = envelope.get("source")
    source = source if isinstance(source, dict) else {}
    document = envelope.get("document")
    raw_b64 = envelope.get("raw_value_b64")
    if envelope.get("truncated") is True or (document is None and raw_b64 is None):
        found = _original(envelope, source, where, originals)
        if isinstance(found, _NotRedriven):
            return found
        # The original's own headers are the truth: the envelope may have dropped them.
        both = stored + found.headers
        return _refusal(where, both, max_redrives) or (found, envelope, _count(both))
    try:
        if isinstance(document, dict):
            body = {
                "id": document["id"],
                "text": document["text"],
                "source": document.get("source") or {},
            }
            if document.get("tenant"):
                body["tenant"] = document["tenant"]
            record = _Input(key=key, value=json.dumps(body).encode(), headers=stored)
        elif isinstance(raw_b64, str):
            raw = base64.b64decode(raw_b64, validate=True)
            # The envelope's key is the input's, or a stand-in when the input had none.
            original_key = None if "key" in source and source["key"] is None else key
            record = _Input(key=original_key, value=raw, headers=stored)
        else:
            return _NotRedriven("skipped")
    except (ValueError, KeyError, TypeError):
        return _NotRedriven("skipped")
    return record, envelope, _count(stored)


def _refusal(where: str, headers: _Headers, max_redrives: int) -> _NotRedriven | None:
    try:
        prior = _count(headers)
    except ValueError as exc:
        return _NotRedriven("refused", f"refusing to redrive {where}: {exc}")
    if prior < max_redrives:
        return None
    times = "time" if prior == 1 else "times"
    return _NotRedriven(
        "refused",
        f"refusing to redrive {where}: already redriven {prior} {times} "
        f"(worker.max_redrives = {max_redrives})",
    )


def _original(
    envelope: dict[str, Any], source: dict[str, Any], where: str, originals: _Originals
) -> _Input | _NotRedriven:
    """The original input record of a truncated envelope, if it is still there and matches."""
    topic, partition, offset = source.get("topic"), source.get("partition"), source.get("offset")
    want = envelope.get("input_sha256")
    if not (isinstance(topic, str) and isinstance(partition, int) and isinstance(offset, int)):
        return _NotRedriven("skipped")
    if not isinstance(want, str):  # a tombstone: there is no input to put back
        return _NotRedriven("skipped")
    found = originals.read(topic, partition, offset)
    if isinstance(found, str):
        why = found
    elif _matches(want, found, had_document=envelope.get("document") is not None):
        return found
    else:
        why = f"the record there does not match input_sha256 {want[:12]}"
    return _NotRedriven(
        "gone",
        f"cannot redrive {where}: the original {topic}[{partition}]@{offset} is gone ({why}); "
        "nothing changed for it",
    )


def _matches(want: str, record: _Input, *, had_document: bool) -> bool:
    """Whether ``record`` is the input whose ``input_sha256`` the envelope gives.

    The pipeline hashes the raw bytes of an input it could not decode, and the
    normalised text of one it could (:func:`streams.envelope.decode` is the one
    place that computes it, so it is asked again rather than re-implemented).
    """
    if hashlib.sha256(record.value).hexdigest() == want:
        return True
    if not had_document:
        return False
    try:
        document = decode(RawRecord("", 0, 0, record.key, record.value))
    except StreamsError:
        return False
    return document.sha256 == want


def _stored_headers(items: object) -> _Headers:
    """The input's headers as the envelope keeps them (``[{key, value_b64}]``)."""
    if items is None:
        return ()
    if not isinstance(items, list):
        raise TypeError("envelope headers must be a list")
    out: list[tuple[str, bytes | None]] = []
    for item in items:
        name, b64 = item["key"], item.get("value_b64")
        if not isinstance(name, str):
            raise TypeError("a header key must be a string")
        out.append((name, None if b64 is None else base64.b64decode(b64, validate=True)))
    return tuple(out)


def _count(headers: _Headers) -> int:
    """Earlier redrives, per ``streams.redrive-count`` (0 when absent)."""
    found = 0
    for name, value in headers:
        if name != REDRIVE_COUNT:
            continue
        text = (value or b"").decode("ascii", errors="replace")
        if not (text.isascii() and text.isdigit()):
            raise ValueError(f"its {REDRIVE_COUNT} header {text!r} is not an integer")
        found = max(found, int(text))
    return found


def _consumed_headers(msg: Message) -> _Headers:
    found = msg.headers() or ()
    pairs = found.items() if isinstance(found, dict) else found
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in pairs)


def _is_lineage(name: str) -> bool:
    return name.startswith(_LINEAGE_PREFIX) or name == _ORIGINAL_SOURCE


class _Originals:
    """Reads single input records back by offset (assign + seek), read_committed."""

    def __init__(self, kafka: KafkaTarget, *, timeout_s: float = 15.0) -> None:
        self._kafka = kafka
        self._timeout_s = timeout_s
        self._consumer: Consumer | None = None
        self._topics: dict[str, set[int]] | None = None

    def _client(self) -> Consumer:
        if self._consumer is None:
            self._consumer = clients.consumer(
                self._kafka,
                {
                    "group.id": f"streams-redrive-originals-{int(time.time() * 1000)}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                },
            )
        return self._consumer

    def read(self, topic: str, partition: int, offset: int) -> _Input | str:
        """The record at ``topic[partition]@offset``, or why it cannot be read any more."""
        consumer = self._client()
        if self._topics is None:
            # Listing all topics (not one by name) never auto-creates a missing one.
            listed = consumer.list_topics(timeout=10).topics
            self._topics = {name: set(meta.partitions) for name, meta in listed.items()}
        if partition not in self._topics.get(topic, set()):
            return "the topic or partition no longer exists"
        tp = TopicPartition(topic, partition)
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        if offset < low:
            return "retention"
        if offset >= high:
            return f"the partition ends at {high} now; was the topic recreated?"
        # Assigning at an offset is the seek; unassigning afterwards drops anything prefetched.
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + self._timeout_s
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    if consumer.position([tp])[0].offset > offset:
                        return "no record at that offset (compacted or aborted)"
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise ConfigError(f"reading {topic}[{partition}]@{offset} failed: {error}")
                if msg.offset() != offset:
                    return "no record at that offset (compacted or aborted)"
                value = msg.value()
                if value is None:
                    return "the record there is a tombstone"
                return _Input(key=msg.key(), value=value, headers=_consumed_headers(msg))
        finally:
            consumer.unassign()
        raise ConfigError(
            f"reading {topic}[{partition}]@{offset} took over {self._timeout_s:.0f} s; "
            "is the broker reachable?"
        )

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
