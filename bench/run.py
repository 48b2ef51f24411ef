"""``python -m bench.run [--quick | --smoke] [--scenarios a,b,c,e,f,g,p]``: the benchmark.

Scenarios: (a) instant model, (b) latency-bound and sequential, (c) replay of cache
hits, (d) memory (read during the others), (e) scale-out and a SIGKILL, (f) 256 in
flight, (g) kill -9 and restart, ours and the peer's, (p) py-spy profile of the worker.
Every pipeline run has the naive faust peer run beside it.

A full run (every scenario, full counts) writes ``bench/results.json`` and
``BENCHMARKS.md``; a ``--quick``, ``--smoke`` or partial run writes both into its work
dir under ``.cache/bench/`` (or ``--output``), so it never overwrites the published
figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import kill, profile, report, scaleout, scenarios
from bench.harness import Context, Counts, load_documents
from bench.procs import REPO, SimSpec, Simulators, stop_all
from streams.devstack.kafka import LocalKafka
from streams.settings import default_cache_dir

ALL = ("a", "b", "c", "d", "e", "f", "g", "p")

#: The simulators (latency ms, concurrency limit, slow share) each scenario uses.
SIMULATORS: dict[str, tuple[SimSpec, ...]] = {
    "a": ((0.0, None, 0.0),),
    "b": ((200.0, 64, 0.0),),
    "c": ((200.0, 64, 0.0),),
    "e": ((100.0, 256, 0.0),),
    "f": ((200.0, 256, 0.0),),
    "g": ((200.0, 64, kill.SLOW_FRACTION),),
    "p": ((0.0, None, 0.0), (200.0, 64, 0.0)),
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small counts (a few minutes)")
    size.add_argument(
        "--smoke",
        action="store_true",
        help="a few records per run, no profile: that every scenario runs (CI)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(ALL),
        help="comma-separated subset of a,b,c,d,e,f,g,p (d, memory, is read during the others)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite BENCHMARKS.md from the existing results.json, without running",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where results.json and BENCHMARKS.md go (default: the repo for a full run)",
    )
    args = parser.parse_args(argv)
    chosen = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    unknown = chosen - set(ALL)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; choose from {','.join(ALL)}")
    if args.smoke:
        chosen.discard("p")
    args.chosen = chosen
    return args


def _run(ctx: Context, chosen: set[str]) -> None:
    steps: list[tuple[set[str], Callable[[], None]]] = [
        ({"a"}, lambda: scenarios.instant(ctx)),
        ({"b", "c"}, lambda: scenarios.latency_and_replay(ctx, chosen)),
        ({"f"}, lambda: scenarios.wide(ctx)),
        ({"e"}, lambda: scaleout.scaleout(ctx)),
        ({"g"}, lambda: kill.kill_compare(ctx)),
        ({"p"}, lambda: profile.profile(ctx)),
    ]
    for letters, step in steps:
        if letters & chosen:
            began = time.monotonic()
            step()
            seconds = round(time.monotonic() - began, 1)
            ctx.results.setdefault("step_seconds", {})["".join(sorted(letters))] = seconds
            print(f"  ({'/'.join(sorted(letters & chosen))} took {seconds:.0f} s)", flush=True)


def _report_only(output: Path) -> int:
    raw = "bench/results.json" if output == REPO else "results.json"
    path = output / raw
    results = json.loads(path.read_text())
    command = (
        "make bench"
        if results.get("mode") == "full"
        else f"python -m bench.run --{results.get('mode')}"
    )
    (output / "BENCHMARKS.md").write_text(report.markdown(results, command, raw))
    print(f"rewrote {output / 'BENCHMARKS.md'} from {path}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.report_only:
        return _report_only(args.output or REPO)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    mode = "quick" if args.quick else "smoke" if args.smoke else "full"
    workdir = default_cache_dir() / "bench" / f"run-{stamp}{'' if mode == 'full' else '-' + mode}"
    workdir.mkdir(parents=True)
    full = mode == "full" and args.chosen >= set(ALL) - {"d"}
    output = args.output or (REPO if full else workdir)
    output.mkdir(parents=True, exist_ok=True)
    counts = {"quick": Counts.quick, "smoke": Counts.smoke, "full": Counts}[mode]()
    print(f"benchmark work dir (logs, configs): {workdir}", flush=True)
    results: dict[str, object] = {
        "machine": report.machine(),
        "mode": mode,
        "counts": dataclasses.asdict(counts),
        "scenarios": sorted(args.chosen),
        "load_start": [round(x, 2) for x in os.getloadavg()],
    }
    began = time.monotonic()
    # Spawned first, so their start-up overlaps the broker's.
    sims = Simulators(
        workdir, {spec for k, specs in SIMULATORS.items() if k in args.chosen for spec in specs}
    )
    kafka = LocalKafka(default_cache_dir(), data_dir=workdir / "kafka")
    try:
        kafka.start()
        assert kafka.pid is not None
        ctx = Context(kafka.bootstrap, kafka.pid, workdir, counts, load_documents(), sims)
        try:
            _run(ctx, args.chosen)
        finally:
            stop_all()
        results.update(ctx.results)
    finally:
        stop_all()
        # The broker's data is only scratch (deleted below): no need for a slow, clean
        # shutdown. Its logs stay with the run's other logs.
        kafka.stop(timeout=1.0)
        shutil.rmtree(workdir / "kafka" / "kraft", ignore_errors=True)
    results["load_end"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    final = report.finish(results, started)
    command = "make bench" if full else "python -m bench.run " + " ".join(sys.argv[1:])
    raw = "bench/results.json" if output == REPO else "results.json"
    report.write_json(final, output / raw)
    (output / "BENCHMARKS.md").write_text(report.markdown(final, command, raw))
    print(f"results written to {output}", flush=True)
    for line in report.target_lines(final):
        print(f"  {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
