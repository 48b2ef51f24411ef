"""Broker-side helpers for the benchmark: topics, inputs, watermarks, outputs, groups.

Output topics are created up front with ``message.timestamp.type=LogAppendTime``, so
every output record carries the broker's own append time: the moment its produce was
acknowledged, to the millisecond. Run times are measured from those timestamps, not
from polling, so a coarse progress loop costs no precision.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    NewTopic,
    OffsetSpec,
)

from streams.kafka import clients

ROUTES = ("valid", "invalid", "over-budget", "dlq")

#: Broker append time on output topics: the acknowledgement time of each output.
LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}

TP = tuple[str, int]

_METADATA_LAG = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


def output_topics(pipeline: str) -> list[str]:
    return [f"{pipeline}.{route}" for route in ROUTES]


class Broker:
    """One admin client for the run (creating topics, watermarks, group state)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = clients.admin_client(bootstrap, {"log_level": 0})

    def create_topics(
        self, names: Iterable[str], partitions: int, config: dict[str, str] | None = None
    ) -> None:
        names = list(names)
        topics = [NewTopic(n, num_partitions=partitions, config=dict(config or {})) for n in names]
        for name, future in self.admin.create_topics(topics, operation_timeout=30).items():
            try:
                future.result(timeout=60)
            except Exception as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                raise RuntimeError(f"could not create topic {name}: {exc}") from exc
        self._wait_for(names)

    def _wait_for(self, names: list[str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            known = self.admin.list_topics(timeout=10).topics
            if all(
                n in known
                and known[n].partitions
                and all(p.leader >= 0 for p in known[n].partitions.values())
                for n in names
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"topics {names} did not appear within {timeout:.0f}s")

    def create_pipeline_topics(self, pipeline: str, input_topic: str, partitions: int) -> None:
        """The raw topic, and the four outputs with broker append timestamps."""
        self.create_topics([input_topic], partitions)
        self.create_topics(output_topics(pipeline), partitions, LOG_APPEND_TIME)

    def partitions(self, topic: str) -> list[int]:
        meta = self.admin.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return []
        return sorted(meta.partitions)

    def end_offsets(self, topics: Iterable[str]) -> dict[TP, int]:
        """High watermark of every partition of ``topics`` (missing topics: none)."""
        request = {
            TopicPartition(t, p): OffsetSpec.latest()  # type: ignore[no-untyped-call]
            for t in topics
            for p in self.partitions(t)
        }
        if not request:
            return {}
        for attempt in range(20):
            futures = self.admin.list_offsets(request, request_timeout=15)
            try:
                return {
                    (tp.topic, tp.partition): f.result(timeout=30).offset
                    for tp, f in futures.items()
                }
            except KafkaException as exc:
                # A just-created topic's leader may not be known everywhere yet.
                err = exc.args[0] if exc.args else None
                transient = isinstance(err, KafkaError) and (
                    err.retriable() or err.code() in _METADATA_LAG
                )
                if not transient or attempt == 19:
                    raise
                time.sleep(0.25)
        raise AssertionError("unreachable")

    def produced_since(self, base: dict[TP, int], topics: Iterable[str]) -> int:
        """Records appended to ``topics`` since the watermarks in ``base``."""
        now = self.end_offsets(topics)
        return sum(high - base.get(tp, 0) for tp, high in now.items())

    def group_members(self, group: str) -> list[int]:
        """Partitions assigned to each live member of ``group`` (empty if none)."""
        described = self.admin.describe_consumer_groups([group])[group].result(timeout=15)
        return [len(m.assignment.topic_partitions) for m in described.members]

    def committed_lag(self, group: str, topic: str) -> int:
        """End offsets minus the group's committed offsets on ``topic`` (uncommitted records)."""
        consumer = clients.consumer(self.bootstrap, {"group.id": group})
        try:
            tps = [TopicPartition(topic, p) for p in self.partitions(topic)]
            committed = {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=15)}
        finally:
            consumer.close()
        ends = self.end_offsets([topic])
        return sum(high - max(committed.get(p, 0), 0) for (_t, p), high in ends.items())


def produce(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]], *, label: str = ""
) -> int:
    """Produce ``records`` (key, value) to ``topic``; returns how many were acknowledged."""
    producer = clients.producer(
        bootstrap,
        {
            "enable.idempotence": True,
            "linger.ms": 20,
            "log_level": 0,
        },
    )
    n = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                producer.poll(0.1)
        n += 1
        if n % 1000 == 0:
            producer.poll(0)
            if n % 5000 == 0 and label:
                print(f"  {label}: produced {n}", flush=True)
    if producer.flush(60) != 0:
        raise RuntimeError(f"records to {topic} were not acknowledged by the broker")
    return n


