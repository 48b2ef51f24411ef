"""The Kafka adapter: consume, process concurrently, produce, commit safely.

This is the only module that talks to the broker for the pipeline. The
guarantees it adds on top of :class:`streams.pipeline.Pipeline`:

* every consumed record gets exactly one produced outcome, and its offset is
  committed only after that outcome is acknowledged by the broker (acks=all,
  idempotent producer);
* up to ``max_in_flight`` records are processed at once; records with the
  same key are processed in offset order (:class:`streams.offsets.KeyedChains`);
* commits never pass the lowest unfinished offset of a partition;
* fetching pauses when ``max_buffered`` records are unfinished (backpressure)
  or while the provider's circuit is open, without leaving the group;
* on a rebalance, revoked partitions are drained and committed first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError, ProducerFenced

from streams.envelope import RawRecord
from streams.errors import Route
from streams.metrics import Metrics, field_label
from streams.offsets import KeyedChains, OffsetTracker
from streams.pipeline import Outcome, Pipeline
from streams.settings import Settings
from streams.state.admin import TopicSpec, ensure_topics, partition_count

__all__ = ["CircuitBreaker", "Worker", "WorkerStats"]

log = logging.getLogger("streams.worker")

OutcomeHook = Callable[[RawRecord, Outcome], None]


class Resource(Protocol):
    """Something the worker starts before consuming and stops after (cache, spend log)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class WorkerStats:
    """Counters a caller (the demo, a test) can read while the worker runs."""

    consumed: int = 0
    produced: dict[str, int] = field(default_factory=dict)
    paused_retries: int = 0
    commits: int = 0

    @property
    def total_out(self) -> int:
        return sum(self.produced.values())


class CircuitBreaker:
    """Opens when the provider is unavailable; calls wait while it is open."""

    def __init__(self, cool_off_s: float) -> None:
        self.cool_off_s = cool_off_s
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self) -> None:
        self._open_until = time.monotonic() + self.cool_off_s

    async def wait_closed(self) -> None:
        while (delay := self._open_until - time.monotonic()) > 0:
            await asyncio.sleep(delay)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.drain(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))


