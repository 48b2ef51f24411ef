"""Replay (reset a pipeline's consumer-group offsets) and redrive (re-inject records).

Replay is plain Kafka: it moves the committed offsets of ``<prefix>.<pipeline>``
on the raw topic. Kafka's own ``kafka-consumer-groups.sh --reset-offsets``
does the same thing and works just as well. With the result cache warm, a
replay makes no model calls and reproduces the same records.

Redrive reads ``.over-budget`` or ``.invalid`` envelopes and produces their
documents back onto the raw topic as JSON envelopes, keeping the key and
adding lineage headers, so they run again (for example after a budget was
raised or a prompt fixed).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from streams.errors import ConfigError

__all__ = ["RedriveResult", "redrive", "reset_offsets"]

Progress = Callable[[str], None]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise ConfigError(f"topic {topic} does not exist; check the pipeline's input_topic")
    return sorted(meta.partitions)


def reset_offsets(
    bootstrap: str,
    group: str,
    topic: str,
    *,
    to_earliest: bool = False,
    to_datetime: dt.datetime | None = None,
    to_offsets: dict[int, int] | None = None,
    progress: Progress = _say,
) -> dict[int, int]:
    """Reset ``group``'s offsets on ``topic``; refuse while the group has live members."""
    chosen = int(to_earliest) + int(to_datetime is not None) + int(to_offsets is not None)
    if chosen != 1:
        raise ConfigError("choose exactly one of --to-earliest, --to-datetime, --to-offset")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_consumer_groups([group])[group].result(timeout=15)
    if described.members:
        raise ConfigError(
            f"consumer group {group} has {len(described.members)} running member(s) "
            f"(state {described.state.name}); stop its workers before replaying"
        )
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}.replay-tool"})
    try:
        parts = _partitions(consumer, topic)
        targets: dict[int, int] = {}
        if to_earliest:
            for p in parts:
                targets[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0]
        elif to_datetime is not None:
            ms = int(to_datetime.timestamp() * 1000)
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, ms) for p in parts], timeout=10
            )
            for tp in found:
                high = consumer.get_watermark_offsets(
                    TopicPartition(topic, tp.partition), timeout=10
                )[1]
                targets[tp.partition] = tp.offset if tp.offset >= 0 else high
        else:
            assert to_offsets is not None
            unknown = set(to_offsets) - set(parts)
            if unknown:
                raise ConfigError(f"topic {topic} has no partition(s) {sorted(unknown)}")
            targets = dict(to_offsets)
    finally:
        consumer.close()
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p, off) for p, off in sorted(targets.items())]
    )
    try:
        admin.alter_consumer_group_offsets([request])[group].result(timeout=15)
    except KafkaException as exc:
        raise ConfigError(f"offset reset refused by the broker: {exc}") from exc
    for p, off in sorted(targets.items()):
        progress(f"{group} {topic}[{p}] -> {off}")
    return targets


def group_is_idle(bootstrap: str, group: str) -> bool:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_consumer_groups([group])[group].result(timeout=15)
    return not described.members and described.state in (
        ConsumerGroupState.EMPTY,
        ConsumerGroupState.DEAD,
        ConsumerGroupState.UNKNOWN,
    )


@dataclass(frozen=True)
class RedriveResult:
    read: int
    redriven: int
    skipped: int


def redrive(
    bootstrap: str,
    source_topic: str,
    raw_topic: str,
    *,
    since: dt.datetime | None = None,
    progress: Progress = _say,
    idle_timeout_s: float = 5.0,
) -> RedriveResult:
    """Re-inject every envelope in ``source_topic`` (since ``since``) into ``raw_topic``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"streams-redrive-{int(time.time() * 1000)}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    read = redriven = skipped = 0
    try:
        parts = _partitions(consumer, source_topic)
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
            value = msg.value()
            try:
                envelope = json.loads(value or b"")
                doc = envelope["document"]
                body = {"id": doc["id"], "text": doc["text"], "source": doc.get("source") or {}}
                if doc.get("tenant"):
                    body["tenant"] = doc["tenant"]
            except (ValueError, KeyError, TypeError):
                skipped += 1
                continue
            headers: list[tuple[str, str | bytes | None]] = [
                ("streams.redrive-of", f"{msg.topic()}[{msg.partition()}]@{msg.offset()}".encode()),
                ("streams.redrive-reason", str(envelope.get("reason", "")).encode()),
                ("streams.redrive-at", dt.datetime.now(dt.UTC).isoformat().encode()),
                ("streams.original-source", json.dumps(envelope.get("source", {})).encode()),
            ]
            producer.produce(
                raw_topic, value=json.dumps(body).encode(), key=msg.key(), headers=headers
            )
            producer.poll(0)
            redriven += 1
            if redriven % 100 == 0:
                progress(f"redriven {redriven} record(s)")
        left = producer.flush(30)
        if left:
            raise ConfigError(f"{left} redriven record(s) were not acknowledged by the broker")
    finally:
        consumer.close()
    progress(f"read {read}, redriven {redriven}, skipped {skipped} (no document to redrive)")
    return RedriveResult(read=read, redriven=redriven, skipped=skipped)
