"""The benchmark's smoke run: ``python -m bench.run --smoke`` goes through every scenario.

It starts its own broker (``LocalKafka``), simulators, workers and faust peers, as
``make bench`` does, with a few records per run; only that every scenario finished and
wrote its figures is checked here, never how fast.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

#: Must stay within the 3 minutes the smoke run is allowed on a 2-core machine.
LIMIT_S = 180

PAIRED = ("instant", "latency_bound", "sequential", "replay", "wide")
FLAT = (
    "bare_faust_rps",
    "latency_bound_fraction_of_ideal",
    "latency_bound_key_order_ok",
    "latency_bound_peer_key_order_ok",
    "wide_key_order_ok",
    "instant_worker_cpu_ms",
    "replay_worker_cpu_ms",
    "replay_model_calls",
    "scaleout_kill_invariant_ok",
    "kill_ours_lost",
    "kill_peer_lost",
    "kill_ours_max_exposed",
    "kill_peer_max_exposed",
    "peak_rss_mb_worker",
    "peak_rss_mb_peer",
    "peak_rss_mb_simulator",
    "peak_rss_mb_kafka",
)


def _missing(results: dict[str, Any]) -> list[str]:
    """Every figure a finished scenario writes, ours and the peer's, that is absent."""
    sizes = results["counts"]["scaleout_sizes"]
    per_record = results.get("cpu_ms_per_record", {})
    missing = [k for k in FLAT if k not in results]
    for s in [*PAIRED, *(f"scaleout_{n}" for n in sizes)]:
        missing += [k for k in (f"{s}_rps", f"{s}_peer_rps", f"{s}_vs_peer") if k not in results]
        for run, roles in ((s, ("worker", "simulator", "kafka")), (f"{s}_peer", ("peer",))):
            have = per_record.get(run, {})
            missing += [f"cpu_ms_per_record.{run}.{r}" for r in roles if r not in have]
    return missing


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(LIMIT_S + 90)
def test_bench_smoke_run_finishes_every_scenario(tmp_path: Path) -> None:
    """Every scenario of the benchmark runs to the end and writes its figures."""
    argv = [sys.executable, "-m", "bench.run", "--smoke", "--output", str(tmp_path)]
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        out, _ = proc.communicate(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        # SIGINT, not a kill: the run's finally blocks stop its broker and workers.
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        pytest.fail(f"the smoke run took over {LIMIT_S} s:\n{out[-4000:]}")
    assert proc.returncode == 0, out[-4000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert _missing(results) == []
    assert (tmp_path / "BENCHMARKS.md").is_file()
