"""Prometheus metrics. One object, injected; tests give each worker its own registry.

Names (all prefixed ``streams_``). The last column is how a gauge is merged across the
worker processes of ``streams run --processes N`` (prometheus-client's multiprocess
mode, below); counters and histograms are always summed over every process that ever
ran, so they stay monotonic across a child's restart:

=======================  =========  =============================================  ==============
metric                   type       labels                                         --processes N
=======================  =========  =============================================  ==============
records_in_total         counter    pipeline                                       sum
records_out_total        counter    pipeline, outcome                              sum
validation_errors_total  counter    pipeline, contract, field, error_type          sum
attempts_total           counter    pipeline                                       sum
model_requests_total     counter    pipeline, provider, model, status              sum
tokens_total             counter    pipeline, direction (input|output)             sum
cost_usd_total           counter    pipeline                                       sum
cache_hits_total         counter    pipeline                                       sum
cache_lookups_total      counter    pipeline                                       sum
cache_rejected_total     counter    pipeline, reason (unsigned|forged|unusable|    sum
                                    grounding_policy)
record_seconds           histogram  pipeline, outcome                              sum
model_request_seconds    histogram  pipeline, provider, model                      sum
record_cost_usd          histogram  pipeline                                       sum
grounding_coverage       histogram  pipeline                                       sum
budget_remaining_usd     gauge      pipeline, scope                                livemostrecent
budget_cap_usd           gauge      pipeline, scope                                livemax
circuit_open             gauge      pipeline, provider                             livemax
circuit_trips_total      counter    pipeline                                       sum
pipeline_held            gauge      pipeline, kind (provider|state)                livemax
outputs_too_large_total  counter    pipeline, route (the route it was meant for)   sum
produce_errors_total     counter    pipeline, fault (retriable|record|deployment)  sum
records_in_flight        gauge      pipeline                                       livesum
fetch_paused             gauge      pipeline                                       livemax
consumer_lag             gauge      pipeline, partition                            livemostrecent
worker_restarts_total    counter    pipeline (served by the supervisor only)       --
=======================  =========  =============================================  ==============

Why each gauge mode: in-flight records add up across processes (``livesum``). The 0/1
flags (``circuit_open``, ``pipeline_held``, ``fetch_paused``) read 1 when *any* live
process has them set (``livemax``): every child has its own breaker, and an alert on
"held" must fire if one of them is; a sum would turn a flag into a count. The spend cap is
the same number in every process (``livemax``). The remaining budget is each process's
view of one shared log, so the freshest view wins (``livemostrecent``), and so does the
lag of a partition: after a rebalance the new owner's values are the newer ones, and the
old owner's stale value must not be added or maxed in. All gauge modes are ``live*``: the
supervisor drops a child's gauge files when it exits, so a dead process never holds a
flag up. None of this changes anything in a single process: the labels and values are
exactly those of one worker, with no ``pid`` label.

Multiprocess mode is switched on by ``PROMETHEUS_MULTIPROC_DIR`` in a child's environment
before it imports prometheus-client; :mod:`streams.supervisor` sets it to a fresh
directory per run, and :class:`SupervisorMetrics` serves the merged view of it on
``worker.metrics_port``. Children never serve a port.

The same port answers ``/livez`` and ``/readyz`` when a probe is passed to ``serve``
(:mod:`streams.health`); every other path is ``/metrics``.

No label ever carries a document, a key or a secret: label values come from
configuration (pipeline, provider, model), contract field paths with list
indexes removed, and fixed enumerations.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from streams.health import PATHS

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from streams.health import Probe

__all__ = ["Metrics", "SupervisorMetrics", "field_label"]

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
        self.cache_rejected = Counter(
            "streams_cache_rejected",
            "Result-cache entries found but not used (a miss): unsigned or forged with a "
            "signing key set, unreadable, or failing the contract's grounding policy.",
            [*p, "reason"],
            registry=r,
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
            multiprocess_mode="livemostrecent",
        )
        self.budget_cap = Gauge(
            "streams_budget_cap_usd",
            "Spend cap of the current window.",
            [*p, "scope"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.circuit_open = Gauge(
            "streams_circuit_open",
            "1 while the provider circuit is open (fetching paused).",
            [*p, "provider"],
            registry=r,
            multiprocess_mode="livemax",
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
            multiprocess_mode="livemax",
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
            "streams_records_in_flight",
            "Records being processed now.",
            p,
            registry=r,
            multiprocess_mode="livesum",
        )
        self.paused = Gauge(
            "streams_fetch_paused",
            "1 while fetching is paused (backpressure or open circuit).",
            p,
            registry=r,
            multiprocess_mode="livemax",
        )
        self.lag = Gauge(
            "streams_consumer_lag",
            "Records between the committed offset and the end of each input partition.",
            [*p, "partition"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )

    def serve(
        self, port: int, host: str = "127.0.0.1", *, probe: Probe | None = None
    ) -> Callable[[], None]:
        """Expose ``/metrics`` (and, with ``probe``, ``/livez`` and ``/readyz``) over HTTP in
        a background thread; returns a stop function."""
        return _serve(self.registry, port, host, probe)


class SupervisorMetrics:
    """The supervisor's one ``/metrics``: every child's samples, merged from ``path``.

    Usage (what :mod:`streams.supervisor` does)::

        metrics = SupervisorMetrics(multiproc_dir, "invoices")
        stop = metrics.serve(9300)
        ...                       # children write to multiproc_dir
        metrics.process_exited(pid)  # after each child exits
        stop()
    """

    def __init__(self, path: Path, pipeline: str) -> None:
        self.path = path
        self.pipeline = pipeline
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=str(path))  # type: ignore[no-untyped-call]
        # The supervisor's own counter lives in its memory, not in the directory.
        self.restarts = Counter(
            "streams_worker_restarts",
            "Worker processes restarted by the supervisor after a crash or an unrequested exit.",
            ["pipeline"],
            registry=self.registry,
        )

    def serve(
        self, port: int, host: str = "127.0.0.1", *, probe: Probe | None = None
    ) -> Callable[[], None]:
        """Expose the merged ``/metrics`` (and the children's health, with ``probe``) over
        HTTP in a background thread; returns a stop."""
        return _serve(self.registry, port, host, probe)

    def process_exited(self, pid: int) -> None:
        """Drop an exited child's live gauges; its counters stay in the sums."""
        mark_process_dead(pid, str(self.path))  # type: ignore[no-untyped-call]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Probes arrive every few seconds; one access-log line each would drown the log."""


def _app(registry: CollectorRegistry, probe: Probe | None) -> WSGIApplication:
    metrics_app = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if probe is None or path not in PATHS:
            served: Iterable[bytes] = metrics_app(environ, start_response)
            return served
        verdict = probe.live() if path == "/livez" else probe.ready()
        body = json.dumps(verdict.body).encode()
        status = "200 OK" if verdict.ok else "503 Service Unavailable"
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        start_response(status, headers)
        return [body]

    return app


def _serve(
    registry: CollectorRegistry, port: int, host: str, probe: Probe | None = None
) -> Callable[[], None]:
    # prometheus-client's start_http_server serves only its own app; this is the same
    # threading WSGI server with the health paths in front of it.
    class _Server(ThreadingWSGIServer):
        address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    server = make_server(host, port, _app(registry, probe), _Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
