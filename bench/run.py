"""``python -m bench.run [--quick] [--scenarios a,b,c,d,e]``: run the benchmark.

A full run (every scenario, full counts) writes ``bench/results.json`` and
``BENCHMARKS.md``; a ``--quick`` or partial run writes both into its work dir under
``.cache/bench/`` instead, so a smoke run never overwrites the published figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

from bench import report, scaleout, scenarios
from bench.harness import Context, Counts, load_documents
from bench.procs import REPO, stop_all
from streams.devstack.kafka import LocalKafka
from streams.settings import default_cache_dir

ALL = ("a", "b", "c", "d", "e")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument(
        "--scenarios",
        default=",".join(ALL),
        help="comma-separated subset of a,b,c,d,e (d, memory, is read during the others)",
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
    args.chosen = chosen
    return args


def _run(ctx: Context, chosen: set[str]) -> None:
    if "a" in chosen:
        scenarios.overhead(ctx)
    if chosen & {"b", "c"}:
        scenarios.latency_and_replay(ctx, chosen)
    if "e" in chosen:
        scaleout.scaleout(ctx)


def _report_only(output: Path) -> int:
    path = output / ("bench/results.json" if output == REPO else "results.json")
    results = json.loads(path.read_text())
    (output / "BENCHMARKS.md").write_text(report.markdown(results, "make bench"))
    print(f"rewrote {output / 'BENCHMARKS.md'} from {path}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.report_only:
        return _report_only(args.output or REPO)
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    workdir = default_cache_dir() / "bench" / f"run-{stamp}{'-quick' if args.quick else ''}"
    workdir.mkdir(parents=True)
    full = not args.quick and args.chosen >= {"a", "b", "c", "e"}
    output = args.output or (REPO if full else workdir)
    counts = Counts.quick() if args.quick else Counts()
    print(f"benchmark work dir (logs, configs): {workdir}", flush=True)
    results: dict[str, object] = {
        "machine": report.machine(),
        "quick": args.quick,
        "scenarios": sorted(args.chosen),
        "load_start": [round(x, 2) for x in os.getloadavg()],
    }
    began = time.monotonic()
    kafka = LocalKafka(default_cache_dir(), data_dir=workdir / "kafka")
    try:
        with kafka:
            assert kafka.pid is not None
            ctx = Context(kafka.bootstrap, kafka.pid, workdir, counts, load_documents())
            try:
                _run(ctx, args.chosen)
            finally:
                stop_all()
            results.update(ctx.results)
    finally:
        stop_all()
        # The broker's data is only scratch; its logs stay with the run's other logs.
        shutil.rmtree(workdir / "kafka" / "kraft", ignore_errors=True)
    results["load_end"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    final = report.finish(results, started)
    command = "make bench" if full else "python -m bench.run " + " ".join(sys.argv[1:])
    report.write_json(final, output / ("bench/results.json" if output == REPO else "results.json"))
    (output / "BENCHMARKS.md").write_text(report.markdown(final, command))
    print(f"results written to {output}", flush=True)
    for key in ("overhead_ratio", "latency_bound_fraction_of_ideal", "replay_rps", "peak_rss_mb"):
        if key in final:
            print(f"  {key} = {final[key]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
