"""The Kafka adapter: consume, process concurrently, produce, commit safely.

This is the only module that talks to the broker for the pipeline. The
guarantees it adds on top of :class:`streams.pipeline.Pipeline`:

* every consumed record gets exactly one produced outcome, and its offset is
  committed only after that outcome is acknowledged by the broker (acks=all,
  idempotent producer);
* up to ``max_in_flight`` records are processed at once; records with the
  same key are processed in offset order (:class:`streams.offsets.KeyedChains`);
* commits never pass the lowest unfinished offset of a partition;
* fetching pauses when ``max_buffered`` records are unfinished (backpressure),
  while the provider's circuit is open or while the pipeline is held on a
  deployment fault (:mod:`streams.guard`), without leaving the group;
* every outcome fits its topic: one over the output size limit takes its
  fallback route, and producer errors are classified once
  (:mod:`streams.kafka.produce`), so a fatal one never loops;
* every wait is bounded: a revoke drains for at most a fraction of the
  rebalance timeout and SIGTERM for ``worker.shutdown_timeout_s``; work still
  running then is cancelled, stays uncommitted and is redone by the next owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError, ProducerFenced

from streams.envelope import RawRecord
from streams.errors import Route
from streams.kafka import clients
from streams.kafka.output import Output, output_producer
from streams.kafka.preflight import preflight_access, preflight_connection
from streams.kafka.produce import ProduceFault, classify_produce_error, output_size_limit
from streams.kafka.record import RecordStages
from streams.kafka.rescue import UNPARSEABLE_FETCH, read_at
from streams.metrics import Metrics
from streams.offsets import KeyedChains, OffsetTracker
from streams.pipeline import Outcome, Pipeline
from streams.reporting import WorkerReport
from streams.settings import Settings

__all__ = ["Worker", "WorkerStats"]

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
    commits: int = 0
    too_large: int = 0
    cancelled: int = 0

    @property
    def total_out(self) -> int:
        return sum(self.produced.values())


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.drain(set(revoked), timeout=self.worker.revoke_timeout_s)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("assigned %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))
        if self.worker.on_assigned is not None:
            self.worker.on_assigned(assigned)


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
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.metrics = metrics or Metrics()
        self.on_outcome = on_outcome
        self.resources = resources
        worker, kafka = settings.worker, settings.kafka
        #: Bounds the SIGTERM drain; a revoke drains for at most a fraction of the
        #: rebalance timeout, so a draining member is never dropped from the group.
        self.shutdown_timeout_s = worker.shutdown_timeout_s
        self.revoke_timeout_s = settings.revoke_drain_s
        self.exactly_once = worker.exactly_once
        self.instance_id = worker.instance_id
        self.group_id = settings.group_id(pipeline.name)
        self.guard = pipeline.extractor.guard
        self.stats = WorkerStats()
        self.report = WorkerReport(self.metrics, pipeline)
        #: Fits every outcome under the output limit and produces it (retries, fallbacks).
        self.output = Output(
            pipeline,
            self.guard,
            self.metrics,
            output_size_limit(kafka.max_request_size, None),
            on_fallback=self._count_fallback,
            make_producer=self._make_producer,
            on_renewed=self._set_producer,
        )
        pipeline.extractor.on_cache_lookup = self.report.cache_lookup
        pipeline.extractor.on_cache_rejected = self.report.cache_rejected
        self._tracker = OffsetTracker()
        self._chains = KeyedChains()
        self._stages = RecordStages(
            pipeline,
            self.metrics,
            self.report,
            self.output,
            asyncio.Semaphore(settings.worker.max_in_flight),
        )
        self._tasks: dict[TopicPartition, set[asyncio.Task[None]]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._paused = False
        # Exactly-once mode: finished outcomes wait here for the next transaction.
        self._finished: dict[TopicPartition, dict[int, tuple[RawRecord, Outcome, float]]] = {}
        self._txn_lock = asyncio.Lock()
        self.ready = asyncio.Event()
        #: Called after each join with the (possibly empty) assignment: the health heartbeat.
        self.on_assigned: Callable[[set[TopicPartition]], None] | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then drain in-flight records (bounded) and commit."""
        kafka = self.settings.kafka
        # Credentials, certificates and ACLs fail here in one line, before anything is read.
        await preflight_connection(kafka)
        await preflight_access(self.settings, self.pipeline.settings)
        await self.output.prepare(kafka)
        self._producer = self._make_producer()
        client_id = f"{kafka.client_id}.{self.pipeline.name}"
        self._consumer = clients.aio_consumer(
            kafka,
            client_id=client_id,
            group_id=self.group_id,
            # Static membership: a restarted instance gets its partitions back without a
            # rebalance, as long as it returns within the session timeout.
            group_instance_id=self.instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=500,
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=kafka.heartbeat_interval_ms,
            rebalance_timeout_ms=kafka.rebalance_timeout_ms,
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
            await self.drain(set(self._tasks), timeout=self.shutdown_timeout_s)
        finally:
            await self._close(started)

    def _make_producer(self) -> AIOKafkaProducer:
        return output_producer(self.settings, self.pipeline.name)

    def _set_producer(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def _close(self, started: list[Resource]) -> None:
        """Close every client, each within a bound, even when one of them fails."""
        closers: list[Any] = [self.guard.close()]
        if self._consumer is not None:
            closers.append(self._consumer.stop())
        if self._producer is not None:
            closers.append(self._producer.stop())
        closers += [r.stop() for r in reversed(started)]
        for closer in closers:
            try:
                await asyncio.wait_for(closer, timeout=5.0)
            except Exception as exc:  # closing must go on: every client gets its stop()
                log.warning("closing %s failed: %r", getattr(closer, "__qualname__", closer), exc)

    async def _loop(self, stop: asyncio.Event) -> None:
        assert self._consumer is not None
        interval = self.settings.worker.commit_interval_s
        last_commit = time.monotonic()
        self.ready.set()
        while not stop.is_set():
            self.report.guard(self.guard)
            self._apply_backpressure()
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=500)
            except UNPARSEABLE_FETCH as exc:
                await self._rescue(exc)
                continue
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
            self._tracker.in_flight() >= self.settings.worker.max_buffered or self.guard.paused
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

    async def _rescue(self, exc: BaseException) -> None:
        """A fetch aiokafka cannot parse: read each partition's next record another way.

        See :mod:`streams.kafka.rescue`. Each unpaused partition advances by one record
        per failed fetch, so the unparseable record is reached and routed, never skipped.
        """
        assert self._consumer is not None
        log.warning("a fetch could not be parsed (%r); reading the next records one by one", exc)
        paused = self._consumer.paused()
        for tp in sorted(self._consumer.assignment() - paused):
            position = await self._consumer.position(tp)
            raw = await read_at(self.settings.kafka, tp.topic, tp.partition, position)
            if raw is None:
                continue
            self._start(tp, raw)
            self._consumer.seek(tp, raw.offset + 1)

    def _schedule(self, tp: TopicPartition, message: ConsumerRecord[bytes, bytes]) -> None:
        raw = RawRecord(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            # Kafka allows a header without a value; it stays None, never crashes bytes().
            headers=tuple((k, None if v is None else bytes(v)) for k, v in (message.headers or ())),
            timestamp_ms=message.timestamp,
        )
        self._start(tp, raw)

    def _start(self, tp: TopicPartition, raw: RawRecord) -> None:
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
            outcome, started = await self._stages.run(raw, previous)
            if self.exactly_once:
                # Produced later, inside the transaction that also commits its offset.
                self._finished.setdefault(tp, {})[raw.offset] = (raw, outcome, started)
                self._tracker.done(tp, raw.offset)
            else:
                assert self._producer is not None
                outcome = await self.output.deliver(self._producer, raw, outcome)
                self._tracker.done(tp, raw.offset)
                self._delivered(raw, outcome, started)
        except asyncio.CancelledError:
            self.stats.cancelled += 1  # a bounded drain gave up: uncommitted, redone later
            raise
        finally:
            self._chains.release(chain_key, mine)

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
        self.report.routed(route, time.monotonic() - started)
        if self.on_outcome is not None:
            self.on_outcome(raw, outcome)

    def _count_fallback(self) -> None:
        self.stats.too_large += 1

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
        self._gauges(offsets)

    def _gauges(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        for tp, committed in offsets.items():
            high = self._consumer.highwater(tp)
            if high is not None:
                self.report.lag(tp.partition, high, committed)
        self.report.spend(self.pipeline.extractor.spend, self.settings.budgets.spend_cap_usd)

    async def _commit_transaction(self, offsets: dict[TopicPartition, int]) -> None:
        """Produce finished outcomes below each commit point and commit offsets atomically.

        A record fault inside the transaction (an outcome the broker refuses) aborts
        it; that outcome is swapped for its fallback and the next interval retries, so
        one record can never stop every later transaction.
        """
        assert self._producer is not None
        async with self._txn_lock:
            batch = [
                (tp, off, pair)
                for tp, below in offsets.items()
                for off, pair in sorted(self._finished.get(tp, {}).items())
                if off < below
            ]
            refused: list[tuple[TopicPartition, int, KafkaError]] = []
            try:
                async with self._producer.transaction():
                    acks = []
                    for _tp, _off, (_raw, outcome, _started) in batch:
                        acks.append(
                            await self._producer.send(
                                outcome.topic,
                                outcome.value,
                                key=outcome.key,
                                headers=list(outcome.headers),
                            )
                        )
                    results = await asyncio.gather(*acks, return_exceptions=True)
                    for (tp, off, _pair), result in zip(batch, results, strict=True):
                        if isinstance(result, KafkaError):
                            if classify_produce_error(result) is ProduceFault.RECORD:
                                refused.append((tp, off, result))
                            else:
                                raise result
                        elif isinstance(result, BaseException):
                            raise result
                    if refused:
                        raise _Refused()
                    await self._producer.send_offsets_to_transaction(offsets, self.group_id)
            except _Refused:
                for tp, off, exc in refused:
                    raw, outcome, started = self._finished[tp][off]
                    fallback = self.output.fallback(raw, outcome, repr(exc))
                    self._finished[tp][off] = (raw, fallback, started)
                log.warning("transaction aborted: %d outcome(s) refused; retrying", len(refused))
                return
            except ProducerFenced:
                log.error("producer fenced by a newer instance of this worker; stopping")
                raise
            except KafkaError as exc:
                if classify_produce_error(exc) is ProduceFault.FENCED:
                    log.error("producer fenced (%r); stopping", exc)
                    raise
                self.metrics.produce_errors.labels(
                    self.pipeline.name, classify_produce_error(exc).value
                ).inc()
                log.warning("transaction aborted (%s); will retry on the next interval", exc)
                return
            for tp, off, (raw, outcome, started) in batch:
                self._finished[tp].pop(off, None)
                self._delivered(raw, outcome, started)
            self._tracker.mark_committed(dict(offsets))
            self.stats.commits += 1
            self._gauges(offsets)

    async def drain(self, tps: set[TopicPartition], timeout: float | None = None) -> None:
        """Finish in-flight work of ``tps`` within ``timeout``; cancel the rest; commit.

        Cancelled records are not committed: the next owner of the partition redoes them.
        """
        limit = self.shutdown_timeout_s if timeout is None else timeout
        tasks = [t for tp in tps for t in self._tasks.get(tp, set())]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=limit)
            if pending:
                log.warning(
                    "drain: %d record(s) still running after %.1fs; cancelling them, "
                    "uncommitted, for the next owner to redo",
                    len(pending),
                    limit,
                )
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


class _Refused(Exception):
    """Aborts a transaction in which the broker refused some outcomes."""
