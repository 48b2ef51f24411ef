"""``python -m bench.soak [--minutes N] [--output DIR]``: one worker under a steady mixed load.

``make soak`` (outside CI, ~35 min). One real local Kafka, one simulator process with a
seeded fault mix (:data:`FAULT_MIX`, 100 ms latency) and one ``streams run`` worker,
fed :data:`RATE` records a second for ``--minutes``. Every :data:`SAMPLE_S` seconds the
driver samples the worker's RSS (``VmRSS``), the group's committed lag, ``/readyz``
(status and guard state) and ``/metrics`` (records out per route, circuit trips and the
open gauge). After the load it waits for the lag to reach 0 and checks, from the four
output topics, that every input was routed exactly once.

The result cache is off, so the cache's bound is 0: every record makes at least one
model call and meets the fault mix. With the cache on, the 23 sample texts (the
simulator's fixtures are keyed by the text, so they cannot be varied) would be 23
cache entries and, after the first 23 records, a replay of cache hits that never calls
the model.

Criterion (issue 16, item 6): RSS at 30 minutes <= RSS at 5 minutes + the cache bound +
10% of the RSS at 5 minutes. Writes ``soak.json`` to ``--output`` (default ``bench/``);
``python -m bench.run --report-only`` renders it as the "Soak" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import report
from bench.harness import load_documents
from bench.kafka_io import ROUTES, Broker, output_topics, produce, read_since
from bench.procs import REPO, Simulator, WorkerProc, proc_status_mb, stop_all, worker_config
from streams.devstack.kafka import LocalKafka, free_ports
from streams.settings import default_cache_dir

PIPELINE = "soak"
INPUT_TOPIC = "soak.raw"
PARTITIONS = 6
#: Records a second: well below one worker's capacity on the 2-core shared machine.
RATE = 20.0
SAMPLE_S = 10.0
LATENCY_MS = 100.0
SEED = 16
#: 14% of first calls fail, across transient errors (retried), broken answers (re-asked)
#: and an empty completion. No 401/403/404: those hold the pipeline (a deployment fault),
#: which is a different test; no ``hang``: a 30 s sleep per request is a latency test.
FAULT_MIX = {
    "http_500": 0.03,
    "http_429": 0.03,
    "http_502_html": 0.01,
    "malformed": 0.02,
    "truncated": 0.02,
    "invalid": 0.02,
    "empty_choices": 0.01,
}
#: The result cache is off (see the module docstring): it holds nothing.
CACHE_BOUND_MB = 0.0
#: RSS may grow by this share of the 5-minute figure (plus the cache bound).
RSS_SLACK = 0.10
RSS_EARLY_S = 5 * 60
RSS_LATE_S = 30 * 60
DRAIN_TIMEOUT_S = 300.0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=32.0,
        help="how long the load runs (default %(default)s; the criterion needs >= 30)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO / "bench",
        help="where soak.json goes (default: %(default)s)",
    )
    parser.add_argument("--rate", type=float, default=RATE, help="records/s (default %(default)s)")
    return parser.parse_args(argv)


# -- sampling ---------------------------------------------------------------------------


def scrape(text: str) -> dict[str, Any]:
    """Records out per route, circuit trips and the open gauge from a ``/metrics`` page."""
    out: dict[str, float] = {}
    trips = 0.0
    circuit_open = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "streams_records_out_total":
                out[s.labels.get("outcome", "?")] = s.value
            elif s.name == "streams_circuit_trips_total":
                trips += s.value
            elif s.name == "streams_circuit_open":
                circuit_open = max(circuit_open, s.value)
    return {
        "out": {k: int(v) for k, v in sorted(out.items())},
        "trips": int(trips),
        "circuit_open": int(circuit_open),
    }


def sample(worker: WorkerProc, broker: Broker, group: str, metrics_url: str) -> dict[str, Any]:
    """One row: RSS, lag, /readyz and the /metrics counters (None where unanswered)."""
    row: dict[str, Any] = {"rss_mb": proc_status_mb(worker.pid, "VmRSS")}
    try:
        row["lag"] = broker.committed_lag(group, INPUT_TOPIC)
    except Exception as exc:  # a slow broker answer is a gap in the samples, not a failure
        row["lag"] = None
        row["lag_error"] = str(exc)[:200]
    try:
        ready = httpx.get(f"{metrics_url}/readyz", timeout=5)
        row["readyz"] = ready.status_code
        guard = ready.json().get("guard", {})
        row["guard"] = guard.get("state")
        row["guard_reason"] = guard.get("reason")
    except (httpx.HTTPError, ValueError) as exc:
        row["readyz"] = None
        row["readyz_error"] = str(exc)[:200]
    try:
        row.update(scrape(httpx.get(f"{metrics_url}/metrics", timeout=5).text))
    except httpx.HTTPError as exc:
        row["metrics_error"] = str(exc)[:200]
    return row


# -- the summary (pure: unit-tested on synthetic samples) ----------------------------------


def rss_at(samples: Sequence[dict[str, Any]], t_s: float) -> float | None:
    """The RSS of the first sample at or after ``t_s`` (None if the run ended before)."""
    for row in samples:
        if row["t_s"] >= t_s and row.get("rss_mb") is not None:
            return float(row["rss_mb"])
    return None


def summarise(
    samples: Sequence[dict[str, Any]],
    *,
    cache_bound_mb: float = CACHE_BOUND_MB,
    early_s: float = RSS_EARLY_S,
    late_s: float = RSS_LATE_S,
) -> dict[str, Any]:
    """The soak's figures from its samples: RSS criterion, lag, /readyz, breaker."""
    early, late = rss_at(samples, early_s), rss_at(samples, late_s)
    limit = None if early is None else early + cache_bound_mb + RSS_SLACK * early
    held = None if late is None or limit is None else late <= limit
    lags = [row["lag"] for row in samples if row.get("lag") is not None]
    readyz = Counter(str(row.get("readyz")) for row in samples)
    guards = Counter(str(row.get("guard")) for row in samples)
    opens_seen = sum(
        1
        for before, after in itertools.pairwise(samples)
        if not before.get("circuit_open") and after.get("circuit_open")
    )
    trips = [row["trips"] for row in samples if "trips" in row]
    rss = [row["rss_mb"] for row in samples if row.get("rss_mb") is not None]
    return {
        "rss_mb_at_5min": early,
        "rss_mb_at_30min": late,
        "rss_mb_limit": None if limit is None else round(limit, 1),
        "rss_criterion": "RSS(30 min) <= RSS(5 min) + cache bound + 10% of RSS(5 min)",
        "rss_criterion_held": held,
        "rss_mb_min": min(rss, default=None),
        "rss_mb_max": max(rss, default=None),
        "max_lag": max(lags, default=None),
        "readyz_statuses": dict(sorted(readyz.items())),
        "readyz_non_200": sum(n for code, n in readyz.items() if code != "200"),
        "guard_states": dict(sorted(guards.items())),
        # The counter counts from the worker's start, so a trip before the first sample counts.
        "circuit_trips": trips[-1] if trips else None,
        "circuit_open_samples": sum(1 for row in samples if row.get("circuit_open")),
        "circuit_opens_seen_by_sampling": opens_seen,
    }


