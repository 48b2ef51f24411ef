"""The lifecycle both Kafka-backed stores share: replay a topic, then follow it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streams.kafka import clients
from streams.kafka.clients import KafkaTarget
from streams.state.admin import TopicSpec, ensure_topics

__all__ = ["TopicBacked"]

log = logging.getLogger("streams.state")


class TopicBacked:
    """A producer to write the topic, and a consumer that loads it and then follows it.

    Subclasses implement :meth:`_load` (read up to the end at start-up) and
    :meth:`_apply_batch` (fold fetched records into their state).
    """

    #: How long one follow-up fetch waits for new records.
    poll_ms = 500

    def __init__(self, kafka: KafkaTarget, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._follower: asyncio.Task[None] | None = None

    async def _open(self, spec: TopicSpec, **consumer_opts: Any) -> None:
        """Create the topic if needed, start both clients, load, then follow."""
        await ensure_topics(self.kafka, [spec])
        self._producer = clients.aio_producer(self.kafka, enable_idempotence=True, acks="all")
        self._consumer = clients.aio_consumer(
            self.kafka,
            enable_auto_commit=False,
            group_id=None,
            **consumer_opts,
        )
        try:
            await self._producer.start()
            await self._consumer.start()
            await self._load()
        except BaseException:
            await self.stop()
            raise
        self._follower = asyncio.create_task(self._follow())

    async def _load(self) -> None:
        raise NotImplementedError

    def _apply_batch(self, batches: dict[TopicPartition, list[Any]]) -> int:
        raise NotImplementedError

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                self._apply_batch(await self._consumer.getmany(timeout_ms=self.poll_ms))
            except KafkaError as exc:
                log.warning("following %s failed (%s); retrying", self.topic, exc)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
