"""Create the topics a pipeline needs, if they are missing.

Uses confluent-kafka's admin client because it accepts -1 for "broker default"
partitions and replication factor, which aiokafka's does not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from streams.errors import KafkaAuthorizationFailed, StateStoreError
from streams.kafka import clients
from streams.kafka.clients import KafkaTarget

__all__ = [
    "TopicSpec",
    "ensure_topics",
    "max_message_bytes",
    "partition_count",
    "topic_partitions",
]

log = logging.getLogger("streams.state.admin")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = -1
    replication_factor: int = -1
    config: dict[str, str] = field(default_factory=dict)


def _ensure(kafka: KafkaTarget, specs: list[TopicSpec]) -> list[str]:
    admin = clients.admin_client(kafka)
    existing = set(admin.list_topics(timeout=15).topics)
    wanted = [s for s in specs if s.name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=s.replication_factor,
                config=dict(s.config),
            )
            for s in wanted
        ],
        operation_timeout=15,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=30)
            created.append(name)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # another worker won the race
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                target = clients.as_settings(kafka)
                listener = clients.describe(target)
                who = f"User:{target.username}" if target.username else "this client"
                raise KafkaAuthorizationFailed(
                    f"topic {name!r} is not visible to {who} (missing, or no DESCRIBE) and it "
                    f"may not CREATE it on the {listener}: create it and grant access, or add "
                    f"the ACL: kafka-acls.sh --bootstrap-server "
                    f"{target.bootstrap_servers} --add --allow-principal {who} "
                    f"--operation Create --topic {name}",
                    listener=listener,
                    resource="topic",
                    name=name,
                    operation="CREATE",
                ) from None
            raise StateStoreError(f"could not create topic {name}: {exc}") from exc
    _await_leaders(admin, created)
    return created


def _await_leaders(admin: Any, topics: list[str], timeout_s: float = 10.0) -> None:
    """Wait (bounded) until every partition of the new ``topics`` has a leader.

    A topic is created before its partitions have leaders; a client that reads or writes
    it at once gets NOT_LEADER_FOR_PARTITION, which aiokafka logs as an ERROR and then
    retries. Past the bound the clients' own retries take over, as before.
    """
    deadline = time.monotonic() + timeout_s
    pending = set(topics)
    while pending and time.monotonic() < deadline:
        meta = admin.list_topics(timeout=5).topics
        pending = {
            t
            for t in pending
            if t not in meta
            or meta[t].error is not None
            or not meta[t].partitions
            or any(p.leader < 0 or p.error is not None for p in meta[t].partitions.values())
        }
        if pending:
            time.sleep(0.1)


async def ensure_topics(kafka: KafkaTarget, specs: Iterable[TopicSpec]) -> None:
    """Create each missing topic (broker defaults for -1). Existing topics are left alone."""
    created = await asyncio.to_thread(_ensure, kafka, list(specs))
    if created:
        log.info("created topics %s", created)


def _count(kafka: KafkaTarget, topic: str) -> int:
    admin = clients.admin_client(kafka)
    meta = admin.list_topics(topic, timeout=15).topics.get(topic)
    if meta is None or meta.error is not None:
        return 0
    return len(meta.partitions)


async def partition_count(kafka: KafkaTarget, topic: str) -> int:
    """Partitions of ``topic``, or 0 if it does not exist (yet)."""
    return await asyncio.to_thread(_count, kafka, topic)


async def topic_partitions(
    kafka: KafkaTarget, topic: str, timeout_s: float = 30.0
) -> list[TopicPartition]:
    """The partitions of ``topic``, waiting for a just-created topic to show up."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        count = await partition_count(kafka, topic)
        if count:
            return [TopicPartition(topic, p) for p in range(count)]
        if asyncio.get_running_loop().time() > deadline:
            raise StateStoreError(f"topic {topic} has no partitions after {timeout_s:.0f}s")
        await asyncio.sleep(0.2)


def _max_message_bytes(kafka: KafkaTarget, topics: list[str]) -> dict[str, int]:
    from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

    admin = clients.admin_client(kafka)
    resources = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
    out: dict[str, int] = {}
    for resource, fut in admin.describe_configs(resources, request_timeout=15).items():
        try:
            entries = fut.result(timeout=30)
        except KafkaException as exc:
            log.warning("could not read max.message.bytes of %s: %s", resource.name, exc)
            continue
        entry = entries.get("max.message.bytes")
        if entry is not None and entry.value is not None:
            out[resource.name] = int(entry.value)
    return out


async def max_message_bytes(kafka: KafkaTarget, topics: Iterable[str]) -> dict[str, int]:
    """Each topic's effective ``max.message.bytes`` (topics that could not be read are absent)."""
    return await asyncio.to_thread(_max_message_bytes, kafka, list(topics))
