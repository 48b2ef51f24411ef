"""The machine description, ``bench/results.json`` and ``BENCHMARKS.md``."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.notes import cpu_ms, method, notes_for, others_cores
from streams.devstack.kafka import KAFKA_VERSION

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    # Read-only, and without the optional index refresh `git status` would write.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    return subprocess.run(
        ["git", *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )


def git_commit() -> str:
    head = _git("rev-parse", "HEAD").stdout.strip() or "unknown"
    dirty = _git("diff", "--quiet", "HEAD", "--", "streams", "contracts").returncode == 1
    return f"{head}+uncommitted-changes" if dirty else head


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _java() -> str:
    out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).splitlines()[0] if (out.stderr or out.stdout) else "?"


def machine() -> dict[str, Any]:
    versions = {}
    for dist in ("faust-streaming", "aiokafka", "confluent-kafka", "httpx", "aiohttp"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "ram_gib": _mem_total_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kafka": KAFKA_VERSION,
        "java": _java(),
        "packages": versions,
    }


@dataclass(frozen=True)
class Target:
    figure: str
    target: str
    met: Callable[[Any], bool] | None
    fmt: str = "{}"


TARGETS = (
    Target("overhead_ratio", ">= 0.8", lambda v: v >= 0.8, "{:.3f}"),
    Target("overhead_pipeline_rps", "", None, "{:,.0f} rec/s"),
    Target("overhead_faust_rps", "", None, "{:,.0f} rec/s"),
    Target("latency_bound_rps", "", None, "{:,.1f} rec/s"),
    Target("latency_bound_fraction_of_ideal", ">= 0.9", lambda v: v >= 0.9, "{:.3f}"),
    Target("latency_bound_key_order_ok", "true", lambda v: v is True),
    Target("sequential_rps", "(~5)", None, "{:.2f} rec/s"),
    Target("replay_rps", ">= 2,000 rec/s", lambda v: v >= 2000, "{:,.0f} rec/s"),
    Target("replay_model_calls", "0", lambda v: v == 0),
    Target("peak_rss_mb", "<= 400 MB", lambda v: v <= 400, "{:.0f} MiB"),
    Target("scaleout_rps_1", "", None, "{:,.0f} rec/s"),
    Target("scaleout_rps_2", "", None, "{:,.0f} rec/s"),
    Target("scaleout_rps_3", "", None, "{:,.0f} rec/s"),
    Target("scaleout_kill_invariant_ok", "true", lambda v: v is True),
    Target("scaleout_kill_duplicates", "(counted)", None),
)


def finish(results: dict[str, Any], started: dt.datetime) -> dict[str, Any]:
    rss = [v for k, v in results.items() if k.startswith("rss_mb_") and isinstance(v, float)]
    if rss:
        results["peak_rss_mb"] = max(rss)
    results["date"] = started.isoformat(timespec="seconds")
    results["git_commit"] = git_commit()
    return dict(sorted(results.items()))


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def _row(t: Target, results: dict[str, Any]) -> str:
    if t.figure not in results:
        return f"| `{t.figure}` | {t.target or '-'} | not run | - |"
    value = results[t.figure]
    shown = t.fmt.format(value) if not isinstance(value, bool) else str(value).lower()
    met = "-" if t.met is None else ("yes" if t.met(value) else "**no**")
    return f"| `{t.figure}` | {t.target or '-'} | {shown} | {met} |"


#: (cpu_seconds scenario, what it measured, the results key holding its record count)
_CPU_ROWS = (
    ("overhead", "(a) pipeline, latency 0", "overhead_records"),
    ("overhead_faust", "(a) bare faust agent", "overhead_records"),
    ("latency_bound", "(b) 200 ms, 64 in flight", "latency_bound_records"),
    ("sequential", "(b) 200 ms, 1 in flight", "sequential_records"),
    ("replay", "(c) replay, cache hits", "replay_records"),
    ("scaleout_1", "(e) 1 worker, 100 ms", "scaleout_records"),
    ("scaleout_2", "(e) 2 workers, 100 ms", "scaleout_records"),
    ("scaleout_3", "(e) 3 workers, 100 ms", "scaleout_records"),
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cpu_table(results: dict[str, Any]) -> list[str]:
    """CPU per record of each process, and how busy the rest of the machine was."""
    cpu = results.get("cpu_seconds", {})
    lines = [
        "| run | wall s | worker(s) ms CPU/record | simulator ms/record | Kafka ms/record "
        "| other tenants, CPUs busy |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, label, records in _CPU_ROWS:
        if key not in cpu:
            continue
        n = results.get(records) or 0
        workers = sum(v for k, v in cpu[key].items() if k.startswith(("worker", "faust")))
        mine = 1000 * workers / n if n else None
        lines.append(
            f"| {label} | {cpu[key]['wall_s']:.0f} | {_ms(mine)} "
            f"| {_ms(cpu_ms(results, key, records, 'simulator'))} "
            f"| {_ms(cpu_ms(results, key, records, 'kafka'))} "
            f"| {_ms(others_cores(results, key))} |"
        )
    return lines


def markdown(results: dict[str, Any], command: str) -> str:
    m = results["machine"]
    rss = ", ".join(
        f"{k.removeprefix('rss_mb_')} {v:.0f}"
        for k, v in sorted(results.items())
        if k.startswith("rss_mb_")
    )
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` on {results['date']} at commit `{results['git_commit']}`.",
        "Raw figures: [`bench/results.json`](bench/results.json). Re-run with `make bench`.",
        "",
        "| figure | target | measured | met? |",
        "| --- | --- | --- | --- |",
        *(_row(t, results) for t in TARGETS),
        "",
        f"Peak RSS per scenario (MiB, `VmHWM` of each worker process): {rss}.",
        "",
        "## Machine",
        "",
        f"- {m['nproc']} CPUs (`nproc`), {m['cpu_model']}, {m['ram_gib']} GiB RAM, "
        f"Linux {m['kernel']}",
        f"- Python {m['python']}, Apache Kafka {m['kafka']} (KRaft, one node, local), {m['java']}",
        "- " + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
        f"- load average at start {results['load_start']}, at end {results['load_end']} "
        "(VM-wide: the machine is shared with other tenants' work)",
        "",
        "### Where the CPU went",
        "",
        *cpu_table(results),
        "",
        "The sequential run's per-record figures include idle background work (heartbeats,",
        "fetch polling, the broker's housekeeping) spread over only a few records.",
        "",
        method(results).strip(),
        "",
        "## Notes: what was missed, and why",
        "",
        notes_for(results).strip(),
        "",
    ]
    return "\n".join(lines)
