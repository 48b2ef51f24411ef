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

from bench.eval_local import markdown_section as eval_section
from bench.notes import (
    LOCAL_MODEL,
    method,
    notes_for,
    others_cores,
    profile_section,
    soak_section,
)
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
    """One row of the targets table: a figure, what it must be, and whether it is."""

    label: str
    figure: str
    target: str
    met: Callable[[Any, dict[str, Any]], bool]
    shown: Callable[[Any, dict[str, Any]], str]


def _ideal(v: Any, r: dict[str, Any]) -> str:
    ideal = r.get("latency_bound_ideal_rps", 320)
    return f"{r.get('latency_bound_rps', 0):,.1f} rec/s = {v:.1%} of {ideal:.0f}"


TARGETS = (
    Target(
        "latency-bound (200 ms, 64 in flight) share of ideal",
        "latency_bound_fraction_of_ideal",
        ">= 90% of 320 rec/s",
        lambda v, _r: v >= 0.9,
        _ideal,
    ),
    Target(
        "... with key order kept",
        "latency_bound_key_order_ok",
        "true",
        lambda v, _r: v is True,
        lambda v, r: f"{str(v).lower()} ({r.get('latency_bound_key_chains_checked')} keys)",
    ),
    Target(
        "latency-bound, ours / naive faust peer (same run)",
        "latency_bound_vs_peer",
        ">= 4x",
        lambda v, _r: v >= 4,
        lambda v, r: (
            f"{v:.2f}x ({r['latency_bound_rps']:,.1f} vs {r['latency_bound_peer_rps']:,.1f} rec/s)"
        ),
    ),
    Target(
        "worker CPU per record, instant model",
        "instant_worker_cpu_ms",
        "<= 1.0 ms",
        lambda v, _r: v <= 1.0,
        lambda v, _r: f"{v:.2f} ms",
    ),
    Target(
        "worker CPU per replayed cache hit",
        "replay_worker_cpu_ms",
        "<= 0.3 ms",
        lambda v, _r: v <= 0.3,
        lambda v, _r: f"{v:.2f} ms",
    ),
    Target(
        "... model calls during the replay",
        "replay_model_calls",
        "0",
        lambda v, _r: v == 0,
        lambda v, r: f"{v} ({r.get('replay_cache_hits')} cache hits)",
    ),
    Target(
        "peak RSS of any worker process",
        "peak_rss_mb_worker",
        "<= 400 MB",
        lambda v, _r: v * 1.048576 <= 400,
        lambda v, _r: f"{v:.0f} MiB ({v * 1.048576:.0f} MB)",
    ),
)


def target_lines(results: dict[str, Any]) -> list[str]:
    """One line per target for the console: label, measured, met."""
    lines = []
    for t in TARGETS:
        if t.figure in results:
            met = "met" if t.met(results[t.figure], results) else "NOT met"
            lines.append(f"{t.label}: {t.shown(results[t.figure], results)} ({t.target}: {met})")
    return lines


#: Pipeline scenarios with a peer: (results prefix, what it measured).
SCENARIOS = (
    ("instant", "(a) instant model, 64 in flight"),
    ("latency_bound", "(b) 200 ms, 64 in flight"),
    ("sequential", "(b) 200 ms, 1 in flight"),
    ("replay", "(c) replay of cache hits, 64 in flight"),
    ("wide", "(f) 200 ms, 256 in flight"),
    ("scaleout_1", "(e) 100 ms, 1 process"),
    ("scaleout_2", "(e) 100 ms, 2 processes"),
    ("scaleout_3", "(e) 100 ms, 3 processes"),
)

PEAK_ROLES = ("worker", "peer", "simulator", "kafka", "faust")


def finish(results: dict[str, Any], started: dt.datetime) -> dict[str, Any]:
    for role in PEAK_ROLES:
        peaks = [
            v[role] for v in results.get("rss_mb", {}).values() if isinstance(v.get(role), float)
        ]
        if peaks:
            results[f"peak_rss_mb_{role}"] = max(peaks)
    results["date"] = started.isoformat(timespec="seconds")
    results["git_commit"] = git_commit()
    return dict(sorted(results.items()))


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def _row(t: Target, results: dict[str, Any]) -> str:
    if t.figure not in results:
        return f"| {t.label} | {t.target} | not run | - |"
    value = results[t.figure]
    met = "yes" if t.met(value, results) else "**no**"
    return f"| {t.label} | {t.target} | {t.shown(value, results)} | {met} |"


