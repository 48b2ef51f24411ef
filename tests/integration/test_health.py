"""/livez and /readyz on the metrics port of a real worker: a blocked loop, a surplus child."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.devstack.kafka import LocalKafka
from tests.integration.pipeline_utils import REPO, new_name, spawn_worker, write_config
from tests.integration.test_processes import _free_port

pytestmark = pytest.mark.integration

BLOCK_S = 10
LIVENESS_S = 2


def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        fut.result(timeout=30)


def _poll(
    url: str,
    until: Callable[[httpx.Response], bool],
    proc: subprocess.Popen[bytes],
    log: Path,
    bound_s: float,
) -> httpx.Response:
    """GET ``url`` every 0.2 s until ``until(response)``; fail with the log if it never is."""
    deadline = time.monotonic() + bound_s
    last: Any = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"worker exited ({proc.returncode}):\n{log.read_text()[-4000:]}"
        try:
            last = httpx.get(url, timeout=5)
            if until(last):
                return last
        except httpx.TransportError as exc:  # the port is not served yet
            last = exc
        time.sleep(0.2)
    body = getattr(last, "text", last)
    pytest.fail(f"{url} never matched; last answer {body!r}\n{log.read_text()[-4000:]}")


def _status(code: int) -> Callable[[httpx.Response], bool]:
    return lambda r: r.status_code == code


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def test_livez_fails_while_the_loop_is_blocked_and_readyz_reports_the_worker(
    kafka: LocalKafka, simulator: str, registry_url: str, tmp_path: Path
) -> None:
    """A worker that blocks its loop on purpose: /livez 503 with why, then ready with its state."""
    name = new_name("health")
    _create_topic(kafka.bootstrap, f"{name}.raw", 2)
    port = _free_port()
    config = write_config(
        tmp_path / "w.toml",
        kafka.bootstrap,
        simulator,
        name,
        registry=registry_url,
        metrics_port=port,
        liveness_timeout_s=LIVENESS_S,
        debug_block_loop_s=BLOCK_S,
    )
    log = tmp_path / "worker.log"
    proc = spawn_worker(config, name, log)
    base = f"http://127.0.0.1:{port}"
    try:
        dead = _poll(f"{base}/livez", _status(503), proc, log, 90)
        body = dead.json()
        assert body["live"] is False
        assert "blocked or wedged" in body["reason"]
        assert body["loop_tick_age_s"] > LIVENESS_S
        # While blocked, the HTTP thread still answers /readyz (not ready) and /metrics.
        blocked = httpx.get(f"{base}/readyz", timeout=5)
        assert blocked.status_code == 503
        assert any("blocked or wedged" in r for r in blocked.json()["reasons"])
        assert "streams_records_in_total" in httpx.get(f"{base}/metrics", timeout=5).text

        ready = _poll(f"{base}/readyz", _status(200), proc, log, BLOCK_S + 30).json()
        assert ready["ready"] is True
        assert ready["reasons"] == []
        assert ready["joined"] is True
        assert ready["assignment"] == [f"{name}.raw[0]", f"{name}.raw[1]"]
        assert ready["guard"] == {"state": "closed", "reason": None}
        assert ready["registry"] == "reachable"
        live = httpx.get(f"{base}/livez", timeout=5)
        assert live.status_code == 200
        assert live.json()["live"] is True
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()[-4000:]


def test_supervisor_readyz_aggregates_children_and_a_child_without_partitions_is_ready(
    kafka: LocalKafka, simulator: str, registry_url: str, tmp_path: Path
) -> None:
    """--processes 2 on one partition: one /readyz for both, Ready with one child owning nothing."""
    name = new_name("health-procs")
    _create_topic(kafka.bootstrap, f"{name}.raw", 1)
    port = _free_port()
    config = write_config(
        tmp_path / "w.toml",
        kafka.bootstrap,
        simulator,
        name,
        registry=registry_url,
        metrics_port=port,
        instance_id=name,
    )
    log = tmp_path / "supervisor.log"
    argv = [sys.executable, "-m", "streams", "run", name, "--config", str(config)]
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [*argv, "--processes", "2"], cwd=REPO, stdout=sink, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        ready = _poll(f"{base}/readyz", _status(200), proc, log, 120).json()
        assert ready["reasons"] == []
        assert ready["assignment"] == [f"{name}.raw[0]"]
        assert ready["registry"] == "reachable"
        children = sorted(ready["children"], key=lambda c: c["index"])
        assert [c["index"] for c in children] == [0, 1]
        assert all(c["joined"] and c["guard"]["state"] == "closed" for c in children)
        assert sorted(len(c["assignment"]) for c in children) == [0, 1]
        live = httpx.get(f"{base}/livez", timeout=5).json()
        assert live["live"] is True
        assert len(live["children"]) == 2
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()[-4000:]
