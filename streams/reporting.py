"""What a worker reports to Prometheus about one pipeline, in one place.

The worker calls these at the points it knows something: a cache lookup, an
outcome, a commit, a change of the guard's state. Label values come from
configuration and fixed enumerations only (see :mod:`streams.metrics`).
"""

from __future__ import annotations

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

    def cache_lookup(self, hit: bool) -> None:
        self.metrics.cache_lookups.labels(self.pipe).inc()
        if hit:
            self.metrics.cache_hits.labels(self.pipe).inc()

    def observed(self, outcome: Outcome) -> None:
        """Per-record model metrics, from the outcome's attempt log."""
        m, pipe, provider, model = self.metrics, self.pipe, self.provider, self.model
        for status in outcome.request_statuses:
            m.model_requests.labels(pipe, provider, model, status).inc()
        for attempt in outcome.attempt_log:
            m.attempts.labels(pipe).inc()
            m.request_seconds.labels(pipe, provider, model).observe(attempt.latency_ms / 1000)
            for err in attempt.errors:
                m.validation_errors.labels(
                    pipe, self.contract, field_label(err.path), err.type
                ).inc()
        m.tokens.labels(pipe, "input").inc(outcome.input_tokens)
        m.tokens.labels(pipe, "output").inc(outcome.output_tokens)
        m.cost.labels(pipe).inc(outcome.cost_usd)
        m.record_cost.labels(pipe).observe(outcome.cost_usd)
        if outcome.coverage is not None:
            m.grounding.labels(pipe).observe(outcome.coverage)

    def routed(self, route: str, seconds: float) -> None:
        self.metrics.records_out.labels(self.pipe, route).inc()
        self.metrics.record_seconds.labels(self.pipe, route).observe(seconds)

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
