"""py-spy on the worker (instant, latency-bound, a replay of cache hits) and on the peer
(latency-bound).

Separate runs from the measured ones (a sampler costs the process it samples a
little), with the same settings as (a) and (b): a fresh input, one worker, and
``py-spy record --format raw --nonblocking`` attached from the moment the worker has
partitions until its last output. The raw output is one line per distinct stack with
its sample count; it is reduced here to each function's share of the samples, as the
leaf (self) and anywhere on the stack (inclusive).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import Context, Proc, peer_sink, start_peer, wait_outputs
from bench.kafka_io import output_topics
from bench.procs import STARTED, WorkerProc, worker_config
from bench.scenarios import reset_when_idle

PARTITIONS = 6
IN_FLIGHT = 64
RATE_HZ = 100
#: Functions kept per list in results.json (BENCHMARKS.md shows fewer).
TOP = 25
#: Root frames of a whole stack: the main thread's, or a thread's. A sample whose stack
#: starts anywhere else was cut short by ``--nonblocking`` (the process moved on while
#: py-spy read it); its leaf is still right, its ancestors are not all there.
_ROOTS = ("_run_module_as_main", "<module>", "_bootstrap")
#: The event loop's frame: what is above it (the CLI, ``asyncio.run``) is on every stack.
_LOOP = "BaseEventLoop._run_once"

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "/lib/python3", str(Path(__file__).resolve().parents[1])):
        if marker in path:
            path = path.split(marker, 1)[1].lstrip("/")
            break
    return f"{m['func']} ({path.removeprefix('.11/')})"


def summarise(raw: str, top: int = TOP, code: tuple[str, ...] = ("streams/",)) -> dict[str, Any]:
    """Self and inclusive shares of the samples in py-spy's raw (collapsed) output.

    Self shares are of every sample. Inclusive shares are of the whole stacks only, and
    count the frames below the event loop, for functions under ``code`` (path
    prefixes): the ones that say which stage a library call serves.
    """
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = whole = 0
    for line in raw.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        names = [_name(f) for f in stack.split(";")]
        own[names[-1]] += n
        if not names[0].startswith(_ROOTS):
            continue
        whole += n
        loop = next((i for i, name in enumerate(names) if name.startswith(_LOOP)), -1)
        for name in set(names[loop + 1 :]):
            anywhere[name] += n
    if not total:
        return {"samples": 0, "whole_stacks": 0, "self": [], "inclusive": []}
    inclusive = [
        (name, k) for name, k in anywhere.most_common() if any(f"({p}" in name for p in code)
    ]
    return {
        "samples": total,
        "whole_stacks": whole,
        "self": [[name, round(k / total, 3)] for name, k in own.most_common(top)],
        "inclusive": [[name, round(k / max(whole, 1), 3)] for name, k in inclusive[:top]],
    }


def _spy(ctx: Context, name: str, pid: int) -> tuple[subprocess.Popen[bytes], Path]:
    out_file = ctx.workdir / f"py-spy-{name}.txt"
    argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid)]
    argv += ["--format", "raw", "--rate", str(RATE_HZ), "--nonblocking", "--output", str(out_file)]
    with (ctx.workdir / f"py-spy-{name}.log").open("wb") as log:
        spy = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    STARTED.append(spy)
    return spy, out_file


def _profile_one(
    ctx: Context,
    name: str,
    latency_ms: float,
    limit: int | None,
    *,
    peer: bool = False,
    replay: bool = False,
) -> dict[str, Any]:
    n = ctx.counts.profile
    pipeline, source = f"bench-p-{name}", f"bench-p-{name}.raw"
    ctx.broker.create_pipeline_topics(pipeline, source, PARTITIONS)
    ctx.produce(source, n, lambda i: f"p-{i:06d}")
    sim = ctx.sims.get(latency_ms, limit)
    proc: Proc
    if peer:
        sink = peer_sink(ctx, f"p-{name}", PARTITIONS)
        topics = [sink]
        proc = start_peer(ctx, f"p-{name}", source, sink, sim, IN_FLIGHT)
    else:
        config = worker_config(ctx.bootstrap, sim.url, pipeline, source, cache=replay)
        topics = output_topics(pipeline)
        if replay:
            # Fill the cache unprofiled, then profile the second pass over the same input.
            base = ctx.broker.end_offsets(topics)
            warm = WorkerProc(ctx.workdir, f"p-{name}-warm", config)
            try:
                warm.wait_assigned()
                wait_outputs(ctx, f"profile-{name}-warm", topics, base, n, [warm])
            finally:
                warm.stop()
            reset_when_idle(ctx, f"bench.{pipeline}", source)
        proc = WorkerProc(ctx.workdir, f"p-{name}", config)
    base = ctx.broker.end_offsets(topics)
    try:
        proc.wait_assigned()
        spy, out_file = _spy(ctx, name, proc.pid)
        try:
            wait_outputs(ctx, f"profile-{name}", topics, base, n, [proc])
        finally:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
            spy.wait(60)
            STARTED.remove(spy)
    finally:
        proc.stop()
    if not out_file.exists():
        return {"error": f"py-spy wrote nothing (exit {spy.returncode}); see its log"}
    code = ("bench/", "httpx/", "httpcore/") if peer else ("streams/",)
    return summarise(out_file.read_text(), code=code)


#: (results key, simulator latency ms, simulator concurrency limit, the peer?, a replay
#: of cache hits?)
CASES = (
    ("instant", 0.0, None, False, False),
    ("latency_bound", 200.0, IN_FLIGHT, False, False),
    ("replay", 0.0, None, False, True),
    ("peer_latency_bound", 200.0, IN_FLIGHT, True, False),
)


def profile(ctx: Context) -> None:
    """py-spy on one process per case: the worker at (a) and (b), the peer at (b)."""
    n = ctx.counts.profile
    print(f"(p) profile: py-spy, {n} records per case", flush=True)
    found: dict[str, Any] = {"records": n, "rate_hz": RATE_HZ}
    for name, latency_ms, limit, peer, replay in CASES:
        try:
            found[name] = _profile_one(ctx, name, latency_ms, limit, peer=peer, replay=replay)
        except (OSError, subprocess.SubprocessError) as exc:
            found[name] = {"error": f"py-spy failed: {exc}"}
        print(f"  [{name}] top self: {found[name].get('self', [])[:3]}", flush=True)
    ctx.results["profile"] = found
