"""Prometheus metrics. One object, injected; tests give each worker its own registry.

Names (all prefixed ``streams_``):

=================================  =========  ======================================
metric                             type       labels
=================================  =========  ======================================
records_in_total                   counter    pipeline
records_out_total                  counter    pipeline, outcome
validation_errors_total            counter    pipeline, contract, field, error_type
attempts_total                     counter    pipeline
model_requests_total               counter    pipeline, provider, model, status
tokens_total                       counter    pipeline, direction (input|output)
cost_usd_total                     counter    pipeline
cache_hits_total                   counter    pipeline
cache_lookups_total                counter    pipeline
record_seconds                     histogram  pipeline, outcome
model_request_seconds              histogram  pipeline, provider, model
record_cost_usd                    histogram  pipeline
grounding_coverage                 histogram  pipeline
budget_remaining_usd               gauge      pipeline, scope
budget_cap_usd                     gauge      pipeline, scope
circuit_open                       gauge      pipeline, provider
circuit_trips_total                counter    pipeline
pipeline_held                      gauge      pipeline, kind (provider|state)
outputs_too_large_total            counter    pipeline, route (the route it was meant for)
produce_errors_total               counter    pipeline, fault (retriable|record|deployment)
records_in_flight                  gauge      pipeline
fetch_paused                       gauge      pipeline
consumer_lag                       gauge      pipeline, partition
=================================  =========  ======================================

No label ever carries a document, a key or a secret: label values come from
configuration (pipeline, provider, model), contract field paths with list
indexes removed, and fixed enumerations.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["Metrics", "field_label"]

_INDEX = re.compile(r"\.\d+(?=\.|$)|\[\d+\]")


def field_label(path: str) -> str:
    """``line_items.3.amount`` -> ``line_items[].amount``: bounded label cardinality."""
    return _INDEX.sub("[]", path)


class Metrics:
    """The worker's metrics, registered on ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        p = ["pipeline"]
        self.records_in = Counter(
            "streams_records_in", "Records consumed from the raw topic.", p, registry=r
        )
        self.records_out = Counter(
            "streams_records_out",
            "Records produced and acknowledged, by outcome topic.",
            [*p, "outcome"],
            registry=r,
        )
        self.validation_errors = Counter(
            "streams_validation_errors",
            "Field-level validation errors seen in model answers (every attempt).",
            [*p, "contract", "field", "error_type"],
            registry=r,
        )
        self.attempts = Counter(
            "streams_attempts", "Model answers received (first calls and re-asks).", p, registry=r
        )
        self.model_requests = Counter(
            "streams_model_requests",
            "HTTP requests to the model provider, by result status.",
            [*p, "provider", "model", "status"],
            registry=r,
        )
        self.tokens = Counter(
            "streams_tokens", "Tokens reported by the provider.", [*p, "direction"], registry=r
        )
        self.cost = Counter("streams_cost_usd", "Model spend in USD.", p, registry=r)
        self.cache_hits = Counter(
            "streams_cache_hits", "Records served from the result cache.", p, registry=r
        )
        self.cache_lookups = Counter(
            "streams_cache_lookups", "Result-cache lookups.", p, registry=r
        )
        self.record_seconds = Histogram(
            "streams_record_seconds",
            "Wall time from fetch to acknowledged output.",
            [*p, "outcome"],
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.request_seconds = Histogram(
            "streams_model_request_seconds",
            "Latency of successful model requests.",
            [*p, "provider", "model"],
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
        )
        self.record_cost = Histogram(
            "streams_record_cost_usd",
            "Spend per record in USD.",
            p,
            registry=r,
            buckets=(0, 1e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 1),
        )
        self.grounding = Histogram(
            "streams_grounding_coverage",
            "Share of extracted values found in the source text, per valid record.",
            p,
            registry=r,
            buckets=(0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
        )
        self.budget_remaining = Gauge(
            "streams_budget_remaining_usd",
            "Spend cap left in the current window (as this worker sees the shared log).",
            [*p, "scope"],
            registry=r,
        )
        self.budget_cap = Gauge(
            "streams_budget_cap_usd",
            "Spend cap of the current window.",
            [*p, "scope"],
            registry=r,
        )
        self.circuit_open = Gauge(
            "streams_circuit_open",
            "1 while the provider circuit is open (fetching paused).",
            [*p, "provider"],
            registry=r,
        )
        self.circuit_trips = Counter(
            "streams_circuit_trips",
            "Times the circuit breaker opened on provider-wide failures.",
            p,
            registry=r,
        )
        self.held = Gauge(
            "streams_pipeline_held",
            "1 while the pipeline is held on a deployment fault (revoked key, missing model "
            "or ACL) or an unreachable state store; nothing is dead-lettered meanwhile.",
            [*p, "kind"],
            registry=r,
        )
        self.too_large = Counter(
            "streams_outputs_too_large",
            "Outcomes over the output size limit, sent to the DLQ as output_too_large.",
            [*p, "route"],
            registry=r,
        )
        self.produce_errors = Counter(
            "streams_produce_errors",
            "Produce failures by fault class (streams.kafka.produce).",
            [*p, "fault"],
            registry=r,
        )
        self.in_flight = Gauge(
            "streams_records_in_flight", "Records being processed now.", p, registry=r
        )
        self.paused = Gauge(
            "streams_fetch_paused",
            "1 while fetching is paused (backpressure or open circuit).",
            p,
            registry=r,
        )
        self.lag = Gauge(
            "streams_consumer_lag",
            "Records between the committed offset and the end of each input partition.",
            [*p, "partition"],
            registry=r,
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> Callable[[], None]:
        """Expose ``/metrics`` over HTTP in a background thread; returns a stop function."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop
