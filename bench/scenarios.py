"""Scenarios (a) overhead, (b) latency-bound and sequential, (c) replay; (d) is their RSS.

Each function adds its figures to ``ctx.results`` under the names used in
``bench/results.json``.
"""

from __future__ import annotations

import io
import itertools
import json
import time
from collections import defaultdict
from typing import Any

import fastavro

from bench.harness import Context, RunResult, run_worker, wait_outputs
from bench.kafka_io import LOG_APPEND_TIME, Message, read_since
from bench.procs import (
    REPO,
    CpuMeter,
    Simulator,
    proc_status_mb,
    start_faust,
    stop,
    worker_config,
)
from streams.replay import reset_offsets

PARTITIONS = 6
IDEAL_LATENCY_S = 0.2
IN_FLIGHT = 64

_INVOICE_V1 = fastavro.parse_schema(json.loads((REPO / "avro/invoice/v1.avsc").read_text()))


def provenance(msg: Message) -> dict[str, Any]:
    """The provenance inside a valid record (Schema Registry wire format, Avro)."""
    assert msg.value is not None
    assert msg.value[:1] == b"\0", "not Schema Registry wire format"
    datum = fastavro.schemaless_reader(io.BytesIO(msg.value[5:]), _INVOICE_V1, _INVOICE_V1)
    assert isinstance(datum, dict)
    prov: dict[str, Any] = datum["provenance"]
    return prov


def _record_run(ctx: Context, name: str, run: RunResult) -> None:
    ctx.results[f"rss_mb_{name}"] = round(run.rss_mb, 1)
    ctx.results.setdefault("routes", {})[name] = run.routes()
    ctx.results.setdefault("cpu_seconds", {})[name] = run.cpu


# -- (a) overhead -----------------------------------------------------------------------


def overhead(ctx: Context) -> None:
    """Pipeline vs a bare faust agent, same input, instant simulator, cache off."""
    n = ctx.counts.overhead
    print(f"(a) overhead: {n} records, simulator latency 0, cache off", flush=True)
    broker = ctx.broker
    pipeline, source = "bench-a", "bench-a.raw"
    broker.create_pipeline_topics(pipeline, source, PARTITIONS)
    ctx.produce(source, n, lambda i: f"a-{i:06d}")

    with Simulator(ctx.workdir, latency_ms=0, max_concurrency=None) as sim:
        config = worker_config(ctx.bootstrap, sim.url, pipeline, source, cache=False)
        calls = sim.model_calls()
        run = run_worker(ctx, "a-pipeline", config, n, sim)
        calls = sim.model_calls() - calls
    _record_run(ctx, "overhead", run)

    sink = "bench-a.faust-out"
    broker.create_topics([sink], PARTITIONS, LOG_APPEND_TIME)
    base = broker.end_offsets([sink])
    faust = start_faust(ctx.workdir, ctx.bootstrap, "bench-a-faust", source, sink)
    try:
        meter = CpuMeter({"faust": faust.pid, "kafka": ctx.kafka_pid})
        wait_outputs(ctx, "a-faust", [sink], base, n, [], others=(faust,))
        cpu = meter.read()
        faust_rss = proc_status_mb(faust.pid, "VmHWM") or 0.0
    finally:
        stop(faust)
    faust_out = read_since(ctx.bootstrap, base, [sink])
    faust_run = RunResult(expected=n, ready_at=0.0, messages=faust_out, rss_mb=faust_rss)
    ctx.results.setdefault("cpu_seconds", {})["overhead_faust"] = cpu

    # Same window for both: first output to last output (faust's group-join moment is
    # not observable from outside; for the pipeline the two windows differ by ~1 record).
    pipeline_rps = run.rps_first_to_last
    faust_rps = faust_run.rps_first_to_last
    ctx.results.update(
        overhead_records=n,
        overhead_pipeline_rps=round(pipeline_rps, 1),
        overhead_pipeline_rps_from_ready=round(run.rps, 1),
        overhead_faust_rps=round(faust_rps, 1),
        overhead_ratio=round(pipeline_rps / faust_rps, 4),
        overhead_model_calls=calls,
        overhead_faust_rss_mb=round(faust_rss, 1),
    )
    print(
        f"  pipeline {pipeline_rps:,.0f} rec/s, faust {faust_rps:,.0f} rec/s, "
        f"ratio {pipeline_rps / faust_rps:.3f}; model calls {calls}",
        flush=True,
    )


# -- (b) latency-bound and sequential ---------------------------------------------------


def key_order_ok(messages: list[Message]) -> tuple[bool, int]:
    """Whether, per key, valid records appear in input-offset order. Returns (ok, keys)."""
    chains: dict[tuple[int, bytes | None], list[tuple[int, int]]] = defaultdict(list)
    for msg in messages:
        if msg.topic.endswith(".valid"):
            prov = provenance(msg)
            source = (int(prov["source_partition"]), int(prov["source_offset"]))
            chains[(msg.partition, msg.key)].append((msg.offset, source[1]))
    ok = True
    for chain in chains.values():
        offsets = [src for _out, src in sorted(chain)]
        ok = ok and all(a < b for a, b in itertools.pairwise(offsets))
    return ok, len(chains)


