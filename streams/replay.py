"""Replay: reset a pipeline's consumer-group offsets.

Replay is plain Kafka: it moves the committed offsets of ``<prefix>.<pipeline>``
on the raw topic. Kafka's own ``kafka-consumer-groups.sh --reset-offsets``
does the same thing and works just as well. With the result cache warm, a
replay makes no model calls and reproduces the same records.

Redrive, which re-injects envelopes into the raw topic, is :mod:`streams.redrive`.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable

from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicPartition,
)

from streams.errors import ConfigError
from streams.kafka import clients
from streams.kafka.clients import KafkaTarget

__all__ = ["Progress", "group_is_idle", "partitions_of", "reset_offsets", "say"]

Progress = Callable[[str], None]


def say(message: str) -> None:
    """The commands' progress line, on stderr."""
    print(message, file=sys.stderr, flush=True)


def partitions_of(consumer: Consumer, topic: str) -> list[int]:
    """The partition numbers of ``topic``, or a one-line ConfigError if it does not exist."""
    meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        raise ConfigError(f"topic {topic} does not exist; check the pipeline's input_topic")
    return sorted(meta.partitions)


def reset_offsets(
    kafka: KafkaTarget,
    group: str,
    topic: str,
    *,
    to_earliest: bool = False,
    to_datetime: dt.datetime | None = None,
    to_offsets: dict[int, int] | None = None,
    progress: Progress = say,
) -> dict[int, int]:
    """Reset ``group``'s offsets on ``topic``; refuse while the group has live members."""
    chosen = int(to_earliest) + int(to_datetime is not None) + int(to_offsets is not None)
    if chosen != 1:
        raise ConfigError("choose exactly one of --to-earliest, --to-datetime, --to-offset")
    admin = clients.admin_client(kafka)
    described = admin.describe_consumer_groups([group])[group].result(timeout=15)
    if described.members:
        raise ConfigError(
            f"consumer group {group} has {len(described.members)} running member(s) "
            f"(state {described.state.name}); stop its workers before replaying"
        )
    consumer = clients.consumer(kafka, {"group.id": f"{group}.replay-tool"})
    try:
        parts = partitions_of(consumer, topic)
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


def group_is_idle(kafka: KafkaTarget, group: str) -> bool:
    admin = clients.admin_client(kafka)
    described = admin.describe_consumer_groups([group])[group].result(timeout=15)
    return not described.members and described.state in (
        ConsumerGroupState.EMPTY,
        ConsumerGroupState.DEAD,
        ConsumerGroupState.UNKNOWN,
    )
