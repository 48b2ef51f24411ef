"""The single-worker scenarios, each run by our worker and then by the naive faust peer.

(a) instant model, (b) latency-bound and sequential, (c) replay of cache hits, (f) 256
in flight. Every pipeline run is followed by a :mod:`bench.faust_peer` run over the
same input topic, against the same simulator, with ``concurrency=`` the worker's
in-flight limit; :func:`bench.harness.record` files both side by side. (d), memory, is
the peak RSS each run reads. Figures land in ``ctx.results`` under the names used in
``bench/results.json``.
"""

from __future__ import annotations

import io
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import fastavro

from bench.cpu import CpuMeter, ms_per_record
from bench.harness import Context, RunResult, record, run_peer, run_worker, wait_outputs
from bench.kafka_io import LOG_APPEND_TIME, Message, read_since
from bench.procs import REPO, Simulator, proc_status_mb, start_faust, stop, worker_config
from streams.replay import reset_offsets

PARTITIONS = 6
IDEAL_LATENCY_S = 0.2
IN_FLIGHT = 64
WIDE_IN_FLIGHT = 256

_INVOICE_V1 = fastavro.parse_schema(json.loads((REPO / "avro/invoice/v1.avsc").read_text()))


def provenance(msg: Message) -> dict[str, Any]:
    """The provenance inside a valid record (Schema Registry wire format, Avro)."""
    assert msg.value is not None
    assert msg.value[:1] == b"\0", "not Schema Registry wire format"
    datum = fastavro.schemaless_reader(io.BytesIO(msg.value[5:]), _INVOICE_V1, _INVOICE_V1)
    assert isinstance(datum, dict)
    prov: dict[str, Any] = datum["provenance"]
    return prov


def pipeline_source(msg: Message) -> tuple[int, int] | None:
    """(partition, offset) of the input a valid pipeline record came from."""
    if not msg.topic.endswith(".valid"):
        return None
    prov = provenance(msg)
    return int(prov["source_partition"]), int(prov["source_offset"])


def any_pipeline_source(msg: Message) -> tuple[int, int] | None:
    """The same for every route: the JSON envelopes of the others carry a ``source``."""
    if msg.topic.endswith(".valid"):
        return pipeline_source(msg)
    try:
        source = json.loads(msg.value or b"")["source"]
        return int(source["partition"]), int(source["offset"])
    except (ValueError, KeyError, TypeError):
        return None


def peer_source(msg: Message) -> tuple[int, int] | None:
    """(partition, offset) of the input a peer output came from (its ``src`` header)."""
    src = msg.header("src")
    if not src:
        return None
    partition, _, offset = src.partition(b":")
    return int(partition), int(offset)


def key_order_ok(
    messages: list[Message],
    source: Callable[[Message], tuple[int, int] | None] = pipeline_source,
) -> tuple[bool, int]:
    """Whether, per key, outputs appear in input-offset order. Returns (ok, keys checked).

    For the pipeline the input offset is the provenance's ``source_offset`` of each
    valid record; for the peer, the ``src`` header it copies from the input.
    """
    chains: dict[tuple[int, bytes | None], list[tuple[int, int]]] = defaultdict(list)
    for msg in messages:
        src = source(msg)
        if src is not None:
            chains[(msg.partition, msg.key)].append((msg.offset, src[1]))
    ok = True
    for chain in chains.values():
        offsets = [src for _out, src in sorted(chain)]
        ok = ok and all(a < b for a, b in itertools.pairwise(offsets))
    return ok, len(chains)


def _pair(
    ctx: Context,
    scenario: str,
    source: str,
    n: int,
    sim: Simulator,
    config: dict[str, Any],
    concurrency: int,
    *,
    check_order: bool = False,
) -> tuple[RunResult, RunResult]:
    """Our worker, then the peer, over the same ``source``; both filed under ``scenario``."""
    ours = run_worker(ctx, f"{scenario}-ours", config, n, sim)
    peer = run_peer(ctx, f"{scenario}-peer", source, n, sim, concurrency)
    record(ctx, scenario, ours, peer)
    if check_order:
        ok, chains = key_order_ok(ours.messages)
        peer_ok, peer_chains = key_order_ok(peer.messages, peer_source)
        ctx.results.update(
            {
                f"{scenario}_key_order_ok": ok,
                f"{scenario}_key_chains_checked": chains,
                f"{scenario}_peer_key_order_ok": peer_ok,
                f"{scenario}_peer_key_chains_checked": peer_chains,
            }
        )
        print(
            f"  [{scenario}] key order kept: ours {ok} ({chains} key chains), "
            f"peer {peer_ok} ({peer_chains})",
            flush=True,
        )
    return ours, peer


# -- (a) instant model ------------------------------------------------------------------


