"""Scenario (g): kill -9 mid-run and restart, our worker and the faust peer alike.

Each side reads the same input (distinct keys, 64 in flight) with one process, against
a model that answers in 200 ms but takes 5 s for :data:`SLOW_FRACTION` of the
requests: a latency tail longer than faust's 2.8 s commit interval, as real models
have. (faust commits past the in-flight record at the head of a partition only if
that record was already the head at the previous commit, so with a fixed 200 ms it
never happens.) At ``Counts.kills`` evenly spread points of the output (five: at
1/6, 2/6, ... 5/6) the process is SIGKILLed and a fresh process of the same group
started; the run is over once the group has committed the whole input and
no output has appeared for ``Counts.quiet_s`` seconds (6 s, two of faust's commit
intervals; 3 s in the smoke run). Then:

* **lost**: input keys with no output at all. The worker commits an offset only
  when every record before it has its output acknowledged, so it should lose none.
  faust's actors ack out of order and faust commits past an in-flight record at the
  head of a partition (faust-streaming issue 606): if the process dies before that
  record is done, it is never redone.
* **duplicates**: outputs beyond one per key: records finished but not yet committed
  at a kill, done again after the restart (at-least-once, for both).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable

from confluent_kafka import TopicPartition

from bench.cpu import CpuMeter
from bench.harness import Context, Proc, peer_sink, start_peer, wait_outputs
from bench.kafka_io import Follower, Message, output_topics, read_since
from bench.procs import SLOW_S, Simulator, WorkerProc, worker_config
from bench.scenarios import any_pipeline_source, peer_source
from streams.kafka import clients

PARTITIONS = 6
IN_FLIGHT = 64
#: Share of requests that take ``procs.SLOW_S`` (5 s) instead of 200 ms.
SLOW_FRACTION = 0.05


class ExposureProbe:
    """Once a second: how many inputs ``group`` has committed past with no output yet.

    A crash at such a moment loses them: a restart resumes at the committed offset and
    never reads them again. The committed offsets are read first, then the outputs up
    to the watermarks of that moment, so an output that was acknowledged before its
    offset was committed is always counted. Inputs still exposed after the run are the
    lost ones; :meth:`figures` leaves them out of the earlier samples, where a lost
    input would otherwise count again in every sample after the kill that lost it.
    """

    def __init__(
        self,
        ctx: Context,
        group: str,
        source: str,
        topics: list[str],
        base: dict[tuple[str, int], int],
        coords: Callable[[Message], tuple[int, int] | None],
    ) -> None:
        self._ctx, self._topics, self._coords = ctx, topics, coords
        self._follower = Follower(ctx.bootstrap, base)
        self._reader = clients.consumer(ctx.bootstrap, {"group.id": group, "log_level": 0})
        self._asked = [TopicPartition(source, p) for p in ctx.broker.partitions(source)]
        self._produced: dict[int, set[int]] = defaultdict(set)
        self._sets: list[frozenset[tuple[int, int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _take(self, timeout: float) -> None:
        for msg in self._follower.poll(timeout):
            src = self._coords(msg)
            if src is not None:
                self._produced[src[0]].add(src[1])

    def _sample(self) -> None:
        committed = {
            tp.partition: max(tp.offset, 0) for tp in self._reader.committed(self._asked, 15)
        }
        ends = sum(self._ctx.broker.end_offsets(self._topics).values())
        deadline = time.monotonic() + 5
        while self._follower.position() < ends and time.monotonic() < deadline:
            self._take(0.2)
        produced = self._produced
        exposed = frozenset(
            (p, o) for p, upto in committed.items() for o in range(upto) if o not in produced[p]
        )
        self._sets.append(exposed)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._take(0.2)
            if time.monotonic() >= next_at:
                next_at = time.monotonic() + 1.0
                self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self._sample()  # after the run: what is committed past and missing now is lost
        self._follower.close()
        self._reader.close()

    @property
    def lost(self) -> frozenset[tuple[int, int]]:
        """Inputs committed past without an output once the run is over: lost for good."""
        return self._sets[-1] if self._sets else frozenset()

    def figures(self) -> dict[str, int]:
        """Samples, those with inputs exposed (the lost ones left out), the most at once."""
        transient = [len(s - self.lost) for s in self._sets[:-1]]
        return {
            "exposure_samples": len(transient),
            "exposed_samples": sum(1 for n in transient if n),
            "max_exposed": max(transient, default=0),
            "lost_by_probe": len(self.lost),
        }


def _settled(
    ctx: Context, group: str, source: str, topics: list[str], base: dict[tuple[str, int], int]
) -> float:
    """Wait until ``group`` committed all of ``source`` and outputs stopped; seconds left."""
    deadline = time.monotonic() + 240
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        done = ctx.broker.produced_since(base, topics)
        if done != last:
            last, quiet_since = done, time.monotonic()
        lag = ctx.broker.committed_lag(group, source)
        if lag == 0 and time.monotonic() - quiet_since >= ctx.counts.quiet_s:
            return 0.0
        time.sleep(0.5)
    return float(ctx.broker.committed_lag(group, source))


def _kill_run(
    ctx: Context,
    sim: Simulator,
    side: str,
    start: Callable[[str], Proc],
    topics: list[str],
    group: str,
    source: str,
    keys: set[bytes],
    coords: Callable[[Message], tuple[int, int] | None],
) -> None:
    n, kills = len(keys), ctx.counts.kills
    label = f"g-{side}"
    base = ctx.broker.end_offsets(topics)
    probe = ExposureProbe(ctx, group, source, topics, base, coords)
    proc = start(f"{label}-1")
    try:
        proc.wait_assigned()
        meter = CpuMeter({f"{side}1": proc.pid, "simulator": sim.pid, "kafka": ctx.kafka_pid})
        started = time.time()
        for k in range(1, kills + 1):
            wait_outputs(ctx, label, topics, base, n * k // (kills + 1), [proc])
            meter.freeze(f"{side}{k}")
            proc.kill()
            print(f"  [{label}] SIGKILLed pid {proc.pid} ({k} of {kills}); restarting", flush=True)
            killed_at = time.time()
            proc = start(f"{label}-{k + 1}")
            proc.wait_assigned()
            meter.add(f"{side}{k + 1}", proc.pid)
        lag = _settled(ctx, group, source, topics, base)
        finished = time.time() - ctx.counts.quiet_s
        cpu = meter.read()
    finally:
        proc.stop()
        probe.stop()
    exposure = probe.figures()
    out = read_since(ctx.bootstrap, base, topics)
    seen = {m.key for m in out}
    lost = sorted(k.decode() for k in keys - {k for k in seen if k is not None})
    res = ctx.results
    res.update(
        {
            f"kill_{side}_lost": len(lost),
            f"kill_{side}_lost_sample": lost[:10],
            f"kill_{side}_duplicates": len(out) - len(seen),
            f"kill_{side}_outputs": len(out),
            f"kill_{side}_uncommitted_at_end": int(lag),
            **{f"kill_{side}_{k}": v for k, v in exposure.items()},
            f"kill_{side}_recovery_seconds": round(finished - killed_at, 1),
            f"kill_{side}_seconds": round(finished - started, 1),
        }
    )
    res.setdefault("cpu_seconds", {})[f"kill_{side}"] = cpu
    print(
        f"  [{label}] lost {len(lost)} of {n} inputs over {kills} kill(s), "
        f"{len(out) - len(seen)} duplicates, {finished - killed_at:.1f} s from the last kill "
        f"to the end; committed past inputs without an output at "
        f"{exposure['exposed_samples']} of {exposure['exposure_samples']} samples (at most "
        f"{exposure['max_exposed']} at once, lost ones left out)",
        flush=True,
    )


def kill_compare(ctx: Context) -> None:
    n = ctx.counts.kill
    print(
        f"(g) kill -9 and restart: {n} records, 64 in flight, 200 ms model "
        f"({SLOW_FRACTION:.0%} of requests {SLOW_S:.0f} s), {ctx.counts.kills} kill(s) per side",
        flush=True,
    )
    pipeline, source = "bench-g", "bench-g.raw"
    ctx.broker.create_pipeline_topics(pipeline, source, PARTITIONS)
    ctx.produce(source, n, lambda i: f"g-{i:06d}")
    keys = {f"g-{i:06d}".encode() for i in range(n)}
    sim = ctx.sims.get(200, IN_FLIGHT, SLOW_FRACTION)
    config = worker_config(ctx.bootstrap, sim.url, pipeline, source, max_in_flight=IN_FLIGHT)
    _kill_run(
        ctx,
        sim,
        "ours",
        lambda label: WorkerProc(ctx.workdir, label, config),
        output_topics(pipeline),
        f"bench.{pipeline}",
        source,
        keys,
        any_pipeline_source,
    )
    sink = peer_sink(ctx, "g", PARTITIONS)
    _kill_run(
        ctx,
        sim,
        "peer",
        lambda label: start_peer(ctx, label, source, sink, sim, IN_FLIGHT, app_id="bench-peer-g"),
        [sink],
        "bench-peer-g",
        source,
        keys,
        peer_source,
    )
    ctx.results.update(kill_records=n, kill_kills=ctx.counts.kills)