class Worker:
    """Runs one pipeline as one member of the consumer group ``<prefix>.<pipeline>``."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        *,
        metrics: Metrics | None = None,
        on_outcome: OutcomeHook | None = None,
        resources: tuple[Resource, ...] = (),
        drain_timeout_s: float = 60.0,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.metrics = metrics or Metrics()
        self.on_outcome = on_outcome
        self.drain_timeout_s = drain_timeout_s
        self.resources = resources
        self.exactly_once = settings.worker.exactly_once
        self.worker_id = settings.worker.worker_id or f"{os.getpid()}"
        self.group_id = f"{settings.kafka.group_prefix}.{pipeline.name}"
        self.stats = WorkerStats()
        self._labels = (
            pipeline.name,
            pipeline.extractor.provider.name,
            pipeline.extractor.provider.model,
        )
        pipeline.extractor.on_cache_lookup = self._cache_lookup
        self.breaker = CircuitBreaker(settings.worker.pause_backoff_s)
        self._tracker = OffsetTracker()
        self._chains = KeyedChains()
        self._slots = asyncio.Semaphore(settings.worker.max_in_flight)
        self._tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._paused = False
        # Exactly-once mode: finished outcomes wait here for the next transaction.
        self._finished: dict[TopicPartition, dict[int, tuple[RawRecord, Outcome, float]]] = {}
        self._txn_lock = asyncio.Lock()
        self.ready = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then drain in-flight records and commit."""
        kafka = self.settings.kafka
        await self._ensure_output_topics()
        producer_opts: dict[str, Any] = {}
        if self.exactly_once:
            # A stable transactional id fences a zombie predecessor after a restart.
            producer_opts["transactional_id"] = f"{self.group_id}.{self.worker_id}"
        self._producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id=f"{kafka.client_id}.{self.pipeline.name}",
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            **producer_opts,
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            client_id=f"{kafka.client_id}.{self.pipeline.name}",
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=500,
        )
        started: list[Resource] = []
        try:
            for resource in self.resources:
                await resource.start()
                started.append(resource)
            await self._producer.start()
            await self._consumer.start()
            self._consumer.subscribe(
                [self.pipeline.settings.input_topic], listener=_Rebalance(self)
            )
            await self._loop(stop)
            await self.drain(set(self._tasks), timeout=self.drain_timeout_s)
        finally:
            await self._consumer.stop()
            await self._producer.stop()
            for resource in reversed(started):
                await resource.stop()

    async def _ensure_output_topics(self) -> None:
        """Create the four output topics with the input topic's partition count."""
        bootstrap = self.settings.kafka.bootstrap_servers
        parts = await partition_count(bootstrap, self.pipeline.settings.input_topic)
        routes = [r for r in Route if r is not Route.PAUSE]
        await ensure_topics(
            bootstrap,
            [TopicSpec(self.pipeline.settings.topic(r.value), parts or -1) for r in routes],
        )

    async def _loop(self, stop: asyncio.Event) -> None:
        assert self._consumer is not None
        interval = self.settings.worker.commit_interval_s
        last_commit = time.monotonic()
        self.ready.set()
        while not stop.is_set():
            self._apply_backpressure()
            batches = await self._consumer.getmany(timeout_ms=200, max_records=500)
            for tp, messages in batches.items():
                for message in messages:
                    self._schedule(tp, message)
            if time.monotonic() - last_commit >= interval:
                await self.commit()
                last_commit = time.monotonic()
        await self.commit()

    def _apply_backpressure(self) -> None:
        assert self._consumer is not None
        should_pause = (
            self._tracker.in_flight() >= self.settings.worker.max_buffered or self.breaker.is_open
        )
        assignment = self._consumer.assignment()
        if should_pause and assignment:
            # Every loop, so partitions assigned while paused are paused as well.
            self._consumer.pause(*assignment)
            if not self._paused:
                self._paused = True
                self.metrics.paused.labels(self.pipeline.name).set(1)
        elif not should_pause and self._paused:
            self._consumer.resume(*assignment)
            self._paused = False
            self.metrics.paused.labels(self.pipeline.name).set(0)

    # -- per record -------------------------------------------------------------------

    def _schedule(self, tp: TopicPartition, message: ConsumerRecord[bytes, bytes]) -> None:
        raw = RawRecord(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            headers=tuple((k, bytes(v)) for k, v in (message.headers or ())),
            timestamp_ms=message.timestamp,
        )
        self.stats.consumed += 1
        self.metrics.records_in.labels(self.pipeline.name).inc()
        self._tracker.add(tp, raw.offset)
        chain_key: Any = (tp, raw.key) if raw.key is not None else (tp, "#", raw.offset)
        previous, mine = self._chains.enqueue(chain_key)
        task = asyncio.create_task(self._handle(tp, raw, chain_key, previous, mine))
        self._tasks.setdefault(tp, set()).add(task)
        task.add_done_callback(self._tasks[tp].discard)
        task.add_done_callback(self._report_crash)

    @staticmethod
    def _report_crash(task: asyncio.Task[None]) -> None:
        # A failed task leaves its offset unfinished, so the partition's commits stop
        # there (nothing is lost, the record is re-read after a restart). Say so loudly.
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("record task failed; its partition stops committing", exc_info=exc)

    async def _handle(
        self,
        tp: TopicPartition,
        raw: RawRecord,
        chain_key: Any,
        previous: asyncio.Future[None] | None,
        mine: asyncio.Future[None],
    ) -> None:
        try:
            if previous is not None:
                await asyncio.shield(previous)
            started = time.monotonic()
            self.metrics.in_flight.labels(self.pipeline.name).inc()
            try:
                async with self._slots:
                    outcome = await self._process(raw)
            finally:
                self.metrics.in_flight.labels(self.pipeline.name).dec()
            self._observe(outcome)
            if self.exactly_once:
                # Produced later, inside the transaction that also commits its offset.
                self._finished.setdefault(tp, {})[raw.offset] = (raw, outcome, started)
                self._tracker.done(tp, raw.offset)
            else:
                await self._deliver(outcome)
                self._tracker.done(tp, raw.offset)
                self._delivered(raw, outcome, started)
        finally:
            self._chains.release(chain_key, mine)

    async def _process(self, raw: RawRecord) -> Outcome:
        while True:
            await self.breaker.wait_closed()
            outcome = await self.pipeline.process(raw)
            if outcome.route is not Route.PAUSE:
                if not self.breaker.is_open:
                    self.metrics.circuit_open.labels(*self._labels[:2]).set(0)
                return outcome
            self.metrics.circuit_open.labels(*self._labels[:2]).set(1)
            for status in outcome.request_statuses:
                self.metrics.model_requests.labels(*self._labels, status).inc()
            # The provider is down: keep the record, stop fetching, try again later.
            self.stats.paused_retries += 1
            self.breaker.trip()
            log.warning(
                "provider unavailable; pausing %s for %.1fs (%s)",
                raw.coordinates,
                self.breaker.cool_off_s,
                outcome.reason,
            )

    def _cache_lookup(self, hit: bool) -> None:
        self.metrics.cache_lookups.labels(self.pipeline.name).inc()
        if hit:
            self.metrics.cache_hits.labels(self.pipeline.name).inc()

    def _observe(self, outcome: Outcome) -> None:
        """Per-record model metrics, from the outcome's attempt log."""
        m, (pipe, provider, model) = self.metrics, self._labels
        contract = self.pipeline.contract.ref
        for status in outcome.request_statuses:
            m.model_requests.labels(pipe, provider, model, status).inc()
        for attempt in outcome.attempt_log:
            m.attempts.labels(pipe).inc()
            m.request_seconds.labels(pipe, provider, model).observe(attempt.latency_ms / 1000)
            for err in attempt.errors:
                m.validation_errors.labels(pipe, contract, field_label(err.path), err.type).inc()
        m.tokens.labels(pipe, "input").inc(outcome.input_tokens)
        m.tokens.labels(pipe, "output").inc(outcome.output_tokens)
        m.cost.labels(pipe).inc(outcome.cost_usd)
        m.record_cost.labels(pipe).observe(outcome.cost_usd)
        if outcome.coverage is not None:
            m.grounding.labels(pipe).observe(outcome.coverage)

    def _delivered(self, raw: RawRecord, outcome: Outcome, started: float) -> None:
        route = outcome.route.value
        log.log(
            logging.DEBUG if outcome.route is Route.VALID else logging.INFO,
            "record routed",
            extra={
                "record": raw.coordinates,
                "record_id": outcome.document_id,
                "route": route,
                "reason": outcome.reason,
                "attempts": outcome.attempts,
                "cost_usd": round(outcome.cost_usd, 8),
            },
        )
        self.stats.produced[route] = self.stats.produced.get(route, 0) + 1
        self.metrics.records_out.labels(self.pipeline.name, route).inc()
        self.metrics.record_seconds.labels(self.pipeline.name, route).observe(
            time.monotonic() - started
        )
        if self.on_outcome is not None:
            self.on_outcome(raw, outcome)

    async def _deliver(self, outcome: Outcome) -> None:
        assert self._producer is not None
        delay = 0.5
        while True:
            try:
                ack = await self._producer.send(
                    outcome.topic, outcome.value, key=outcome.key, headers=list(outcome.headers)
                )
                await ack
                return
            except KafkaError as exc:
                # The idempotent producer already retried internally; keep the record
                # uncommitted and try again rather than losing it.
                log.warning(
                    "produce to %s failed (%s); retrying in %.1fs", outcome.topic, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    # -- commits and rebalances -------------------------------------------------------

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        """Commit, per partition, up to the lowest offset still in flight."""
        if self._consumer is None:
            return
        keep = only if only is not None else self._consumer.assignment()
        offsets = {
            tp: off
            for tp, off in self._tracker.to_commit().items()
            if isinstance(tp, TopicPartition) and tp in keep
        }
        if not offsets:
            return
        if self.exactly_once:
            await self._commit_transaction(offsets)
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            log.warning("commit failed (%s); will retry on the next interval", exc)
            return
        self._tracker.mark_committed(dict(offsets))
        self.stats.commits += 1
        self._update_gauges(offsets)

    def _update_gauges(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        for tp, committed in offsets.items():
            high = self._consumer.highwater(tp)
            if high is not None:
                self.metrics.lag.labels(self.pipeline.name, str(tp.partition)).set(
                    max(0, high - committed)
                )
        spend = self.pipeline.extractor.spend
        if spend is not None:
            left = spend.remaining("pipeline")
            if left is not None:
                self.metrics.budget_remaining.labels(self.pipeline.name, "pipeline").set(left)
            cap = self.settings.budgets.spend_cap_usd
            if cap is not None:
                self.metrics.budget_cap.labels(self.pipeline.name, "pipeline").set(cap)

    async def _commit_transaction(self, offsets: dict[TopicPartition, int]) -> None:
        """Produce finished outcomes below each commit point and commit offsets atomically."""
        assert self._producer is not None
        async with self._txn_lock:
            batch = [
                (tp, off, pair)
                for tp, below in offsets.items()
                for off, pair in sorted(self._finished.get(tp, {}).items())
                if off < below
            ]
            try:
                async with self._producer.transaction():
                    for _tp, _off, (_raw, outcome, _started) in batch:
                        await self._producer.send(
                            outcome.topic,
                            outcome.value,
                            key=outcome.key,
                            headers=list(outcome.headers),
                        )
                    await self._producer.send_offsets_to_transaction(offsets, self.group_id)
            except ProducerFenced:
                log.error("producer fenced by a newer instance of this worker; stopping")
                raise
            except KafkaError as exc:
                log.warning("transaction aborted (%s); will retry on the next interval", exc)
                return
            for tp, off, (raw, outcome, started) in batch:
                self._finished[tp].pop(off, None)
                self._delivered(raw, outcome, started)
            self._tracker.mark_committed(dict(offsets))
            self.stats.commits += 1
            self._update_gauges(offsets)

    async def drain(self, tps: set[TopicPartition], timeout: float | None = None) -> None:
        """Finish (or, past ``timeout``, cancel) in-flight work of ``tps``; commit them."""
        tasks = [t for tp in tps for t in self._tasks.get(tp, set())]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout or self.drain_timeout_s)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.commit(only=tps)
        for tp in tps:
            self._tracker.forget(tp)
            self._tasks.pop(tp, None)
            self._finished.pop(tp, None)