def instant(ctx: Context) -> None:
    """Simulator latency 0, cache off: the CPU a record costs; the bare agent is the ceiling."""
    n = ctx.counts.instant
    print(f"(a) instant model: {n} records, simulator latency 0, cache off", flush=True)
    pipeline, source = "bench-a", "bench-a.raw"
    ctx.broker.create_pipeline_topics(pipeline, source, PARTITIONS)
    ctx.produce(source, n, lambda i: f"a-{i:06d}")
    sim = ctx.sims.get(0, None)
    config = worker_config(ctx.bootstrap, sim.url, pipeline, source, cache=False)
    _pair(ctx, "instant", source, n, sim, config, IN_FLIGHT)
    _bare_faust(ctx, source, n)


def _bare_faust(ctx: Context, source: str, n: int) -> None:
    """The byte-forwarding agent over the same input: what faust and this broker allow."""
    sink = "bench-a.faust-out"
    ctx.broker.create_topics([sink], PARTITIONS, LOG_APPEND_TIME)
    base = ctx.broker.end_offsets([sink])
    faust = start_faust(ctx.workdir, ctx.bootstrap, "bench-a-faust", source, sink)
    try:
        meter = CpuMeter({"faust": faust.pid, "kafka": ctx.kafka_pid})
        wait_outputs(ctx, "a-bare-faust", [sink], base, n, [], others=(faust,))
        cpu = meter.read()
        rss = proc_status_mb(faust.pid, "VmHWM") or 0.0
    finally:
        # Its outputs are all acknowledged; a clean faust shutdown would only cost ~2 s.
        faust.kill()
        stop(faust)
    out = read_since(ctx.bootstrap, base, [sink])
    run = RunResult(expected=n, ready_at=0.0, messages=out, rss_mb=rss, cpu=cpu)
    # faust's group-join moment is not visible from outside this agent: first to last output.
    ctx.results.update(
        bare_faust_rps=round(run.rps_first_to_last, 1),
        bare_faust_records=n,
    )
    ctx.results.setdefault("cpu_seconds", {})["bare_faust"] = cpu
    ctx.results.setdefault("cpu_ms_per_record", {})["bare_faust"] = ms_per_record(cpu, n)
    ctx.results.setdefault("rss_mb", {})["bare_faust"] = {"faust": round(rss, 1)}
    print(f"  [bare faust] {run.rps_first_to_last:,.0f} rec/s: the broker's ceiling", flush=True)


# -- (b) latency-bound and sequential ---------------------------------------------------


def _latency_input(ctx: Context) -> tuple[str, str]:
    pipeline, source = "bench-b", "bench-b.raw"
    ctx.broker.create_pipeline_topics(pipeline, source, PARTITIONS)
    keys = ctx.counts.latency_bound_keys
    ctx.produce(source, ctx.counts.latency_bound, lambda i: f"k{i % keys:04d}")
    return pipeline, source


def latency_bound(ctx: Context, sim: Simulator) -> None:
    """64 calls in flight against a 200 ms model: the ideal is 64 / 0.2 s = 320 rec/s."""
    n, keys = ctx.counts.latency_bound, ctx.counts.latency_bound_keys
    ideal = IN_FLIGHT / IDEAL_LATENCY_S
    print(f"(b) latency-bound: {n} records, {keys} keys, 200 ms model, 64 in flight", flush=True)
    pipeline, source = _latency_input(ctx)
    config = worker_config(
        ctx.bootstrap, sim.url, pipeline, source, max_in_flight=IN_FLIGHT, max_connections=64
    )
    ours, _peer = _pair(ctx, "latency_bound", source, n, sim, config, IN_FLIGHT, check_order=True)
    ctx.results.update(
        latency_bound_ideal_rps=ideal,
        latency_bound_fraction_of_ideal=round(ours.rps / ideal, 4),
    )
    print(f"  {ours.rps:,.1f} rec/s = {ours.rps / ideal:.1%} of {ideal:.0f}", flush=True)


def sequential(ctx: Context, sim: Simulator) -> None:
    """The same model with one record in flight (and a peer with ``concurrency=1``)."""
    n = ctx.counts.sequential
    print(f"(b) sequential: {n} records, 200 ms model, max_in_flight=1", flush=True)
    pipeline, source = "bench-seq", "bench-seq.raw"
    ctx.broker.create_pipeline_topics(pipeline, source, PARTITIONS)
    ctx.produce(source, n, lambda i: f"s{i:05d}")
    config = worker_config(ctx.bootstrap, sim.url, pipeline, source, max_in_flight=1)
    ours, _peer = _pair(ctx, "sequential", source, n, sim, config, 1)
    if "latency_bound_rps" in ctx.results:
        speedup = ctx.results["latency_bound_rps"] / ours.rps
        ctx.results["latency_bound_speedup_vs_sequential"] = round(speedup, 1)


