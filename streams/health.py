"""Health endpoints on the metrics port: ``/livez`` and ``/readyz``.

Two halves, because the HTTP server runs in a thread and must keep answering when the
event loop does not:

* :class:`Heartbeat` lives on the worker's event loop. A task stamps the time every
  :data:`HEARTBEAT_S`; the rebalance listener tells it the assignment. In a child of
  ``streams run --processes N`` it also writes its state to a file the supervisor reads.
* A probe answers the HTTP thread from what the heartbeat stamped, without touching the
  loop: :class:`WorkerProbe` in a single process, :class:`SupervisorProbe` over the
  children's files in the supervisor.

What each endpoint says (both answer JSON, 200 or 503)::

    /livez   503 when the loop has not ticked for worker.liveness_timeout_s (blocked by a
             synchronous call, or wedged); the kubelet then restarts the container.
    /readyz  200 once the worker has joined its group (an assignment was received, even
             an empty one: a surplus pod with no partitions is still Ready), its loop is
             live and the schema registry answers. It reports the assignment and the
             breaker or hold state with its reason, which never gate it: a held pipeline
             is the deployment's fault, and restarting or unreadying the pod fixes nothing.

Usage (what :func:`streams.app.run_worker` does)::

    heartbeat = Heartbeat("invoices")
    stop_http = metrics.serve(9108, probe=WorkerProbe(heartbeat, liveness_timeout_s=15))
    worker.on_assigned = heartbeat.assigned
    task = asyncio.create_task(heartbeat.run())
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "HEARTBEAT_S",
    "PATHS",
    "CachedCheck",
    "Heartbeat",
    "Probe",
    "SupervisorProbe",
    "Verdict",
    "WorkerProbe",
    "child_health_file",
]

log = logging.getLogger("streams.health")

PATHS = ("/livez", "/readyz")
"""The health paths the metrics port serves (the Kubernetes probes point at them)."""

HEARTBEAT_S = 0.5
"""How often the heartbeat task stamps the time (and rewrites a child's health file)."""

RegistryCheck = Callable[[], str | None]
"""Returns None when the schema registry answers, else why it does not."""


class _Guard(Protocol):
    @property
    def state(self) -> object: ...

    @property
    def reason(self) -> str | None: ...


@dataclass(frozen=True)
class Verdict:
    """One probe's answer: the status and the JSON body."""

    ok: bool
    body: dict[str, Any]


class Probe(Protocol):
    """What the metrics server asks on ``/livez`` and ``/readyz``."""

    def live(self) -> Verdict: ...

    def ready(self) -> Verdict: ...


def child_health_file(directory: Path, index: int) -> Path:
    """Where child ``index`` of a supervisor writes its heartbeat."""
    return directory / f"child-{index}.json"


class Heartbeat:
    """The loop's half: stamped by :meth:`run` on the worker's loop, read from any thread."""

    def __init__(
        self,
        pipeline: str,
        *,
        file: Path | None = None,
        block_loop_s: float | None = None,
        interval_s: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.pipeline = pipeline
        self.file = file
        self.guard: _Guard | None = None
        self.joined = False
        self.assignment: tuple[str, ...] = ()
        self._block_loop_s = block_loop_s
        self._interval_s = interval_s
        self._clock = clock
        self._wall = wall
        # Start-up (imports, schema registration) counts against the bound from here.
        self.last_tick = clock()

    def assigned(self, partitions: Iterable[Any]) -> None:
        """The rebalance listener's hook: the group was joined with this assignment."""
        self.assignment = tuple(sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions))
        self.joined = True

    def tick_age(self) -> float:
        return max(0.0, self._clock() - self.last_tick)

    def snapshot(self) -> dict[str, Any]:
        """The state a probe reports; what a child writes to its health file."""
        guard = self.guard
        return {
            "pipeline": self.pipeline,
            "pid": os.getpid(),
            "joined": self.joined,
            "assignment": list(self.assignment),
            "guard": {
                "state": str(guard.state) if guard is not None else "starting",
                "reason": guard.reason if guard is not None else None,
            },
            "tick_wall": self._wall(),
        }

    def tick(self) -> None:
        self.last_tick = self._clock()
        if self.file is not None:
            _write_atomically(self.file, self.snapshot())

    def close(self) -> None:
        """Remove a child's health file: a stopped worker has no heartbeat to judge."""
        if self.file is not None:
            self.file.unlink(missing_ok=True)

    async def run(self) -> None:
        """Stamp the time until cancelled."""
        while True:
            self.tick()
            if self._block_loop_s is not None and self.joined:
                seconds, self._block_loop_s = self._block_loop_s, None
                log.warning(
                    "worker.debug_block_loop_s is set: blocking the event loop for %g s on "
                    "purpose (a test of /livez); never set it in production",
                    seconds,
                )
                time.sleep(seconds)  # noqa: ASYNC251 (the point: a synchronous call wedges the loop)
                continue
            await asyncio.sleep(self._interval_s)


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)  # a reader sees the old file or the new one, never half of one


