"""Scenario (e): 1, 2 and 3 workers in one group over 6 partitions; then a SIGKILL mid-run.

For the throughput runs the input is produced only once every worker holds
partitions (the group is stable), so no worker gets a head start: the clock runs
from the first input produced to the last output acknowledged.

The kill run checks the accounting invariant after one of three workers is
SIGKILLed a third of the way through: once the group has committed the whole input,
every input key is in exactly one output topic, at least once. Records the dead
worker had finished but not committed are processed again by the survivors: those
are the duplicates (at-least-once delivery; ``worker.exactly_once`` would remove them).
"""

from __future__ import annotations

import time
from collections import defaultdict

from bench.harness import Context, wait_outputs
from bench.kafka_io import output_topics, produce, read_since
from bench.procs import CpuMeter, Simulator, WorkerProc, worker_config

PARTITIONS = 6
LATENCY_MS = 100
SIM_CONCURRENCY = 256


def _start_group(ctx: Context, sim: Simulator, tag: str, workers: int) -> list[WorkerProc]:
    pipeline, source = f"bench-{tag}", f"bench-{tag}.raw"
    ctx.broker.create_pipeline_topics(pipeline, source, PARTITIONS)
    config = worker_config(ctx.bootstrap, sim.url, pipeline, source)
    procs = [WorkerProc(ctx.workdir, f"{tag}-w{i + 1}", config) for i in range(workers)]
    for proc in procs:
        proc.wait_assigned()
    group = f"bench.{pipeline}"
    deadline = time.monotonic() + 120
    while True:
        members = ctx.broker.group_members(group)
        if len(members) == workers and all(members) and sum(members) == PARTITIONS:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"group {group} did not settle on {workers} members: {members}")
        time.sleep(0.2)
    print(f"  [{tag}] {workers} worker(s) joined, partitions per worker {members}", flush=True)
    return procs


def _meter(ctx: Context, sim: Simulator, procs: list[WorkerProc]) -> CpuMeter:
    pids = {f"worker{i + 1}": p.pid for i, p in enumerate(procs)}
    return CpuMeter({**pids, "simulator": sim.pid, "kafka": ctx.kafka_pid})


def _inputs(ctx: Context, tag: str, n: int) -> list[tuple[bytes, bytes]]:
    return list(ctx.inputs(n, lambda i: f"{tag}-{i:06d}"))


def throughput(ctx: Context, sim: Simulator, workers: int) -> tuple[float, float]:
    """Records/s of ``workers`` workers; returns (rps, max peak RSS of the workers in MiB)."""
    n, tag = ctx.counts.scaleout, f"e{workers}"
    procs = _start_group(ctx, sim, tag, workers)
    topics = output_topics(f"bench-{tag}")
    try:
        base = ctx.broker.end_offsets(topics)
        records = _inputs(ctx, tag, n)
        meter = _meter(ctx, sim, procs)
        started = time.time()
        produce(ctx.bootstrap, f"bench-{tag}.raw", records)
        wait_outputs(ctx, tag, topics, base, n, procs)
        ctx.results.setdefault("cpu_seconds", {})[f"scaleout_{workers}"] = meter.read()
    finally:
        rss = max((p.stop() or 0.0) for p in procs)
    out = read_since(ctx.bootstrap, base, topics)
    last = max(m.timestamp_ms for m in out) / 1000
    rps = n / (last - started)
    print(f"  [{tag}] {rps:,.0f} rec/s with {workers} worker(s)", flush=True)
    return rps, rss


def kill_one(ctx: Context, sim: Simulator) -> None:
    """Three workers; SIGKILL one after a third of the outputs; check the invariant."""
    n, tag = ctx.counts.scaleout, "ekill"
    procs = _start_group(ctx, sim, tag, 3)
    topics = output_topics(f"bench-{tag}")
    victim = procs[2]
    try:
        base = ctx.broker.end_offsets(topics)
        records = _inputs(ctx, tag, n)
        produce(ctx.bootstrap, f"bench-{tag}.raw", records)
        started = time.time()
        wait_outputs(ctx, tag, topics, base, n // 3, procs)
        victim.kill()
        killed_at = time.time()
        print(f"  [{tag}] SIGKILLed worker pid {victim.pid}", flush=True)
        survivors = procs[:2]
        wait_outputs(ctx, tag, topics, base, n, survivors, timeout=max(300.0, n / 2))
        deadline = time.monotonic() + 120
        while (lag := ctx.broker.committed_lag(f"bench.bench-{tag}", f"bench-{tag}.raw")) > 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{tag}: {lag} input records still uncommitted after 120s")
            time.sleep(0.5)
        finished = time.time()
    finally:
        for p in procs:
            if p is not victim:
                p.stop()
    out = read_since(ctx.bootstrap, base, topics)
    topics_of: dict[bytes | None, set[str]] = defaultdict(set)
    for m in out:
        topics_of[m.key].add(m.topic)
    expected_keys = {key for key, _value in records}
    missing = expected_keys - set(topics_of)
    in_two = [k for k, t in topics_of.items() if len(t) > 1]
    ok = not missing and not in_two and set(topics_of) <= expected_keys
    duplicates = len(out) - len(topics_of)
    ctx.results.update(
        scaleout_kill_invariant_ok=ok,
        scaleout_kill_duplicates=duplicates,
        scaleout_kill_missing_keys=len(missing),
        scaleout_kill_keys_in_two_topics=len(in_two),
        scaleout_kill_outputs=len(out),
        scaleout_kill_seconds=round(finished - started, 1),
        scaleout_kill_after_outputs=n // 3,
        scaleout_kill_recovery_seconds=round(finished - killed_at, 1),
    )
    print(
        f"  [{tag}] invariant ok: {ok} (missing {len(missing)}, in two topics {len(in_two)}), "
        f"{len(out)} outputs for {n} inputs: {duplicates} duplicates",
        flush=True,
    )


def scaleout(ctx: Context) -> None:
    n = ctx.counts.scaleout
    print(
        f"(e) scale-out: {n} records per run, {PARTITIONS} partitions, {LATENCY_MS} ms model "
        f"(simulator limit {SIM_CONCURRENCY} concurrent), 64 in flight per worker",
        flush=True,
    )
    rss: list[float] = []
    with Simulator(ctx.workdir, latency_ms=LATENCY_MS, max_concurrency=SIM_CONCURRENCY) as sim:
        for workers in (1, 2, 3):
            rps, peak = throughput(ctx, sim, workers)
            ctx.results[f"scaleout_rps_{workers}"] = round(rps, 1)
            rss.append(peak)
        kill_one(ctx, sim)
    ctx.results.update(
        scaleout_records=n,
        scaleout_ideal_rps_per_worker=64 / (LATENCY_MS / 1000),
        rss_mb_scaleout=round(max(rss), 1),
    )