# -- (c) replay -------------------------------------------------------------------------


def reset_when_idle(ctx: Context, group: str, topic: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            reset_offsets(ctx.bootstrap, group, topic, to_earliest=True, progress=lambda _m: None)
            return
        except Exception:  # the stopped worker's membership may linger for a moment
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def replay(ctx: Context, sim: Simulator, source: str) -> None:
    """Warm the cache over (b)'s input, reset the group to earliest, run again: no calls.

    The peer has no cache, so over this input it does what it did in (b); when (b) ran
    in this run its figures are the replay's peer, otherwise the peer is run here.
    """
    n = ctx.counts.latency_bound
    print(f"(c) replay: {n} records of (b) again, cache on", flush=True)
    pipeline = "bench-c"
    ctx.broker.create_pipeline_topics(pipeline, source, PARTITIONS)
    config = worker_config(ctx.bootstrap, sim.url, pipeline, source, cache=True)
    warm = run_worker(ctx, "c-warm", config, n, sim)
    reset_when_idle(ctx, f"bench.{pipeline}", source)
    print("  group offsets reset to earliest", flush=True)
    run = run_worker(ctx, "c-replay", config, n, sim)
    if "latency_bound_peer_rps" in ctx.results:
        record(ctx, "replay", run, None)
        _reuse_peer(ctx, "replay", "latency_bound", run)
    else:
        record(ctx, "replay", run, run_peer(ctx, "replay-peer", source, n, sim, IN_FLIGHT))
    ctx.results.setdefault("rss_mb", {})["replay_warm"] = warm.rss
    valid = [m for m in run.messages if m.topic.endswith(".valid")]
    hits = sum(1 for m in valid if provenance(m)["cache_hit"])
    ctx.results.update(
        replay_cache_hits=hits,
        replay_warm_rps=round(warm.rps, 1),
        replay_warm_model_calls=warm.model_calls,
    )
    print(
        f"  replay {run.rps:,.0f} rec/s, {run.cpu_ms.get('worker', 0):.2f} ms worker CPU per "
        f"record, model calls {run.model_calls}, cache hits {hits}/{len(valid)} "
        f"(warm-up: {warm.rps:,.0f} rec/s, {warm.model_calls} calls)",
        flush=True,
    )


def _reuse_peer(ctx: Context, scenario: str, donor: str, ours: RunResult) -> None:
    """File ``donor``'s peer run (same input, same simulator) as ``scenario``'s peer."""
    res = ctx.results
    for suffix in ("rps", "rps_first_to_last", "errors", "model_calls", "http_429"):
        res[f"{scenario}_peer_{suffix}"] = res[f"{donor}_peer_{suffix}"]
    res[f"{scenario}_vs_peer"] = round(ours.rps / max(res[f"{scenario}_peer_rps"], 1e-9), 2)
    for table in ("cpu_seconds", "cpu_ms_per_record", "rss_mb"):
        res[table][f"{scenario}_peer"] = res[table][f"{donor}_peer"]
    res[f"{scenario}_peer_from"] = donor


def latency_and_replay(ctx: Context, which: set[str]) -> None:
    """(b) and (c) share one simulator: 200 ms per answer, at most 64 concurrent requests."""
    sim = ctx.sims.get(200, IN_FLIGHT)
    if "b" in which:
        latency_bound(ctx, sim)
        sequential(ctx, sim)
    if "c" in which:
        if "b" not in which:
            _latency_input(ctx)
        replay(ctx, sim, "bench-b.raw")


# -- (f) 256 in flight ------------------------------------------------------------------


def wide(ctx: Context) -> None:
    """256 in flight against a 200 ms model that admits 256: the ideal is 1,280 rec/s."""
    n, keys = ctx.counts.wide, ctx.counts.latency_bound_keys
    ideal = WIDE_IN_FLIGHT / IDEAL_LATENCY_S
    print(f"(f) 256 in flight: {n} records, {keys} keys, 200 ms model", flush=True)
    pipeline, source = "bench-f", "bench-f.raw"
    ctx.broker.create_pipeline_topics(pipeline, source, PARTITIONS)
    ctx.produce(source, n, lambda i: f"k{i % keys:04d}")
    sim = ctx.sims.get(200, WIDE_IN_FLIGHT)
    config = worker_config(
        ctx.bootstrap,
        sim.url,
        pipeline,
        source,
        max_in_flight=WIDE_IN_FLIGHT,
        max_connections=WIDE_IN_FLIGHT,
    )
    ours, _peer = _pair(ctx, "wide", source, n, sim, config, WIDE_IN_FLIGHT, check_order=True)
    ctx.results.update(
        wide_ideal_rps=ideal,
        wide_fraction_of_ideal=round(ours.rps / ideal, 4),
    )
