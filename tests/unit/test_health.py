"""Health probes: what /livez and /readyz decide from heartbeats, and how the port serves them."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx

from streams.health import CachedCheck, Heartbeat, SupervisorProbe, WorkerProbe, child_health_file
from streams.metrics import Metrics


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class _TP:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition


def test_worker_probe_live_until_the_tick_is_older_than_the_bound() -> None:
    """/livez turns 503 with a reason once the last tick is older than the bound."""
    clock = Clock()
    hb = Heartbeat("p", clock=clock)
    probe = WorkerProbe(hb, liveness_timeout_s=5)
    clock.now += 5
    assert probe.live().ok
    clock.now += 0.1
    verdict = probe.live()
    assert not verdict.ok
    assert "blocked or wedged" in verdict.body["reason"]
    hb.tick()
    assert probe.live().ok


def test_worker_probe_ready_on_join_even_with_no_partitions() -> None:
    """/readyz waits for the join, not for partitions, and reports the guard without gating."""
    hb = Heartbeat("p", clock=Clock())
    probe = WorkerProbe(hb, liveness_timeout_s=5)
    first = probe.ready()
    assert not first.ok
    assert first.body["reasons"] == ["not yet joined the consumer group"]
    hb.assigned(set())
    assert probe.ready().ok
    assert probe.ready().body["assignment"] == []
    hb.assigned({_TP("t", 1), _TP("t", 0)})
    assert probe.ready().body["assignment"] == ["t[0]", "t[1]"]


def test_worker_probe_not_ready_when_the_registry_is_unreachable() -> None:
    """A registry check's failure is a readiness reason, in words."""
    hb = Heartbeat("p", clock=Clock())
    hb.assigned(())
    verdict = WorkerProbe(hb, liveness_timeout_s=5, registry=lambda: "refused").ready()
    assert not verdict.ok
    assert verdict.body["reasons"] == ["schema registry unreachable (refused)"]


def test_cached_check_asks_once_per_ttl_and_names_the_error() -> None:
    """The registry is asked at most once per TTL; an exception becomes its type and message."""
    clock = Clock()
    calls: list[float] = []

    def check() -> None:
        calls.append(clock.now)
        if len(calls) > 1:
            raise ConnectionError("connection refused")

    cached = CachedCheck(check, ttl_s=5, clock=clock)
    assert cached() is None
    clock.now += 4
    assert cached() is None
    assert len(calls) == 1
    clock.now += 1
    assert cached() == "ConnectionError: connection refused"
    assert len(calls) == 2


def test_supervisor_probe_judges_every_child_file(tmp_path: Path) -> None:
    """Missing child: live but not ready; stale child: neither; all fresh and joined: ready."""
    wall = Clock(5000.0)
    beats = [
        Heartbeat("p", file=child_health_file(tmp_path, i), wall=wall, clock=wall) for i in range(2)
    ]
    probe = SupervisorProbe(tmp_path, 2, liveness_timeout_s=3, wall=wall)
    beats[0].assigned({_TP("t", 0)})
    beats[0].tick()
    assert probe.live().ok
    assert probe.ready().body["reasons"] == ["child 1 has not started yet"]
    beats[1].assigned(())
    beats[1].tick()
    ready = probe.ready()
    assert ready.ok
    assert ready.body["assignment"] == ["t[0]"]
    wall.now += 4
    beats[0].tick()
    live = probe.live()
    assert not live.ok
    assert live.body["reason"].startswith("child 1: event loop has not ticked for 4.0 s")
    assert not probe.ready().ok
    beats[1].close()
    assert probe.live().ok
    data = json.loads(child_health_file(tmp_path, 0).read_text())
    assert data["guard"] == {"state": "starting", "reason": None}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_port_serves_the_probes_as_json_beside_metrics() -> None:
    """/livez and /readyz answer JSON with 200 or 503; every other path is still /metrics."""
    clock = Clock()
    hb = Heartbeat("p", clock=clock)
    port = _port()
    stop = Metrics().serve(port, probe=WorkerProbe(hb, liveness_timeout_s=5))
    try:
        base = f"http://127.0.0.1:{port}"
        live = httpx.get(f"{base}/livez")
        assert live.status_code == 200
        assert live.headers["content-type"] == "application/json"
        assert httpx.get(f"{base}/readyz").status_code == 503
        clock.now += 6
        assert httpx.get(f"{base}/livez").status_code == 503
        assert "streams_records_in_total" in httpx.get(f"{base}/metrics").text
    finally:
        stop()


def test_registry_check_names_an_unreachable_registry() -> None:
    """The real registry client against a closed port: /readyz gets the error, in words."""
    from streams.app import registry_check
    from streams.settings import load_settings

    settings = load_settings(None, registry={"url": f"http://127.0.0.1:{_port()}/apis/ccompat/v6"})
    check = registry_check(settings)
    assert check is not None
    problem = check()
    assert problem is not None
    assert problem.startswith("ConnectError")
    assert registry_check(load_settings(None)) is None  # mock:// is not checked