def read_since(
    bootstrap: str, base: dict[TP, int], topics: Iterable[str], *, timeout: float = 120.0
) -> list[Message]:
    """Every record appended to ``topics`` since ``base``, up to the current watermarks."""
    broker = Broker(bootstrap)
    ends = broker.end_offsets(topics)
    targets = {tp: (base.get(tp, 0), high) for tp, high in ends.items() if high > base.get(tp, 0)}
    return list(_read(bootstrap, targets, timeout))


class Follower:
    """Tails ``topics`` from the watermarks in ``base``: each :meth:`poll` returns what is new.

    For probes that run beside a run (one consumer, assigned, never in a group).
    """

    def __init__(self, bootstrap: str, base: dict[TP, int]) -> None:
        self._consumer = clients.consumer(
            bootstrap,
            {
                "group.id": f"bench-follower-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "log_level": 0,
            },
        )
        self._base = dict(base)
        self._consumer.assign([TopicPartition(t, p, off) for (t, p), off in base.items()])

    def poll(self, timeout: float = 0.2) -> list[Message]:
        out = []
        for msg in self._consumer.consume(num_messages=5000, timeout=timeout):
            if msg.error() is None:
                out.append(
                    Message(
                        topic=str(msg.topic()),
                        partition=int(msg.partition() or 0),
                        offset=int(msg.offset() or 0),
                        key=msg.key(),
                        value=msg.value(),
                        timestamp_ms=msg.timestamp()[1],
                        headers=_headers(msg.headers()),
                    )
                )
        return out

    def position(self) -> int:
        """The next offsets to read, summed over the partitions (comparable to watermarks)."""
        tps = self._consumer.position(self._consumer.assignment())
        # A partition nothing was fetched from yet has no position: it is still at its base.
        return sum(
            tp.offset if tp.offset >= 0 else self._base[(tp.topic, tp.partition)] for tp in tps
        )

    def close(self) -> None:
        self._consumer.close()


def _headers(
    raw: Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]] | None,
) -> tuple[tuple[str, bytes], ...]:
    """A consumed message's headers as (name, bytes) pairs (confluent-kafka gives a list)."""
    pairs = raw.items() if isinstance(raw, Mapping) else raw or ()
    return tuple(
        (name, value.encode() if isinstance(value, str) else value or b"") for name, value in pairs
    )


def _read(bootstrap: str, targets: dict[TP, tuple[int, int]], timeout: float) -> Iterator[Message]:
    if not targets:
        return
    consumer = clients.consumer(
        bootstrap,
        {
            "group.id": f"bench-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "log_level": 0,
        },
    )
    try:
        consumer.assign([TopicPartition(t, p, low) for (t, p), (low, _high) in targets.items()])
        remaining = {tp: high for tp, (_low, high) in targets.items()}
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise RuntimeError(str(error))
                topic, partition, offset = str(msg.topic()), int(msg.partition() or 0), msg.offset()
                tp = (topic, partition)
                high = remaining.get(tp)
                if high is None or offset is None or offset >= high:
                    continue
                yield Message(
                    topic=topic,
                    partition=partition,
                    offset=offset,
                    key=msg.key(),
                    value=msg.value(),
                    timestamp_ms=msg.timestamp()[1],
                    headers=_headers(msg.headers()),
                )
                if offset + 1 >= high:
                    remaining.pop(tp, None)
        if remaining:
            raise RuntimeError(f"timed out reading {sorted(remaining)}")
    finally:
        consumer.close()
