"""One pipeline as a faust agent: the same Pipeline, Output, OffsetTracker and KeyedChains.

:class:`PipelineAgent` is what an agent's stream feeds (:meth:`PipelineAgent.consume`).
Per event it does what :class:`streams.worker.Worker` does per record:

* up to ``worker.max_buffered`` records are accepted and unfinished at once (the stream
  is not read further until one finishes: backpressure), and up to
  ``worker.max_in_flight`` run their pipeline at once;
* records with the same key of a partition run in offset order
  (:class:`~streams.offsets.KeyedChains`);
* the outcome is fitted and produced by :class:`~streams.kafka.output.Output` with the
  project's own idempotent ``acks=all`` producer (not faust's), and only after its ack
  is the record released to :class:`~streams.faust_app._consumer.SafeConsumer`, which
  acks faust's messages as a contiguous prefix and commits below the lowest unfinished.

A record whose task fails or is cancelled is never released: its partition stops
committing there, and the record is redone after a restart or by the next owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaProducer
from faust.types import TP, EventT, Message

from streams.envelope import RawRecord
from streams.kafka.output import Output, output_producer
from streams.kafka.preflight import preflight_access, preflight_connection
from streams.kafka.produce import output_size_limit
from streams.kafka.record import RecordStages
from streams.metrics import Metrics
from streams.offsets import KeyedChains
from streams.pipeline import Pipeline
from streams.reporting import WorkerReport
from streams.settings import Settings
from streams.worker import Resource

__all__ = ["PipelineAgent"]

log = logging.getLogger("streams.faust")


class PipelineAgent:
    """Runs ``pipeline`` for the events of one faust agent; started and stopped by the app."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        metrics: Metrics,
        resources: tuple[Resource, ...],
        consumer: Any,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.resources = resources
        #: The app's :class:`SafeConsumer`: what :meth:`_handle` releases finished records to.
        self.consumer = consumer
        self.metrics = metrics
        self.report = WorkerReport(metrics, pipeline)
        self.guard = pipeline.extractor.guard
        kafka = settings.kafka
        self.output = Output(
            pipeline,
            self.guard,
            metrics,
            output_size_limit(kafka.max_request_size, None),
            make_producer=self._make_producer,
            on_renewed=self._set_producer,
        )
        pipeline.extractor.on_cache_lookup = self.report.cache_lookup
        pipeline.extractor.on_cache_rejected = self.report.cache_rejected
        self.produced: dict[str, int] = {}
        self._chains = KeyedChains()
        self._stages = RecordStages(
            pipeline,
            metrics,
            self.report,
            self.output,
            asyncio.Semaphore(settings.worker.max_in_flight),
        )
        self._room = asyncio.Semaphore(settings.worker.max_buffered)
        self._tasks: dict[TP, set[asyncio.Task[None]]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._started: list[Resource] = []
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Check access, create the output topics, start the state stores and the producer."""
        kafka = self.settings.kafka
        await preflight_connection(kafka)
        await preflight_access(self.settings, self.pipeline.settings)
        await self.output.prepare(kafka)
        for resource in self.resources:
            await resource.start()
            self._started.append(resource)
        self._producer = self._make_producer()
        await self._producer.start()
        self._ready.set()

    def _make_producer(self) -> AIOKafkaProducer:
        return output_producer(self.settings, self.pipeline.name)

    def _set_producer(self, producer: AIOKafkaProducer) -> None:
        # Output replaced a producer that lost its sequence numbers; stop() closes this one.
        self._producer = producer

    async def consume(self, events: AsyncIterator[EventT[Any]]) -> None:
        """The agent's body: accept every event of the (``noack``) stream."""
        await self._ready.wait()
        async for event in events:
            await self._room.acquire()
            self._accept(event.message)

    def _accept(self, message: Message) -> None:
        raw = RawRecord(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            headers=tuple(
                (k, None if v is None else bytes(v)) for k, v in _headers(message.headers)
            ),
            timestamp_ms=int(message.timestamp * 1000),
        )
        self.metrics.records_in.labels(self.pipeline.name).inc()
        tp = message.tp
        chain_key: Any = (tp, raw.key) if raw.key is not None else (tp, "#", raw.offset)
        previous, mine = self._chains.enqueue(chain_key)
        task = asyncio.create_task(self._handle(message, raw, chain_key, previous, mine))
        self._tasks.setdefault(tp, set()).add(task)
        task.add_done_callback(self._tasks[tp].discard)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._room.release()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("record task failed; its partition stops committing", exc_info=exc)

    async def _handle(
        self,
        message: Message,
        raw: RawRecord,
        chain_key: Any,
        previous: asyncio.Future[None] | None,
        mine: asyncio.Future[None],
    ) -> None:
        try:
            outcome, started = await self._stages.run(raw, previous)
            assert self._producer is not None
            outcome = await self.output.deliver(self._producer, raw, outcome)
            self.consumer.release(message)
            route = outcome.route.value
            self.produced[route] = self.produced.get(route, 0) + 1
            self.report.routed(route, time.monotonic() - started)
        finally:
            self._chains.release(chain_key, mine)

    async def drain(self, timeout: float, tps: set[TP] | None = None) -> None:
        """Let the records of ``tps`` (default all) finish within ``timeout``; cancel the
        rest, which stay uncommitted and are redone by the partition's next owner."""
        tasks = {t for tp, ts in self._tasks.items() if tps is None or tp in tps for t in ts}
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            if pending:
                log.warning(
                    "drain: %d record(s) still running after %.1fs; cancelling them, "
                    "uncommitted, to be redone",
                    len(pending),
                    timeout,
                )
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def stop(self) -> None:
        """Close the producer, the state stores, the guard and the provider, each bounded."""
        closers: list[Any] = [self.guard.close(), self.pipeline.extractor.provider.aclose()]
        if self._producer is not None:
            closers.append(self._producer.stop())
        closers += [r.stop() for r in reversed(self._started)]
        for closer in closers:
            try:
                await asyncio.wait_for(closer, timeout=5.0)
            except Exception as exc:  # closing must go on: every client gets its stop()
                log.warning("closing %s failed: %r", getattr(closer, "__qualname__", closer), exc)


def _headers(headers: Any) -> list[tuple[str, Any]]:
    # faust gives a list of pairs, or a mapping when a header was set by faust itself.
    if not headers:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)