def latency_bound(ctx: Context, sim: Simulator) -> None:
    """64 calls in flight against a 200 ms model: the ideal is 64 / 0.2 s = 320 rec/s."""
    n, keys = ctx.counts.latency_bound, ctx.counts.latency_bound_keys
    ideal = IN_FLIGHT / IDEAL_LATENCY_S
    print(f"(b) latency-bound: {n} records, {keys} keys, 200 ms model, 64 in flight", flush=True)
    pipeline, source = "bench-b", "bench-b.raw"
    ctx.broker.create_pipeline_topics(pipeline, source, PARTITIONS)
    ctx.produce(source, n, lambda i: f"k{i % keys:04d}")
    config = worker_config(
        ctx.bootstrap, sim.url, pipeline, source, max_in_flight=IN_FLIGHT, max_connections=64
    )
    before = sim.stats()
    run = run_worker(ctx, "b-latency-bound", config, n, sim)
    after = sim.stats()
    _record_run(ctx, "latency_bound", run)
    ok, chains = key_order_ok(run.messages)
    throttled = after["by_status"].get("429", 0) - before["by_status"].get("429", 0)
    ctx.results.update(
        latency_bound_records=n,
        latency_bound_rps=round(run.rps, 1),
        latency_bound_ideal_rps=ideal,
        latency_bound_fraction_of_ideal=round(run.rps / ideal, 4),
        latency_bound_key_order_ok=ok,
        latency_bound_key_chains_checked=chains,
        latency_bound_model_calls=after["total"] - before["total"],
        latency_bound_http_429=throttled,
    )
    print(
        f"  {run.rps:,.1f} rec/s = {run.rps / ideal:.1%} of {ideal:.0f}; key order ok: {ok} "
        f"({chains} key chains); 429s: {throttled}",
        flush=True,
    )


def sequential(ctx: Context, sim: Simulator) -> None:
    """The same model with one record in flight: the baseline concurrency is measured against."""
    n = ctx.counts.sequential
    print(f"(b) sequential: {n} records, 200 ms model, max_in_flight=1", flush=True)
    pipeline, source = "bench-seq", "bench-seq.raw"
    ctx.broker.create_pipeline_topics(pipeline, source, PARTITIONS)
    ctx.produce(source, n, lambda i: f"s{i:05d}")
    config = worker_config(ctx.bootstrap, sim.url, pipeline, source, max_in_flight=1)
    run = run_worker(ctx, "b-sequential", config, n, sim)
    _record_run(ctx, "sequential", run)
    speedup = ctx.results.get("latency_bound_rps", 0.0) / run.rps
    ctx.results.update(
        sequential_records=n,
        sequential_rps=round(run.rps, 2),
        latency_bound_speedup_vs_sequential=round(speedup, 1),
    )
    print(f"  {run.rps:.2f} rec/s sequential", flush=True)


# -- (c) replay -------------------------------------------------------------------------


def _reset_when_idle(ctx: Context, group: str, topic: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            reset_offsets(ctx.bootstrap, group, topic, to_earliest=True, progress=lambda _m: None)
            return
        except Exception:  # the stopped worker's membership may linger for a moment
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def replay(ctx: Context, sim: Simulator) -> None:
    """Warm the cache over (b)'s input, reset the group to earliest, run again: no calls."""
    n = ctx.counts.latency_bound
    print(f"(c) replay: {n} records of (b) again, cache on", flush=True)
    pipeline, source = "bench-c", "bench-b.raw"
    ctx.broker.create_pipeline_topics(pipeline, source, PARTITIONS)
    config = worker_config(ctx.bootstrap, sim.url, pipeline, source, cache=True)
    calls = sim.model_calls()
    warm = run_worker(ctx, "c-warm", config, n, sim)
    warm_calls = sim.model_calls() - calls
    _reset_when_idle(ctx, f"bench.{pipeline}", source)
    print("  group offsets reset to earliest", flush=True)
    calls = sim.model_calls()
    run = run_worker(ctx, "c-replay", config, n, sim)
    replay_calls = sim.model_calls() - calls
    _record_run(ctx, "replay", run)
    ctx.results["rss_mb_replay_warm"] = round(warm.rss_mb, 1)
    valid = [m for m in run.messages if m.topic.endswith(".valid")]
    hits = sum(1 for m in valid if provenance(m)["cache_hit"])
    ctx.results.update(
        replay_records=n,
        replay_rps=round(run.rps, 1),
        replay_model_calls=replay_calls,
        replay_cache_hits=hits,
        replay_warm_rps=round(warm.rps, 1),
        replay_warm_model_calls=warm_calls,
    )
    print(
        f"  replay {run.rps:,.0f} rec/s, model calls {replay_calls}, cache hits {hits}/{len(valid)}"
        f" (warm-up: {warm.rps:,.0f} rec/s, {warm_calls} calls)",
        flush=True,
    )


def latency_and_replay(ctx: Context, which: set[str]) -> None:
    """(b) and (c) share one simulator: 200 ms per answer, at most 64 concurrent requests."""
    with Simulator(ctx.workdir, latency_ms=200, max_concurrency=64) as sim:
        if "b" in which:
            latency_bound(ctx, sim)
            sequential(ctx, sim)
        if "c" in which:
            if "b" not in which:
                pipeline, source = "bench-b", "bench-b.raw"
                ctx.broker.create_pipeline_topics(pipeline, source, PARTITIONS)
                keys = ctx.counts.latency_bound_keys
                ctx.produce(source, ctx.counts.latency_bound, lambda i: f"k{i % keys:04d}")
            replay(ctx, sim)
