"""One record's task up to delivery, the same in both engines (the worker, faust's agent)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from streams.envelope import RawRecord
from streams.kafka.output import Output
from streams.metrics import Metrics
from streams.pipeline import Outcome, Pipeline
from streams.reporting import WorkerReport


@dataclass(frozen=True)
class RecordStages:
    """Waits for the key's previous record, runs the pipeline in a slot, fits the outcome.

    ``slots`` bounds the records in flight; the in-flight gauge counts those holding
    or waiting for one. Delivery (and the offset bookkeeping) stays with the engine.
    """

    pipeline: Pipeline
    metrics: Metrics
    report: WorkerReport
    output: Output
    slots: asyncio.Semaphore

    async def run(
        self, raw: RawRecord, previous: asyncio.Future[None] | None
    ) -> tuple[Outcome, float]:
        """The fitted outcome of ``raw`` and the monotonic time its turn came."""
        if previous is not None:
            await asyncio.shield(previous)
        started = time.monotonic()
        gauge = self.metrics.in_flight.labels(self.pipeline.name)
        gauge.inc()
        try:
            async with self.slots:
                outcome = await self.pipeline.process(raw)
        finally:
            gauge.dec()
        self.report.observed(outcome)
        return self.output.fit(raw, outcome), started
