"""What a worker reports to Prometheus about one pipeline, in one place.

The worker calls these at the points it knows something: a cache lookup, an
outcome, a commit, a change of the guard's state. Label values come from
configuration and fixed enumerations only (see :mod:`streams.metrics`).
"""

from __future__ import annotations

from typing import Any

from streams.guard import GuardState, ProviderGuard
from streams.metrics import Metrics, field_label
from streams.pipeline import Outcome, Pipeline
from streams.protocols import SpendGuard

__all__ = ["WorkerReport"]


class WorkerReport:
    """The metrics of one worker's pipeline."""

    def __init__(self, metrics: Metrics, pipeline: Pipeline) -> None:
        self.metrics = metrics
        provider = pipeline.extractor.provider
        self.pipe, self.provider, self.model = pipeline.name, provider.name, provider.model
        self.contract = pipeline.contract.ref
        self._guard_state = GuardState.CLOSED
        self._trips_seen = 0
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once per label set: the per-record
        methods below call it about fifteen times a record, and ``labels()`` takes a
        lock and re-stringifies its values each time. Bounded like the metric's own
        children (label values come from configuration and fixed enumerations)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def cache_lookup(self, hit: bool) -> None:
        self._child(self.metrics.cache_lookups, self.pipe).inc()
        if hit:
            self._child(self.metrics.cache_hits, self.pipe).inc()

    def cache_rejected(self, reason: str) -> None:
        self._child(self.metrics.cache_rejected, self.pipe, reason).inc()

    def observed(self, outcome: Outcome) -> None:
        """Per-record model metrics, from the outcome's attempt log."""
        m, pipe, provider, model, c = (
            self.metrics,
            self.pipe,
            self.provider,
            self.model,
            self._child,
        )
        for status in outcome.request_statuses:
            c(m.model_requests, pipe, provider, model, status).inc()
        for attempt in outcome.attempt_log:
            c(m.attempts, pipe).inc()
            c(m.request_seconds, pipe, provider, model).observe(attempt.latency_ms / 1000)
            for err in attempt.errors:
                c(m.validation_errors, pipe, self.contract, field_label(err.path), err.type).inc()
        c(m.tokens, pipe, "input").inc(outcome.input_tokens)
        c(m.tokens, pipe, "output").inc(outcome.output_tokens)
        c(m.cost, pipe).inc(outcome.cost_usd)
        c(m.record_cost, pipe).observe(outcome.cost_usd)
        if outcome.coverage is not None:
            c(m.grounding, pipe).observe(outcome.coverage)

    def routed(self, route: str, seconds: float) -> None:
        self._child(self.metrics.records_out, self.pipe, route).inc()
        self._child(self.metrics.record_seconds, self.pipe, route).observe(seconds)

    def guard(self, guard: ProviderGuard) -> None:
        """Mirror the guard's state (the guard itself logs the transitions)."""
        if guard.trips != self._trips_seen:
            self.metrics.circuit_trips.labels(self.pipe).inc(guard.trips - self._trips_seen)
            self._trips_seen = guard.trips
        state = guard.state
        if state is self._guard_state:
            return
        self._guard_state = state
        self.metrics.circuit_open.labels(self.pipe, self.provider).set(
            1 if state is GuardState.OPEN else 0
        )
        self.metrics.held.labels(self.pipe, "provider").set(1 if guard.held_reason else 0)
        self.metrics.held.labels(self.pipe, "state").set(1 if guard.state_fault else 0)

    def lag(self, partition: int, high: int, committed: int) -> None:
        self.metrics.lag.labels(self.pipe, str(partition)).set(max(0, high - committed))

    def spend(self, spend: SpendGuard | None, cap: float | None) -> None:
        if spend is None:
            return
        left = spend.remaining("pipeline")
        if left is not None:
            self.metrics.budget_remaining.labels(self.pipe, "pipeline").set(left)
        if cap is not None:
            self.metrics.budget_cap.labels(self.pipe, "pipeline").set(cap)
