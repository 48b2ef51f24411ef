"""Prometheus metrics. One object, injected; tests give each worker its own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["Metrics"]


class Metrics:
    """The worker's metrics, registered on ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.records_in = Counter(
            "streams_records_in", "Records consumed from the raw topic.", ["pipeline"], registry=r
        )
        self.records_out = Counter(
            "streams_records_out",
            "Records produced, by outcome topic.",
            ["pipeline", "outcome"],
            registry=r,
        )
        self.in_flight = Gauge(
            "streams_records_in_flight", "Records being processed now.", ["pipeline"], registry=r
        )
        self.paused = Gauge(
            "streams_fetch_paused",
            "1 while fetching is paused (backpressure or open circuit).",
            ["pipeline"],
            registry=r,
        )
        self.latency = Histogram(
            "streams_record_seconds",
            "Wall time from fetch to acknowledged output.",
            ["pipeline", "outcome"],
            registry=r,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` over HTTP in a background thread."""
        start_http_server(port, addr=host, registry=self.registry)
