"""Reading topics: throwaway consumers that assign partitions, read them and close.

No consumer group position is used and no offsets are committed, so ``tail`` and
``explain`` never disturb the pipeline's own groups.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass
from typing import TextIO

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.errors import ConfigError
from streams.kafka import clients
from streams.settings import KafkaSettings

#: How long to wait for the broker's metadata before calling it unreachable.
METADATA_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Record:
    """One consumed record, independent of the client library."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp_ms: int | None

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def key_text(self) -> str:
        return "-" if self.key is None else self.key.decode("utf-8", errors="backslashreplace")


class _Progress:
    """Scan progress on stderr, at most once a second, only for scans that take a while."""

    def __init__(self, err: TextIO, label: str, total: int) -> None:
        self.err, self.label, self.total = err, label, total
        self.started = self.last = time.monotonic()
        self.seen = 0

    def tick(self) -> None:
        self.seen += 1
        now = time.monotonic()
        if now - self.last >= 1.0:
            self.last = now
            print(f"scanning {self.label}: {self.seen}/{self.total} records", file=self.err)

    def done(self) -> None:
        if time.monotonic() - self.started >= 1.0:
            print(f"scanned {self.label}: {self.seen} records", file=self.err)


class _Reader:
    """Consumers without a group position: assign, read, close. No offsets are committed."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.bootstrap = kafka.bootstrap_servers
        self.consumer = self._new_consumer()  # metadata and watermarks

    def _new_consumer(self) -> Consumer:
        return clients.consumer(
            self.kafka,
            {
                "group.id": f"streams-inspect-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            },
        )

    def close(self) -> None:
        self.consumer.close()

    def partitions(self, topic: str, *, missing_ok: bool = False) -> dict[int, tuple[int, int]]:
        """partition -> (low, high) watermarks; a missing topic is a :class:`ConfigError`."""
        try:
            meta = self.consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S).topics.get(topic)
            if meta is None or meta.error is not None:
                if missing_ok:
                    return {}
                raise ConfigError(
                    f"topic {topic!r} does not exist on {self.bootstrap}; "
                    "check the topic name and --bootstrap"
                )
            return {
                p: self.consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=METADATA_TIMEOUT_S
                )
                for p in sorted(meta.partitions)
            }
        except KafkaException as exc:
            raise ConfigError(
                f"cannot read {topic!r} from Kafka at {self.bootstrap} ({exc.args[0]}); "
                "check --bootstrap or kafka.bootstrap_servers"
            ) from None

    def read(
        self,
        topic: str,
        starts: dict[int, int],
        ends: dict[int, int],
        *,
        follow: bool = False,
        progress: _Progress | None = None,
    ) -> Generator[Record, None, None]:
        """Records from ``starts`` up to ``ends`` (or forever, with ``follow``)."""
        remaining = {p: end for p, end in ends.items() if follow or starts[p] < end}
        if not remaining:
            return
        # A fresh consumer per read: re-assigning a used one stalls for seconds per topic.
        consumer = self._new_consumer()
        try:
            consumer.assign([TopicPartition(topic, p, starts[p]) for p in remaining])
            while remaining or follow:
                msg = consumer.poll(0.5)
                if msg is None:
                    # Transaction markers take offsets but are never delivered: compare positions.
                    for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                        if tp.offset >= remaining.get(tp.partition, 1 << 62):
                            remaining.pop(tp.partition, None)
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        remaining.pop(msg.partition() or 0, None)
                        continue
                    raise ConfigError(f"reading {topic!r} failed: {err.str()}")
                record = _record(msg, topic)
                if record.offset + 1 >= remaining.get(record.partition, 1 << 62):
                    remaining.pop(record.partition, None)
                if progress is not None:
                    progress.tick()
                yield record
        finally:
            consumer.close()

    def fetch(self, topic: str, partition: int, offset: int) -> Record | None:
        """The one record at ``topic[partition]@offset``, if it is still there."""
        low, high = self.partitions(topic).get(partition, (0, 0))
        if not low <= offset < high:
            return None
        with contextlib.closing(
            self.read(topic, {partition: offset}, {partition: offset + 1})
        ) as it:
            return next((r for r in it if r.offset == offset), None)


def _record(msg: Message, topic: str) -> Record:
    _kind, ts = msg.timestamp()
    raw_headers = msg.headers() or []
    pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
    return Record(
        topic=msg.topic() or topic,
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=msg.key(),
        value=msg.value(),
        headers={k: v if isinstance(v, bytes) else (v or "").encode() for k, v in pairs},
        timestamp_ms=ts if ts > 0 else None,
    )