def breaker_log(log_path: Path) -> list[dict[str, str]]:
    """Every breaker or hold transition the worker logged, with its time."""
    marks = ("circuit open", "pipeline held", "pipeline resumed")
    events = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        msg = str(doc.get("msg", ""))
        if any(msg.startswith(m) for m in marks):
            events.append({"ts": str(doc.get("ts")), "msg": msg[:160]})
    return events


# -- the run ----------------------------------------------------------------------------


class Feeder:
    """Produces the samples in rotation, distinct keys, at ``rate`` until :meth:`stop`."""

    def __init__(self, bootstrap: str, documents: list[bytes], rate: float) -> None:
        self.bootstrap = bootstrap
        self.documents = documents
        self.rate = rate
        self.sent = 0
        self.acked: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _records(self) -> Iterator[tuple[bytes, bytes]]:
        began = time.monotonic()
        while not self._stop.is_set():
            due = began + self.sent / self.rate
            if (wait := due - time.monotonic()) > 0:
                self._stop.wait(wait)
                continue
            yield f"soak-{self.sent}".encode(), self.documents[self.sent % len(self.documents)]
            self.sent += 1

    def _run(self) -> None:
        self.acked = produce(self.bootstrap, INPUT_TOPIC, self._records())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(120)
        if self.acked is None:
            raise RuntimeError("the producer did not flush its records")
        return self.acked


def check_routes(bootstrap: str, produced: int) -> dict[str, Any]:
    """Every input key routed exactly once, read back from the four output topics."""
    messages = read_since(bootstrap, {}, output_topics(PIPELINE), timeout=300)
    per_key = Counter(m.key for m in messages)
    routes = Counter(m.topic.removeprefix(f"{PIPELINE}.") for m in messages)
    expected = {f"soak-{i}".encode() for i in range(produced)}
    missing = expected - set(per_key)
    twice = [k for k, n in per_key.items() if n > 1]
    unexpected = set(per_key) - expected
    return {
        "routes": {r: routes.get(r, 0) for r in ROUTES},
        "outputs": len(messages),
        "missing": len(missing),
        "routed_more_than_once": len(twice),
        "unexpected_keys": len(unexpected),
        "exactly_once_routing": not missing and not twice and not unexpected,
    }


def _progress(row: dict[str, Any]) -> str:
    out = row.get("out", {})
    routed = ", ".join(f"{k} {v}" for k, v in out.items()) or "none yet"
    rss = row.get("rss_mb")
    return (
        f"  {row['t_s'] / 60:5.1f} min: produced {row['produced']:,}, RSS "
        f"{rss if rss is None else f'{rss:.1f}'} MiB, lag {row.get('lag')}, /readyz "
        f"{row.get('readyz')} ({row.get('guard')}), trips {row.get('trips')}, out: {routed}"
    )


