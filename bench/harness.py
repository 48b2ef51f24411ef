"""What every scenario shares: the run context, the inputs, and "run a worker to the end".

Timing rule, for every pipeline figure: the clock starts when the worker logs its
first partition assignment (it has joined its consumer group; imports, settings, the
registry and a cache load are behind it) and stops at the broker append time of the
last output record (``LogAppendTime``, i.e. when the last output was acknowledged).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.kafka_io import Broker, Message, output_topics, produce, read_since
from bench.procs import SAMPLES, CpuMeter, Simulator, WorkerProc, proc_status_mb


@dataclass(frozen=True)
class Counts:
    """Record counts per scenario; ``--quick`` shrinks them for a smoke run."""

    overhead: int = 20_000
    latency_bound: int = 5_000
    latency_bound_keys: int = 1_000
    sequential: int = 200
    scaleout: int = 3_000

    @classmethod
    def quick(cls) -> Counts:
        return cls(
            overhead=1_000, latency_bound=400, latency_bound_keys=100, sequential=15, scaleout=600
        )


def load_documents() -> list[bytes]:
    """The invoice samples whose fixture answers pass the contract on the first attempt.

    ``_bad/`` holds a sample built to fail validation, so it is left out: every record
    of the throughput scenarios should take the common path (one call, valid).
    """
    return [p.read_bytes() for p in sorted(SAMPLES.glob("*.txt"))]


@dataclass
class Context:
    bootstrap: str
    kafka_pid: int
    workdir: Path
    counts: Counts
    documents: list[bytes]
    results: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def broker(self) -> Broker:
        return Broker(self.bootstrap)

    def inputs(self, n: int, key_of: Any) -> Iterator[tuple[bytes, bytes]]:
        docs = self.documents
        for i in range(n):
            yield key_of(i).encode(), docs[i % len(docs)]

    def produce(self, topic: str, n: int, key_of: Any) -> None:
        produce(self.bootstrap, topic, self.inputs(n, key_of), label=topic)


@dataclass
class RunResult:
    """One worker run: when it was ready, when its outputs landed, what they were."""

    expected: int
    ready_at: float
    messages: list[Message]
    rss_mb: float
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def first_out(self) -> float:
        return min(m.timestamp_ms for m in self.messages) / 1000

    @property
    def last_out(self) -> float:
        return max(m.timestamp_ms for m in self.messages) / 1000

    @property
    def rps(self) -> float:
        """Records per second from group joined to the last output acknowledged."""
        return self.expected / max(self.last_out - self.ready_at, 1e-6)

    @property
    def rps_first_to_last(self) -> float:
        """Records per second between the first and the last output (steady state)."""
        return (len(self.messages) - 1) / max(self.last_out - self.first_out, 1e-6)

    def routes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.messages:
            route = m.topic.rsplit(".", 1)[1]
            out[route] = out.get(route, 0) + 1
        return out


def wait_outputs(
    ctx: Context,
    label: str,
    topics: list[str],
    base: dict[tuple[str, int], int],
    expected: int,
    workers: list[WorkerProc],
    *,
    timeout: float | None = None,
    others: tuple[subprocess.Popen[bytes], ...] = (),
) -> int:
    """Show progress until ``expected`` records were appended to ``topics``."""
    broker = ctx.broker
    limit = timeout or max(180.0, expected / 2.0)
    started = last_shown = time.monotonic()
    done = 0
    while True:
        done = broker.produced_since(base, topics)
        for proc in others:
            if proc.poll() is not None:
                raise RuntimeError(f"{label}: {proc.args!r} exited with {proc.returncode}")
        for w in workers:
            w.check_alive()
            rss = proc_status_mb(w.pid, "VmRSS")
            if rss is not None:
                w.peak_rss_mb = max(w.peak_rss_mb or 0.0, rss)
        now = time.monotonic()
        if done >= expected or now - last_shown >= 2.0:
            rate = done / max(now - started, 1e-6)
            print(f"  [{label}] {done}/{expected} records ({rate:,.0f} rec/s)", flush=True)
            last_shown = now
        if done >= expected:
            return done
        if now - started > limit:
            raise RuntimeError(f"{label}: only {done}/{expected} outputs after {limit:.0f}s")
        time.sleep(0.25)


def run_worker(
    ctx: Context, label: str, config: dict[str, Any], expected: int, sim: Simulator
) -> RunResult:
    """Start one worker on pre-loaded input, wait for ``expected`` outputs, stop it."""
    pipeline = config["pipelines"][0]["name"]
    topics = output_topics(pipeline)
    base = ctx.broker.end_offsets(topics)
    worker = WorkerProc(ctx.workdir, label, config)
    try:
        ready = worker.wait_assigned()
        meter = CpuMeter({"worker": worker.pid, "simulator": sim.pid, "kafka": ctx.kafka_pid})
        print(f"  [{label}] worker pid {worker.pid} joined its group", flush=True)
        wait_outputs(ctx, label, topics, base, expected, [worker])
        cpu = meter.read()
    finally:
        rss = worker.stop()
    if worker.errors:
        print(f"  [{label}] worker logged errors, first: {worker.errors[0]}", flush=True)
    messages = read_since(ctx.bootstrap, base, topics)
    return RunResult(expected, ready, messages, rss or 0.0, cpu)
