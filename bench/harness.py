"""What every scenario shares: the run context, the inputs, "run a worker (or the peer)
to the end", and filing a scenario's figures with the peer's beside them.

Timing rule, for every pipeline figure: the clock starts when the worker logs its
first partition assignment (it has joined its consumer group; imports, settings, the
registry and a cache load are behind it) and stops at the broker append time of the
last output record (``LogAppendTime``, i.e. when the last output was acknowledged).
The faust peer prints the moment faust hands it partitions, so its clock starts at the
same point.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.cpu import CpuMeter, ms_per_record
from bench.kafka_io import LOG_APPEND_TIME, Broker, Message, output_topics, produce, read_since
from bench.procs import SAMPLES, PeerProc, Simulator, Simulators, WorkerProc, proc_status_mb


@dataclass(frozen=True)
class Counts:
    """Record counts per scenario; ``--quick`` and ``--smoke`` shrink them."""

    instant: int = 5_000
    latency_bound: int = 5_000
    latency_bound_keys: int = 1_000
    sequential: int = 120
    wide: int = 4_000
    scaleout: int = 3_000
    kill: int = 3_000
    profile: int = 3_000
    #: Group sizes of (e); the smoke run skips 2, the same code path as 3.
    scaleout_sizes: tuple[int, ...] = (1, 2, 3)
    #: SIGKILLs per side in (g), evenly spread over the outputs.
    kills: int = 5
    #: (g) is over once no output has appeared for this long (and all is committed).
    quiet_s: float = 6.0

    @classmethod
    def quick(cls) -> Counts:
        return cls(
            instant=1_000,
            latency_bound=600,
            latency_bound_keys=100,
            sequential=15,
            wide=600,
            scaleout=600,
            kill=600,
            profile=600,
        )

    @classmethod
    def smoke(cls) -> Counts:
        """A few records per run: that every scenario runs to the end, not how fast."""
        return cls(
            instant=60,
            latency_bound=64,
            latency_bound_keys=16,
            sequential=3,
            wide=64,
            scaleout=60,
            kill=60,
            profile=0,
            scaleout_sizes=(1, 3),
            kills=1,
            quiet_s=3.0,
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
    sims: Simulators
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


class Proc(Protocol):
    """A worker or a peer process, as the harness drives it (see :mod:`bench.procs`)."""

    name: str
    peak_rss_mb: float | None
    errors: list[str]

    @property
    def pid(self) -> int: ...

    def wait_assigned(self, timeout: float = ...) -> float: ...

    def check_alive(self) -> None: ...

    def stop(self) -> float | None: ...

    def kill(self) -> None: ...


@dataclass
class RunResult:
    """One run: when it was ready, when its outputs landed, what they were, what it cost."""

    expected: int
    ready_at: float
    messages: list[Message]
    rss_mb: float
    cpu: dict[str, float] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    model_calls: int = 0
    http_429: int = 0

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

    @property
    def cpu_ms(self) -> dict[str, float]:
        """Milliseconds of CPU per record, per process role."""
        return ms_per_record(self.cpu, self.expected)

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
    workers: Sequence[Proc],
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


def run_proc(
    ctx: Context,
    label: str,
    start: Callable[[], Proc],
    topics: list[str],
    expected: int,
    sim: Simulator,
) -> RunResult:
    """Start one worker or peer on pre-loaded input, wait for ``expected`` outputs, stop it.

    CPU is metered from the moment it was given partitions to the last output: the
    process itself (role ``worker`` or ``peer``), the simulator, the broker's JVM.
    """
    base = ctx.broker.end_offsets(topics)
    before = sim.stats()
    began = time.monotonic()
    proc = start()
    role = "peer" if isinstance(proc, PeerProc) else "worker"
    try:
        ready = proc.wait_assigned()
        joined = time.monotonic()
        meter = CpuMeter({role: proc.pid, "simulator": sim.pid, "kafka": ctx.kafka_pid})
        print(
            f"  [{label}] {role} pid {proc.pid} joined its group after {joined - began:.1f} s",
            flush=True,
        )
        wait_outputs(ctx, label, topics, base, expected, [proc])
        cpu = meter.read()
        done = time.monotonic()
    finally:
        rss = proc.stop()
    print(f"  [{label}] stopped in {time.monotonic() - done:.1f} s", flush=True)
    after = sim.stats()
    if proc.errors:
        print(f"  [{label}] {role} logged errors, first: {proc.errors[0]}", flush=True)
    messages = read_since(ctx.bootstrap, base, topics)
    rss_by_role = {
        role: round(rss or 0.0, 1),
        "simulator": round(proc_status_mb(sim.pid, "VmHWM") or 0.0, 1),
        "kafka": round(proc_status_mb(ctx.kafka_pid, "VmHWM") or 0.0, 1),
    }
    calls = int(after["total"]) - int(before["total"])
    throttled = int(after["by_status"].get("429", 0)) - int(before["by_status"].get("429", 0))
    return RunResult(expected, ready, messages, rss or 0.0, cpu, rss_by_role, calls, throttled)


def run_worker(
    ctx: Context, label: str, config: dict[str, Any], expected: int, sim: Simulator
) -> RunResult:
    """Run one ``streams run`` worker to the end of its pre-loaded input."""
    topics = output_topics(config["pipelines"][0]["name"])
    return run_proc(
        ctx, label, lambda: WorkerProc(ctx.workdir, label, config), topics, expected, sim
    )


def peer_sink(ctx: Context, label: str, partitions: int = 6) -> str:
    """The peer's output topic for one run (broker append times, as the pipeline's)."""
    sink = f"bench-peer.{label}.out"
    ctx.broker.create_topics([sink], partitions, LOG_APPEND_TIME)
    return sink


def start_peer(
    ctx: Context,
    label: str,
    source: str,
    sink: str,
    sim: Simulator,
    concurrency: int,
    *,
    app_id: str | None = None,
) -> PeerProc:
    """One peer process; ``app_id`` (the consumer group) defaults to one per ``label``."""
    return PeerProc(
        ctx.workdir,
        label,
        bootstrap=ctx.bootstrap,
        sim_url=sim.url,
        app_id=app_id or f"bench-peer-{label}",
        source=source,
        sink=sink,
        concurrency=concurrency,
    )


def run_peer(
    ctx: Context, label: str, source: str, expected: int, sim: Simulator, concurrency: int
) -> RunResult:
    """Run the naive faust peer (:mod:`bench.faust_peer`) over ``source`` to the end."""
    sink = peer_sink(ctx, label)
    return run_proc(
        ctx,
        label,
        lambda: start_peer(ctx, label, source, sink, sim, concurrency),
        [sink],
        expected,
        sim,
    )


def record(ctx: Context, scenario: str, ours: RunResult, peer: RunResult | None) -> None:
    """File one scenario's figures, ours and the peer's side by side, in ``ctx.results``."""
    res = ctx.results
    res[f"{scenario}_records"] = ours.expected
    res[f"{scenario}_rps"] = round(ours.rps, 1)
    res[f"{scenario}_rps_first_to_last"] = round(ours.rps_first_to_last, 1)
    res[f"{scenario}_worker_cpu_ms"] = ours.cpu_ms.get("worker")
    res.setdefault("routes", {})[scenario] = ours.routes()
    res.setdefault("cpu_seconds", {})[scenario] = ours.cpu
    res.setdefault("cpu_ms_per_record", {})[scenario] = ours.cpu_ms
    res.setdefault("rss_mb", {})[scenario] = ours.rss
    res[f"{scenario}_model_calls"] = ours.model_calls
    res[f"{scenario}_http_429"] = ours.http_429
    if peer is None:
        return
    res[f"{scenario}_peer_rps"] = round(peer.rps, 1)
    res[f"{scenario}_peer_rps_first_to_last"] = round(peer.rps_first_to_last, 1)
    res[f"{scenario}_vs_peer"] = round(ours.rps / max(peer.rps, 1e-9), 2)
    res["cpu_seconds"][f"{scenario}_peer"] = peer.cpu
    res["cpu_ms_per_record"][f"{scenario}_peer"] = peer.cpu_ms
    res["rss_mb"][f"{scenario}_peer"] = peer.rss
    errors = sum(1 for m in peer.messages if (m.value or b"").startswith(b'{"error"'))
    res[f"{scenario}_peer_errors"] = errors
    res[f"{scenario}_peer_model_calls"] = peer.model_calls
    res[f"{scenario}_peer_http_429"] = peer.http_429
    print(
        f"  [{scenario}] ours {ours.rps:,.1f} rec/s ({ours.cpu_ms.get('worker', 0):.2f} ms CPU "
        f"per record), peer {peer.rps:,.1f} rec/s ({peer.cpu_ms.get('peer', 0):.2f} ms): "
        f"ours/peer {ours.rps / max(peer.rps, 1e-9):.2f}",
        flush=True,
    )
