"""Scenario (e): 1, 2 and 3 workers (and peers) in one group over 6 partitions; a SIGKILL.

For the throughput runs the input is produced only once every worker holds
partitions (the group is stable), so no worker gets a head start: the clock runs
from the first input produced to the last output acknowledged. The same is then done
with 1, 2 and 3 instances of the naive faust peer in one group.

The kill run checks the accounting invariant after one of three workers is
SIGKILLed a third of the way through: once the group has committed the whole input,
every input key is in exactly one output topic, at least once. Records the dead
worker had finished but not committed are processed again by the survivors: those
are the duplicates (at-least-once delivery; ``worker.exactly_once`` would remove them).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

from bench.cpu import CpuMeter
from bench.harness import Context, Proc, RunResult, peer_sink, record, start_peer, wait_outputs
from bench.kafka_io import output_topics, produce, read_since
from bench.procs import Simulator, WorkerProc, proc_status_mb, worker_config

PARTITIONS = 6
LATENCY_MS = 100
SIM_CONCURRENCY = 256
IN_FLIGHT = 64


def _settle(ctx: Context, group: str, procs: Sequence[Proc], tag: str) -> None:
    for proc in procs:
        proc.wait_assigned()
    deadline = time.monotonic() + 120
    while True:
        members = ctx.broker.group_members(group)
        if len(members) == len(procs) and all(members) and sum(members) == PARTITIONS:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"group {group} did not settle on {len(procs)} members: {members}")
        time.sleep(0.2)
    print(f"  [{tag}] {len(procs)} process(es) joined, partitions each {members}", flush=True)


def _start_group(ctx: Context, sim: Simulator, tag: str, workers: int) -> list[WorkerProc]:
    pipeline, source = f"bench-{tag}", f"bench-{tag}.raw"
    ctx.broker.create_pipeline_topics(pipeline, source, PARTITIONS)
    config = worker_config(ctx.bootstrap, sim.url, pipeline, source)
    procs = [WorkerProc(ctx.workdir, f"{tag}-w{i + 1}", config) for i in range(workers)]
    _settle(ctx, f"bench.{pipeline}", procs, tag)
    return procs


def _meter(ctx: Context, sim: Simulator, procs: Sequence[Proc], role: str) -> CpuMeter:
    pids = {f"{role}{i + 1}": p.pid for i, p in enumerate(procs)}
    return CpuMeter({**pids, "simulator": sim.pid, "kafka": ctx.kafka_pid})


def _inputs(ctx: Context, tag: str, n: int) -> list[tuple[bytes, bytes]]:
    return list(ctx.inputs(n, lambda i: f"{tag}-{i:06d}"))


def _drive(
    ctx: Context,
    sim: Simulator,
    tag: str,
    procs: Sequence[Proc],
    topics: list[str],
    role: str,
) -> RunResult:
    """Produce the input to a settled group, wait for every output, stop the group."""
    n = ctx.counts.scaleout
    try:
        base = ctx.broker.end_offsets(topics)
        records = _inputs(ctx, tag, n)
        before = sim.stats()
        meter = _meter(ctx, sim, procs, role)
        started = time.time()
        produce(ctx.bootstrap, f"bench-{tag}.raw", records)
        wait_outputs(ctx, tag, topics, base, n, procs)
        cpu = meter.read()
        after = sim.stats()
    finally:
        rss = max((p.stop() or 0.0) for p in procs)
    out = read_since(ctx.bootstrap, base, topics)
    rss_by_role = {
        role: round(rss, 1),
        "simulator": round(proc_status_mb(sim.pid, "VmHWM") or 0.0, 1),
        "kafka": round(proc_status_mb(ctx.kafka_pid, "VmHWM") or 0.0, 1),
    }
    calls = int(after["total"]) - int(before["total"])
    throttled = int(after["by_status"].get("429", 0)) - int(before["by_status"].get("429", 0))
    return RunResult(n, started, out, rss, cpu, rss_by_role, calls, throttled)


def throughput(ctx: Context, sim: Simulator, workers: int) -> RunResult:
    """``workers`` workers in one group, over input produced once the group is stable."""
    tag = f"e{workers}"
    procs = _start_group(ctx, sim, tag, workers)
    run = _drive(ctx, sim, tag, procs, output_topics(f"bench-{tag}"), "worker")
    print(f"  [{tag}] {run.rps:,.0f} rec/s with {workers} worker(s)", flush=True)
    return run


def peer_throughput(ctx: Context, sim: Simulator, instances: int) -> RunResult:
    """The same with ``instances`` faust peers in one group (one app id)."""
    tag = f"e{instances}p"
    source = f"bench-{tag}.raw"
    ctx.broker.create_topics([source], PARTITIONS)
    sink = peer_sink(ctx, tag, PARTITIONS)
    app_id = f"bench-peer-{tag}"
    procs = [
        start_peer(ctx, f"{tag}-{i + 1}", source, sink, sim, IN_FLIGHT, app_id=app_id)
        for i in range(instances)
    ]
    _settle(ctx, app_id, procs, tag)
    run = _drive(ctx, sim, tag, procs, [sink], "peer")
    print(f"  [{tag}] {run.rps:,.0f} rec/s with {instances} peer(s)", flush=True)
    return run


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
    sim = ctx.sims.get(LATENCY_MS, SIM_CONCURRENCY)
    for workers in ctx.counts.scaleout_sizes:
        ours = throughput(ctx, sim, workers)
        peer = peer_throughput(ctx, sim, workers)
        record(ctx, f"scaleout_{workers}", ours, peer)
    kill_one(ctx, sim)
    ctx.results.update(
        scaleout_records=n,
        scaleout_ideal_rps_per_worker=IN_FLIGHT / (LATENCY_MS / 1000),
    )
