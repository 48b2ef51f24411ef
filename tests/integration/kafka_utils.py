"""Small real-broker helpers for integration tests (confluent-kafka clients)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

ROUTES = ("valid", "invalid", "over-budget", "dlq")


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    n = 0
    for key, value in records:
        producer.produce(topic, value=value, key=key)
        n += 1
    assert producer.flush(30) == 0, "records not acknowledged by the broker"
    return n


def consume_all(bootstrap: str, topics: Iterable[str], *, timeout: float = 30.0) -> list[Message]:
    """Read every record currently in ``topics`` (up to the high watermarks)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    out: list[Message] = []
    try:
        targets: dict[TopicPartition, int] = {}
        # Listing all topics (not by name) never auto-creates a missing one.
        cluster = consumer.list_topics(timeout=10).topics
        for topic in topics:
            meta = cluster.get(topic)
            if meta is None or meta.error is not None:
                continue
            for p in meta.partitions:
                low, high = _watermarks(consumer, TopicPartition(topic, p))
                if high > low:
                    targets[TopicPartition(topic, p, low)] = high
        if not targets:
            return out
        consumer.assign(list(targets))
        remaining = {(tp.topic, tp.partition): high for tp, high in targets.items()}
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                # Transaction markers occupy offsets but are never delivered: compare positions.
                positions = consumer.position([TopicPartition(t, p) for (t, p) in remaining])
                for tp in positions:
                    if tp.offset >= remaining.get((tp.topic, tp.partition), 1 << 62):
                        remaining.pop((tp.topic, tp.partition), None)
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(str(msg.error()))
            out.append(
                Message(
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    key=msg.key(),
                    value=msg.value(),
                    headers={k: bytes(v) for k, v in (msg.headers() or [])},
                )
            )
            tp_key = (msg.topic(), msg.partition())
            if msg.offset() + 1 >= remaining.get(tp_key, 0):
                remaining.pop(tp_key, None)
        assert not remaining, f"timed out reading {remaining}"
        return out
    finally:
        consumer.close()


def _watermarks(consumer: Consumer, tp: TopicPartition) -> tuple[int, int]:
    """Watermarks, retrying while a just-created partition elects its leader."""
    for attempt in range(20):
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except KafkaException:
            if attempt == 19:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def committed_vs_end(bootstrap: str, group: str, topic: str) -> tuple[int, int]:
    """(sum of the group's committed offsets, sum of end offsets) for ``topic``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        tps = [TopicPartition(topic, p) for p in meta.partitions]
        committed = consumer.committed(tps, timeout=10)
        total_committed = sum(max(tp.offset, 0) for tp in committed)
        total_end = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps)
        return total_committed, total_end
    finally:
        consumer.close()