class CachedCheck:
    """Runs ``check`` (raises when the dependency is down) at most once per ``ttl_s``.

    Probes arrive every few seconds from the kubelet and Prometheus; the registry is
    asked once per ``ttl_s`` whatever the probe rate.
    """

    def __init__(
        self,
        check: Callable[[], object],
        *,
        ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._at: float | None = None
        self._result: str | None = None

    def __call__(self) -> str | None:
        with self._lock:
            now = self._clock()
            if self._at is None or now - self._at >= self._ttl_s:
                try:
                    self._check()
                    self._result = None
                except Exception as exc:  # any failure means "not reachable", said in words
                    self._result = f"{type(exc).__name__}: {exc}"[:300]
                self._at = now
            return self._result


def _registry(check: RegistryCheck | None) -> tuple[str, str | None]:
    if check is None:
        return "not checked (mock:// registry)", None
    problem = check()
    if problem is None:
        return "reachable", None
    return f"unreachable: {problem}", f"schema registry unreachable ({problem})"


def _stale(age: float, bound: float) -> str:
    return f"event loop has not ticked for {age:.1f} s (bound {bound:g} s): blocked or wedged"


class WorkerProbe:
    """Answers the probes of a single worker process from its :class:`Heartbeat`."""

    def __init__(
        self,
        heartbeat: Heartbeat,
        *,
        liveness_timeout_s: float,
        registry: RegistryCheck | None = None,
    ) -> None:
        self.heartbeat = heartbeat
        self.bound = liveness_timeout_s
        self.registry = registry

    def live(self) -> Verdict:
        age = self.heartbeat.tick_age()
        ok = age <= self.bound
        body: dict[str, Any] = {"live": ok, "loop_tick_age_s": round(age, 3), "bound_s": self.bound}
        if not ok:
            body["reason"] = _stale(age, self.bound)
        return Verdict(ok, body)

    def ready(self) -> Verdict:
        snap = self.heartbeat.snapshot()
        reasons: list[str] = []
        age = self.heartbeat.tick_age()
        if age > self.bound:
            reasons.append(_stale(age, self.bound))
        if not snap["joined"]:
            reasons.append("not yet joined the consumer group")
        registry, problem = _registry(self.registry)
        if problem:
            reasons.append(problem)
        body = {
            "ready": not reasons,
            "reasons": reasons,
            "pipeline": snap["pipeline"],
            "joined": snap["joined"],
            "assignment": snap["assignment"],
            "guard": snap["guard"],
            "registry": registry,
            "loop_tick_age_s": round(age, 3),
        }
        return Verdict(not reasons, body)


class SupervisorProbe:
    """Answers the probes of ``streams run --processes N`` from its children's files.

    Live while every child that has written a heartbeat ticked within the bound (a child
    still starting, or waiting for its restart, has no file and is judged by the
    supervisor's own restarts, not by the kubelet). Ready when all ``processes`` children
    have joined the group and ticked within the bound, and the registry answers.
    """

    def __init__(
        self,
        directory: Path,
        processes: int,
        *,
        liveness_timeout_s: float,
        registry: RegistryCheck | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.processes = processes
        self.bound = liveness_timeout_s
        self.registry = registry
        self._wall = wall

    def _children(self) -> list[dict[str, Any]]:
        children = []
        for index in range(self.processes):
            try:
                data = json.loads(child_health_file(self.directory, index).read_text("utf-8"))
            except (FileNotFoundError, ValueError):
                continue
            data["index"] = index
            data["loop_tick_age_s"] = round(max(0.0, self._wall() - data.pop("tick_wall")), 3)
            children.append(data)
        return children

    def live(self) -> Verdict:
        children = self._children()
        stale = [c for c in children if c["loop_tick_age_s"] > self.bound]
        body: dict[str, Any] = {
            "live": not stale,
            "bound_s": self.bound,
            "children": [{k: c[k] for k in ("index", "pid", "loop_tick_age_s")} for c in children],
        }
        if stale:
            body["reason"] = "; ".join(
                f"child {c['index']}: {_stale(c['loop_tick_age_s'], self.bound)}" for c in stale
            )
        return Verdict(not stale, body)

    def ready(self) -> Verdict:
        children = self._children()
        reasons: list[str] = []
        seen = {c["index"] for c in children}
        reasons += [
            f"child {i} has not started yet" for i in range(self.processes) if i not in seen
        ]
        for c in children:
            if c["loop_tick_age_s"] > self.bound:
                reasons.append(f"child {c['index']}: {_stale(c['loop_tick_age_s'], self.bound)}")
            if not c["joined"]:
                reasons.append(f"child {c['index']}: not yet joined the consumer group")
        registry, problem = _registry(self.registry)
        if problem:
            reasons.append(problem)
        body = {
            "ready": not reasons,
            "reasons": reasons,
            "assignment": sorted(p for c in children for p in c["assignment"]),
            "registry": registry,
            "children": children,
        }
        return Verdict(not reasons, body)
