"""The output path of one pipeline: fit each outcome under the size limit, produce it.

An outcome larger than :attr:`Output.limit` (``kafka.max_request_size``, lowered
to the output topics' ``max.message.bytes`` at start-up) takes its fallback route:
a small DLQ envelope, ``output_too_large``, that keeps the reference to the input.
Produce errors are classified by :mod:`streams.kafka.produce`.

aiokafka's idempotent producer does not recover its sequence numbers after a send the
broker refused (a revoked ACL): once the ACL is back, every send to that partition is
``OutOfOrderSequenceNumber``. Given ``make_producer``, :class:`Output` then replaces the
producer once (a new producer id starts its sequences afresh) and retries; the records
are still uncommitted, so nothing is lost and nothing is produced twice by the old one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber

from streams.envelope import RawRecord
from streams.errors import Route
from streams.guard import ProviderGuard
from streams.kafka import clients
from streams.kafka.produce import ProduceFault, classify_produce_error, output_size_limit
from streams.metrics import Metrics
from streams.pipeline import Outcome, Pipeline
from streams.settings import KafkaSettings, Settings
from streams.state.admin import TopicSpec, ensure_topics, max_message_bytes, partition_count

__all__ = ["Output", "output_producer"]

#: The producer's batch per partition: many records per produce request.
_MAX_BATCH_BYTES = 256 * 1024

log = logging.getLogger("streams.worker")


class Output:
    """Fits and produces the outcomes of ``pipeline`` (non-transactional path)."""

    def __init__(
        self,
        pipeline: Pipeline,
        guard: ProviderGuard,
        metrics: Metrics,
        limit: int,
        *,
        on_fallback: Callable[[], None] = lambda: None,
        make_producer: Callable[[], AIOKafkaProducer] | None = None,
        on_renewed: Callable[[AIOKafkaProducer], None] = lambda _: None,
    ) -> None:
        self.pipeline = pipeline
        self.make_producer = make_producer
        #: Told the replacement producer, so the owner closes that one at shutdown.
        self.on_renewed = on_renewed
        self._renew_lock = asyncio.Lock()
        #: The replacement last made; None until one is.
        self._current: AIOKafkaProducer | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.guard = guard
        self.metrics = metrics
        #: The largest key+value+headers an outcome may have.
        self.limit = limit
        self.on_fallback = on_fallback

    def fit(self, raw: RawRecord, outcome: Outcome) -> Outcome:
        """``outcome``, or its small DLQ fallback when it is over the output size limit."""
        if outcome.size <= self.limit:
            return outcome
        return self.fallback(raw, outcome, f"{outcome.size} bytes")

    def fallback(self, raw: RawRecord, outcome: Outcome, why: str) -> Outcome:
        self.on_fallback()
        self.metrics.too_large.labels(self.pipeline.name, outcome.route.value).inc()
        log.warning(
            "%s outcome of %s does not fit its topic (%s); sending it to the DLQ as "
            "output_too_large with a reference to the input",
            outcome.route.value,
            raw.coordinates,
            why,
        )
        return self.pipeline.too_large(raw, outcome, self.limit)

    async def deliver(
        self, producer: AIOKafkaProducer, raw: RawRecord, outcome: Outcome
    ) -> Outcome:
        """Produce ``outcome`` and wait for the ack; return the outcome actually produced.

        Faults per :data:`streams.kafka.produce.PRODUCE_ERRORS`: a retriable one is
        retried with backoff, a record fault takes the fallback route once (never loops),
        a deployment fault holds the pipeline while it retries, fencing stops the worker.
        Retrying has no deadline on purpose: the record is good and its offset stays
        uncommitted, so the only alternative is losing it; fetching pauses on a hold and a
        drain can still cancel the wait.
        """
        delay, fallen_back = 0.5, False
        while True:
            try:
                ack = await producer.send(
                    outcome.topic, outcome.value, key=outcome.key, headers=list(outcome.headers)
                )
                await ack
                self.guard.state_ok()
                return outcome
            except KafkaError as exc:
                fault = classify_produce_error(exc)
                self.metrics.produce_errors.labels(self.pipeline.name, fault.value).inc()
                if fault is ProduceFault.FENCED:
                    raise
                if isinstance(exc, OutOfOrderSequenceNumber) and self.make_producer is not None:
                    try:
                        producer = await self._renew(producer)
                        continue
                    except KafkaError as start_failed:  # the cluster is unreachable: retry
                        log.warning("replacing the producer failed (%r)", start_failed)
                if fault is ProduceFault.RECORD and not fallen_back:
                    outcome, fallen_back = self.fallback(raw, outcome, repr(exc)), True
                    continue
                if fault is not ProduceFault.RETRIABLE:
                    # A missing ACL, or a DLQ that refuses even the small fallback: the
                    # deployment must change. Hold (fetching pauses) and keep trying.
                    self.guard.state_failed(f"producing to {outcome.topic} failed: {exc!r}")
                log.warning(
                    "produce to %s failed (%s, %s); retrying in %.1fs",
                    outcome.topic,
                    exc,
                    fault.value,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def prepare(self, kafka: KafkaSettings) -> None:
        """Create the four output topics with the input topic's partition count, and lower
        :attr:`limit` to the smallest ``max.message.bytes`` among them (every engine)."""
        parts = await partition_count(kafka, self.pipeline.settings.input_topic)
        topics = [self.pipeline.settings.topic(r.value) for r in Route]
        await ensure_topics(kafka, [TopicSpec(t, parts or -1) for t in topics])
        limits = await max_message_bytes(kafka, topics)
        smallest = min(limits.values()) if limits else None
        self.limit = output_size_limit(kafka.max_request_size, smallest)
        if smallest is not None and smallest < kafka.max_request_size:
            log.info(
                "output topics accept %d bytes (max.message.bytes), below kafka.max_request_size "
                "%d; outcomes over %d bytes go to the DLQ as output_too_large",
                smallest,
                kafka.max_request_size,
                self.limit,
            )

    async def _renew(self, stale: AIOKafkaProducer) -> AIOKafkaProducer:
        """A started replacement for ``stale`` (made once, whoever asks first)."""
        async with self._renew_lock:
            if self._current is not None and stale is not self._current:
                return self._current  # replaced while this send waited for the lock
            assert self.make_producer is not None
            fresh = self.make_producer()
            await fresh.start()
            self._current = fresh
            self.on_renewed(fresh)
            log.warning(
                "the producer lost its sequence numbers after a refused send "
                "(OutOfOrderSequenceNumber); replaced it with a new one"
            )
            task = asyncio.create_task(_stop(stale))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            return fresh


async def _stop(producer: AIOKafkaProducer) -> None:
    """Close a replaced producer within a bound: its batches failed already."""
    try:
        await asyncio.wait_for(producer.stop(), 10.0)
    except Exception as exc:  # a dead producer's close must not crash the worker
        log.info("closing the replaced producer failed: %r", exc)


def output_producer(settings: Settings, pipeline: str) -> AIOKafkaProducer:
    """The producer of ``pipeline``'s outcomes (not started), for every engine: idempotent,
    ``acks=all``, transactional with ``worker.exactly_once``."""
    kafka = settings.kafka
    producer_opts: dict[str, object] = {}
    transactional_id = settings.transactional_id(pipeline)
    if transactional_id is not None:
        producer_opts["transactional_id"] = transactional_id
    return clients.aio_producer(
        kafka,
        client_id=f"{kafka.client_id}.{pipeline}",
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_request_size=kafka.max_request_size,
        # aiokafka's default batch (16 KiB) holds a handful of valid records; once it
        # is full every further send waits for a drain on a timer of its own.
        max_batch_size=min(_MAX_BATCH_BYTES, kafka.max_request_size),
        **producer_opts,
    )
