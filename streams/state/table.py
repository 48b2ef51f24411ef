"""A key/value table mirrored from a compacted Kafka topic (a changelog, like a faust table).

Every worker loads the whole topic at start-up and then follows it, so a value
written by one worker is seen by the others, and a restart loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from streams.errors import StateStoreError
from streams.kafka.clients import KafkaTarget
from streams.state._base import TopicBacked
from streams.state.admin import TopicSpec, topic_partitions

__all__ = ["KafkaTable"]

log = logging.getLogger("streams.state.table")


class KafkaTable(TopicBacked):
    """``get`` is a dict lookup; ``put`` is acknowledged by the broker before it returns."""

    poll_ms = 1000

    def __init__(
        self,
        kafka: KafkaTarget,
        topic: str,
        *,
        partitions: int = 6,
        progress: Callable[[str], None] | None = None,
        max_entries: int | None = None,
    ) -> None:
        super().__init__(kafka, topic)
        self.partitions = partitions
        self._data: dict[str, bytes] = {}
        self._progress = progress
        #: At most this many keys in memory: the most recently written (None: no bound).
        self.max_entries = max_entries

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> bytes | None:
        return self._data.get(key)

    async def put(self, key: str, value: bytes) -> None:
        if self._producer is None:
            raise StateStoreError(f"table {self.topic} is not started")
        try:
            await self._producer.send_and_wait(self.topic, value, key=key.encode())
        except KafkaError as exc:
            raise StateStoreError(f"write to {self.topic} failed: {exc}") from exc
        self._set(key, value)

    def _set(self, key: str, value: bytes) -> None:
        """Keep ``key`` as the newest entry; drop the oldest past :attr:`max_entries`."""
        data = self._data
        data.pop(key, None)
        data[key] = value
        if self.max_entries is not None and len(data) > self.max_entries:
            del data[next(iter(data))]

    async def start(self) -> None:
        """Create the topic if needed, load it to the end, then follow it."""
        await self._open(
            TopicSpec(self.topic, self.partitions, config={"cleanup.policy": "compact"}),
            auto_offset_reset="earliest",
        )

    async def _load(self) -> None:
        assert self._consumer is not None
        tps = await topic_partitions(self.kafka, self.topic)
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        end = await self._consumer.end_offsets(tps)
        loaded = 0
        while True:
            behind = [tp for tp in tps if await self._consumer.position(tp) < end[tp]]
            if not behind:
                break
            loaded += self._apply_batch(await self._consumer.getmany(*behind, timeout_ms=500))
            if self._progress and loaded and loaded % 10_000 < 500:
                self._progress(f"{self.topic}: loaded {loaded} entries")
        log.info("table %s loaded: %d keys", self.topic, len(self._data))

    def _apply_batch(self, batches: dict[TopicPartition, list[Any]]) -> int:
        n = 0
        for records in batches.values():
            for rec in records:
                key = getattr(rec, "key", None)
                if key is None:
                    continue
                value = getattr(rec, "value", None)
                k = key.decode()
                if value is None:
                    self._data.pop(k, None)
                else:
                    self._set(k, value)
                n += 1
        return n