def run(minutes: float, output: Path, rate: float) -> dict[str, Any]:
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    workdir = default_cache_dir() / "bench" / f"soak-{stamp}"
    workdir.mkdir(parents=True)
    print(f"soak work dir (logs, config): {workdir}", flush=True)
    result: dict[str, Any] = {
        "machine": report.machine(),
        "git_commit": report.git_commit(),
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "minutes": minutes,
        "rate_per_s": rate,
        "sample_s": SAMPLE_S,
        "partitions": PARTITIONS,
        "simulator": {"latency_ms": LATENCY_MS, "seed": SEED, "fault_mix": FAULT_MIX},
        "worker": {"max_in_flight": 64, "cache": False, "cache_bound_mb": CACHE_BOUND_MB},
        "documents": "the 23 invoice samples in rotation, key soak-<n> per record",
    }
    sim = Simulator(
        workdir, latency_ms=LATENCY_MS, max_concurrency=None, fault_mix=FAULT_MIX, seed=SEED
    )
    kafka = LocalKafka(default_cache_dir(), data_dir=workdir / "kafka")
    samples: list[dict[str, Any]] = []
    try:
        kafka.start()
        broker = Broker(kafka.bootstrap)
        broker.create_pipeline_topics(PIPELINE, INPUT_TOPIC, PARTITIONS)
        sim.wait_ready()
        (port,) = free_ports(1)
        config = worker_config(kafka.bootstrap, sim.url, PIPELINE, INPUT_TOPIC)
        config["worker"]["metrics_port"] = port
        worker = WorkerProc(workdir, "soak-worker", config)
        worker.wait_assigned()
        group = f"{config['kafka']['group_prefix']}.{PIPELINE}"
        metrics_url = f"http://127.0.0.1:{port}"
        result["load_start"] = [round(x, 2) for x in os.getloadavg()]
        feeder = Feeder(kafka.bootstrap, load_documents(), rate)
        began = time.monotonic()
        feeder.start()
        end = began + minutes * 60
        next_print = began + 60
        while (now := time.monotonic()) < end:
            worker.check_alive()
            row = {"t_s": round(now - began, 1), "produced": feeder.sent}
            row["load1"] = round(os.getloadavg()[0], 2)
            row.update(sample(worker, broker, group, metrics_url))
            samples.append(row)
            if now >= next_print or len(samples) == 1:
                print(_progress(row), flush=True)
                if now >= next_print:
                    next_print += 60
            time.sleep(max(0.0, began + len(samples) * SAMPLE_S - time.monotonic()))
        produced = feeder.stop()
        result["produced"] = produced
        result["load_seconds"] = round(time.monotonic() - began, 1)
        print(f"  load over: {produced:,} records produced; waiting for lag 0", flush=True)
        drain_began = time.monotonic()
        lag = broker.committed_lag(group, INPUT_TOPIC)
        while lag and time.monotonic() - drain_began < DRAIN_TIMEOUT_S:
            worker.check_alive()
            time.sleep(2)
            lag = broker.committed_lag(group, INPUT_TOPIC)
        result["final_lag"] = lag
        result["drain_seconds"] = round(time.monotonic() - drain_began, 1)
        final = {"t_s": round(time.monotonic() - began, 1), "produced": produced}
        final.update(sample(worker, broker, group, metrics_url))
        result["final_sample"] = final
        samples.append(final)
        print(f"  lag {lag} after {result['drain_seconds']:.0f} s; reading the outputs", flush=True)
        result.update(check_routes(kafka.bootstrap, produced))
        result["worker_peak_rss_mb"] = proc_status_mb(worker.pid, "VmHWM")
        worker.stop()
        result["breaker_log"] = breaker_log(worker.log_path)
        result["worker_errors_logged"] = len(worker.errors)
        result["worker_errors_first"] = worker.errors[:5]
        try:
            result["simulator_stats"] = sim.stats()
        except httpx.HTTPError:
            result["simulator_stats"] = None
        result["load_end"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        stop_all()
        kafka.stop(timeout=1.0)
        shutil.rmtree(workdir / "kafka" / "kraft", ignore_errors=True)
    # The last row is the sample after the drain (the route and trip counters' final values).
    result.update(summarise(samples))
    result["samples"] = samples
    output.mkdir(parents=True, exist_ok=True)
    report.write_json(result, output / "soak.json")
    print(f"written {output / 'soak.json'}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    result = run(args.minutes, args.output, args.rate)
    held = result["rss_criterion_held"]
    print(
        f"  RSS at 5 min {result['rss_mb_at_5min']} MiB, at 30 min {result['rss_mb_at_30min']}"
        f" MiB, limit {result['rss_mb_limit']}: "
        f"{'held' if held else 'not evaluated (run < 30 min)' if held is None else 'FAILED'}",
        flush=True,
    )
    print(
        f"  routes {result['routes']}, exactly once: {result['exactly_once_routing']}, "
        f"circuit trips {result['circuit_trips']}, /readyz non-200 {result['readyz_non_200']}, "
        f"max lag {result['max_lag']}",
        flush=True,
    )
    return 0 if result["exactly_once_routing"] and held is not False else 1


if __name__ == "__main__":
    sys.exit(main())
