"""Reading past a record the consumer library cannot parse.

Kafka stores header keys as bytes, and a producer that is not a Java or
librdkafka-Python client can write keys that are not UTF-8. aiokafka decodes
every header key as UTF-8 while it parses a fetch, so one such record makes
every ``getmany`` raise and would stop the worker. When that happens the
worker reads the record at each partition's position with librdkafka instead
(:func:`read_at`), processes it like any other record, and seeks past it.

confluent-kafka cannot decode such keys either, so a rescued record's headers
are replaced by one :data:`UNDECODABLE_HEADERS` header: the record's key and
value are routed as usual, and its envelope says the headers were dropped.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka.errors import CorruptRecordException
from confluent_kafka import KafkaError, TopicPartition

from streams.envelope import RawRecord
from streams.kafka import clients
from streams.kafka.clients import KafkaTarget

__all__ = ["UNDECODABLE_HEADERS", "UNPARSEABLE_FETCH", "read_at"]

#: The header a rescued record carries in lineage when its own headers could not be decoded.
UNDECODABLE_HEADERS = "streams.headers-undecodable"

#: What aiokafka raises for a fetch it cannot parse: the C reader lets the decode error
#: out, the pure-Python reader wraps it.
UNPARSEABLE_FETCH: tuple[type[BaseException], ...] = (UnicodeDecodeError, CorruptRecordException)


def _read(kafka: KafkaTarget, topic: str, partition: int, offset: int) -> RawRecord | None:
    consumer = clients.consumer(
        kafka,
        {
            "group.id": f"streams-rescue-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        },
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        for _ in range(40):
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return None
                continue
            raw_headers: list[tuple[Any, Any]]
            try:
                got = msg.headers() or []
                raw_headers = list(got.items() if isinstance(got, dict) else got)
            except (UnicodeDecodeError, ValueError, SystemError):
                # librdkafka's binding cannot decode the keys either (it raises SystemError
                # chained to the UnicodeDecodeError): say so in lineage, keep the record.
                raw_headers = [(UNDECODABLE_HEADERS, b"header keys were not UTF-8; dropped")]
            headers = tuple(
                (
                    k if isinstance(k, str) else bytes(k).decode("utf-8", "backslashreplace"),
                    None if v is None else bytes(v) if not isinstance(v, str) else v.encode(),
                )
                for k, v in raw_headers
            )
            ts_type, ts = msg.timestamp()
            return RawRecord(
                topic=topic,
                partition=partition,
                offset=int(msg.offset() or offset),
                key=msg.key(),
                value=msg.value(),
                headers=headers,
                timestamp_ms=ts if ts_type else None,
            )
        return None
    finally:
        consumer.close()


async def read_at(kafka: KafkaTarget, topic: str, partition: int, offset: int) -> RawRecord | None:
    """The record at (or, past a transaction marker, after) ``offset``; None at the end."""
    return await asyncio.to_thread(_read, kafka, topic, partition, offset)