def _f(value: Any, fmt: str = "{:,.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def versus_table(results: dict[str, Any]) -> list[str]:
    """Ours and the peer per scenario, from the same run over the same input."""
    lines = [
        "| scenario | records | ours rec/s | peer rec/s | ours / peer | worker ms CPU/record "
        "| peer ms CPU/record | 429s ours / peer | key order ours / peer |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    ms = results.get("cpu_ms_per_record", {})
    for key, label in SCENARIOS:
        if f"{key}_rps" not in results:
            continue
        peer_note = " (b)'s run" if results.get(f"{key}_peer_from") else ""
        order = "-"
        if f"{key}_key_order_ok" in results:
            order = (
                f"{str(results[f'{key}_key_order_ok']).lower()} / "
                f"{str(results[f'{key}_peer_key_order_ok']).lower()}"
            )
        lines.append(
            f"| {label} | {results[f'{key}_records']:,} | {_f(results[f'{key}_rps'])} "
            f"| {_f(results.get(f'{key}_peer_rps'))}{peer_note} "
            f"| {_f(results.get(f'{key}_vs_peer'), '{:.2f}x')} "
            f"| {_f(ms.get(key, {}).get('worker'), '{:.2f}')} "
            f"| {_f(ms.get(f'{key}_peer', {}).get('peer'), '{:.2f}')} "
            f"| {results.get(f'{key}_http_429', '-')} / {results.get(f'{key}_peer_http_429', '-')} "
            f"| {order} |"
        )
    if "bare_faust_rps" in results:
        bare = ms.get("bare_faust", {})
        lines.append(
            f"| bare faust agent forwarding bytes (the broker's ceiling) "
            f"| {results['bare_faust_records']:,} | - | {_f(results['bare_faust_rps'])} | - | - "
            f"| {_f(bare.get('faust'), '{:.2f}')} | - | - |"
        )
    return lines


def cpu_table(results: dict[str, Any]) -> list[str]:
    """Milliseconds of CPU per record of each process, and how busy the rest was."""
    lines = [
        "| scenario | side | wall s | worker / peer | simulator | Kafka broker (JVM) "
        "| other tenants, CPUs busy |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    cpu, ms = results.get("cpu_seconds", {}), results.get("cpu_ms_per_record", {})
    rows = [(k, label) for k, label in SCENARIOS] + [("bare_faust", "bare faust agent")]
    for key, label in rows:
        for run, side, role in ((key, "ours", "worker"), (f"{key}_peer", "peer", "peer")):
            if run not in ms or (results.get(f"{key}_peer_from") and side == "peer"):
                continue
            if key == "bare_faust":
                side, role = "faust", "faust"
            per = ms[run]
            lines.append(
                f"| {label} | {side} | {cpu[run]['wall_s']:.0f} "
                f"| {_f(per.get(role), '{:.2f}')} | {_f(per.get('simulator'), '{:.2f}')} "
                f"| {_f(per.get('kafka'), '{:.2f}')} | {_f(others_cores(results, run), '{:.2f}')} |"
            )
    return lines


def kill_table(results: dict[str, Any]) -> list[str]:
    if "kill_ours_lost" not in results:
        return []
    kills = results.get("kill_kills", 1)
    lines = [
        f"| (g) one process, SIGKILLed {kills} time(s) and restarted, 5% of answers 5 s "
        "| inputs | lost (no output) | duplicates | samples committed past a missing output "
        "| most inputs exposed at once | last kill to end, s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for side, label in (("ours", "our worker"), ("peer", "naive faust peer")):
        lines.append(
            f"| {label} | {results['kill_records']:,} | **{results[f'kill_{side}_lost']}** "
            f"| {results[f'kill_{side}_duplicates']:,} "
            f"| {results[f'kill_{side}_exposed_samples']} of "
            f"{results[f'kill_{side}_exposure_samples']} "
            f"| {results[f'kill_{side}_max_exposed']} "
            f"| {results[f'kill_{side}_recovery_seconds']} |"
        )
    if "scaleout_kill_missing_keys" in results:
        lines.append(
            f"| (e) three workers, one SIGKILLed after a third, 100 ms "
            f"| {results['scaleout_records']:,} "
            f"| **{results['scaleout_kill_missing_keys']}** "
            f"| {results['scaleout_kill_duplicates']:,} | - | - "
            f"| {results['scaleout_kill_recovery_seconds']} |"
        )
    return lines


def rss_line(results: dict[str, Any]) -> str:
    shown = [
        f"{role} {results[f'peak_rss_mb_{role}']:.0f}"
        for role in PEAK_ROLES
        if f"peak_rss_mb_{role}" in results
    ]
    return (
        "Peak RSS per process (MiB, `VmHWM` from `/proc/<pid>/status`, the highest of any "
        f"run): {', '.join(shown)}."
    )


def load_soak(path: Path = REPO / "bench" / "soak.json") -> dict[str, Any] | None:
    """The last ``make soak`` run's figures, if one was committed."""
    return json.loads(path.read_text()) if path.exists() else None


def markdown(results: dict[str, Any], command: str, raw: str = "bench/results.json") -> str:
    """The whole of ``BENCHMARKS.md``; ``raw`` is the link to the results beside it.

    The soak section comes last, from ``bench/soak.json`` (a run of its own, ``make soak``).
    """
    m = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` on {results['date']} at commit `{results['git_commit']}`",
        f"in {results.get('wall_seconds', 0) / 60:.1f} minutes. Raw figures: "
        f"[`{raw}`]({raw}). Re-run with `make bench`. Every figure below, apart from the "
        "last section's, is from this one run.",
        "",
        "## Targets",
        "",
        "| figure | target | measured | met? |",
        "| --- | --- | --- | --- |",
        *(_row(t, results) for t in TARGETS),
        "",
        "## Ours and the naive faust peer, side by side",
        "",
        "Same run, same input topic, same simulator; the peer's `concurrency=` is the "
        "worker's in-flight limit (see Method).",
        "",
        *versus_table(results),
        "",
        *kill_table(results),
        "",
        rss_line(results),
        "",
        "## CPU per record, per process",
        "",
        "Milliseconds of CPU (user + system, `/proc/<pid>/stat`) per record over each "
        "measured window.",
        "",
        *cpu_table(results),
        "",
        "The sequential rows spread idle background work (heartbeats, fetch polling, the",
        "broker's housekeeping) over few records; the replay makes no model calls.",
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
        method(results).strip(),
        "",
        "## Notes: what was missed, and why",
        "",
        notes_for(results).strip(),
        "",
        profile_section(results).strip(),
        "",
        LOCAL_MODEL.strip(),
        *(["", section] if (section := eval_section()) else []),
        "",
    ]
    soak = soak_section(load_soak())
    if soak:
        lines += [soak, ""]
    return "\n".join(lines)
