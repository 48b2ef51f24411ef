"""``streams run --processes N``: N workers of one consumer group under one supervisor.

Kafka is the engine. Each child is an ordinary member of the group
``<group_prefix>.<pipeline>``, and the broker spreads the partitions over the
children. The supervisor coordinates nothing. It starts, watches, restarts and
stops processes, and it serves their metrics.

The children are subprocesses running ``python -m streams run <pipeline> ...
--child-index I``. They are not ``multiprocessing`` workers, for three reasons:

* Each child's environment is set before its interpreter starts, and the
  parent's environment is left alone. ``PROMETHEUS_MULTIPROC_DIR`` must be
  set before prometheus-client is imported, because the library picks its
  value class at import time. ``STREAMS_WORKER__INSTANCE_ID`` goes through the
  settings module's own environment source and is validated there.
* A child is exactly ``streams run`` with one process. It parses the same
  arguments, loads the same settings and returns the same exit codes.
* Each child runs in its own process group, so a terminal's Ctrl-C reaches only
  the supervisor, which forwards it once. ``ps`` shows which pipeline and which
  index each PID runs.

Lifecycle, with the lines the supervisor logs:

* ``child 1 started (pid 4242, instance id pod-0-1)``
* A child can exit non-zero, be killed, or exit 0 when no stop was asked for.
  Then it is restarted after 1 s, 2 s, 4 s ... up to 30 s. The delay goes back
  to 1 s once a child has run for 60 s. Each restart is one warning line, e.g.
  ``child 1 (pid 4242, instance id pod-0-1) was killed by SIGKILL after 12.3 s;
  restart 1 in 1 s``.
* A child can exit with :data:`CONFIG_ERROR_EXIT`, the code ``streams.cli``
  returns for a ConfigError. Such a child is not restarted: a restart would
  loop. The supervisor stops the other children and fails with that child's
  one-line message. Children write that message to stdout, which the
  supervisor captures to a file. Their logs go to the shared stderr.
* On SIGTERM or SIGINT the supervisor forwards the signal to every child. Each
  child bounds its own drain by ``worker.shutdown_timeout_s``. A child still
  running :data:`CLOSE_GRACE_S` after that is SIGKILLed by PID, so the whole
  stop takes less than ``shutdown_timeout_s + 8`` seconds. A second signal
  kills the stragglers at once.
* Instance ids are ``worker.instance_id`` (or the host name) plus ``-`` plus
  the index, e.g. ``pod-0-1``. Each child therefore has its own transactional
  id and its own static group membership, so two children never fence each
  other and exactly-once works with ``--processes``. ``worker.exactly_once``
  still needs ``worker.instance_id``, which is the base of the children's ids.
* Metrics: with ``worker.metrics_port`` set, the supervisor creates a fresh
  directory for prometheus-client's multiprocess mode before any child starts.
  It serves the merged view on that one port and removes the directory at
  exit. Children never serve a port. :mod:`streams.metrics` documents how each
  gauge is merged. The same port answers ``/livez`` and ``/readyz`` for all children:
  each child's heartbeat writes ``health/child-<index>.json`` in the run directory and
  :class:`streams.health.SupervisorProbe` judges them together. A reaped child's file is
  removed, so a restarted child is "not started yet", never stale.
* A child stops, as on SIGTERM, when its parent is no longer the supervisor's PID
  (:func:`watch_parent`), so a SIGKILLed supervisor leaves no orphans in the group.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from streams.errors import ConfigError
from streams.health import SupervisorProbe, child_health_file
from streams.metrics import SupervisorMetrics
from streams.settings import Settings, WorkerSettings

__all__ = [
    "CLOSE_GRACE_S",
    "CONFIG_ERROR_EXIT",
    "Supervisor",
    "child_instance_id",
    "restart_delay",
    "watch_parent",
]

log = logging.getLogger("streams.supervisor")

CONFIG_ERROR_EXIT = 2
"""``streams.cli`` returns 2 for a ConfigError; a child exiting with it is not restarted."""

CLOSE_GRACE_S = 6.0
"""How long after ``worker.shutdown_timeout_s`` a stopping child gets to close its clients
before it is SIGKILLed. With the kill, the reaping and the metrics server's stop, the
whole shutdown stays inside ``shutdown_timeout_s + 8`` seconds."""

BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 60.0
"""A child that ran this long before it failed starts again from the first delay."""

_TICK_S = 0.1
# A stopped child may also have died of the forwarded signal before its handlers were in
# place (still importing), or raised KeyboardInterrupt (130): both are clean stops.
_CLEAN_STOP = frozenset({0, -signal.SIGTERM, -signal.SIGINT, 130})


def restart_delay(failures: int) -> float:
    """Delay before a child's next start after ``failures`` quick failures: 1, 2, 4 ... 30 s."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * (1 << min(failures, 16)))


def child_instance_id(base: str, index: int) -> str:
    """``pod-0`` and 1 -> ``pod-0-1``."""
    return f"{base}-{index}"


async def watch_parent(stop: asyncio.Event, parent: int, interval_s: float = 1.0) -> None:
    """Set ``stop`` once this process's parent is no longer ``parent`` (the supervisor's PID).

    The PID comes from the supervisor rather than from ``os.getppid()`` at start-up: a
    supervisor killed while the child was still importing would otherwise go unnoticed.
    """
    while not stop.is_set():
        if os.getppid() != parent:
            log.warning("supervisor (pid %d) is gone; stopping", parent)
            stop.set()
            return
        await asyncio.sleep(interval_s)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    if code == 0:
        return "exited 0 without a stop request"
    return f"exited with code {code}"


@dataclass
class _Child:
    index: int
    instance_id: str
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restarts: int = 0
    restart_at: float | None = None

    def label(self) -> str:
        pid = self.proc.pid if self.proc is not None else 0
        return f"child {self.index} (pid {pid}, instance id {self.instance_id})"


class Supervisor:
    """Runs ``processes`` children of ``argv`` (a ``streams run`` command) until a signal.

    Usage::

        argv = [sys.executable, "-m", "streams", "run", "invoices", "--config", "w.toml"]
        sys.exit(Supervisor(settings, "invoices", processes=4, argv=argv).run())

    ``run`` returns 0 after a clean stop and 1 if a child had to be killed or failed while
    stopping. It raises :class:`ConfigError` with a child's message when a child reports
    a config mistake.
    """

    def __init__(
        self,
        settings: Settings,
        pipeline: str,
        *,
        processes: int,
        argv: Sequence[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        self.settings = settings
        self.pipeline = pipeline
        self.argv = list(argv)
        self.clock = clock
        self.group = settings.group_id(pipeline)
        base = settings.worker.instance_id or socket.gethostname()
        self.children = [
            _Child(i, self._checked_id(child_instance_id(base, i))) for i in range(processes)
        ]
        self._signals: list[int] = []
        self._metrics: SupervisorMetrics | None = None
        self._env: dict[str, str] = {}
        self._run_dir = Path()
        self._health_dir: Path | None = None

    def _checked_id(self, instance_id: str) -> str:
        # Validated here, once, so a host name that is not a legal id fails in the parent
        # with one line rather than in every child.
        try:
            WorkerSettings.model_validate(
                {**self.settings.worker.model_dump(), "instance_id": instance_id}
            )
        except ValidationError as exc:
            msg = exc.errors(include_url=False)[0]["msg"]
            raise ConfigError(
                f"worker instance id {instance_id!r} is not valid ({msg}); set "
                "worker.instance_id to a shorter name of letters, digits, '.', '_' or '-'"
            ) from None
        return instance_id

    # -- the run ------------------------------------------------------------------------

    def run(self) -> int:
        """Start the children, supervise them until a signal, stop them within the bound."""
        self._run_dir = Path(tempfile.mkdtemp(prefix="streams-run-"))
        # Passed through to the children, not interpreted: streams.settings reads it there.
        self._env = {**os.environ}
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        stop_metrics: Callable[[], None] | None = None
        error: str | None = None
        clean = False
        try:
            stop_metrics = self._serve_metrics()
            log.info(
                "supervising %d worker process(es) of pipeline %s (group %s)",
                len(self.children),
                self.pipeline,
                self.group,
                extra={"multiproc_dir": self._env.get("PROMETHEUS_MULTIPROC_DIR")},
            )
            for child in self.children:
                self._start(child)
            error = self._watch()
            clean = self._stop_all(signal.SIGTERM if error else self._signals[0])
        finally:
            self._kill_all()  # only reached with children left on an unexpected exception
            if stop_metrics is not None:
                stop_metrics()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            shutil.rmtree(self._run_dir, ignore_errors=True)
        if error is not None:
            raise ConfigError(error)
        return 0 if clean else 1

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only record it: the loop forwards it (no locks or I/O in a signal handler).
        self._signals.append(signum)

    def _serve_metrics(self) -> Callable[[], None] | None:
        worker = self.settings.worker
        if not worker.metrics_port:
            return None
        path = self._run_dir / "metrics"
        path.mkdir()
        self._env["PROMETHEUS_MULTIPROC_DIR"] = str(path)
        self._metrics = SupervisorMetrics(path, self.pipeline)
        self._health_dir = self._run_dir / "health"
        self._health_dir.mkdir()
        from streams.app import registry_check  # the registry client is not needed otherwise

        probe = SupervisorProbe(
            self._health_dir,
            len(self.children),
            liveness_timeout_s=worker.liveness_timeout_s,
            registry=registry_check(self.settings),
        )
        try:
            return self._metrics.serve(worker.metrics_port, worker.metrics_host, probe=probe)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {worker.metrics_host}:{worker.metrics_port} "
                f"({exc.strerror}); change worker.metrics_port"
            ) from None

    def _start(self, child: _Child) -> None:
        env = {**self._env, "STREAMS_WORKER__INSTANCE_ID": child.instance_id}
        health: list[str] = []
        if self._health_dir is not None:
            health = ["--health-file", str(child_health_file(self._health_dir, child.index))]
        with self._stdout(child).open("wb") as out:
            child.proc = subprocess.Popen(
                [
                    *self.argv,
                    *("--child-index", str(child.index), "--supervisor-pid", str(os.getpid())),
                    *health,
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                process_group=0,
            )
        child.started = self.clock()
        child.restart_at = None
        log.info(
            "child %d started (pid %d, instance id %s)",
            child.index,
            child.proc.pid,
            child.instance_id,
            extra={"child": child.index, "pid": child.proc.pid, "instance_id": child.instance_id},
        )

    def _stdout(self, child: _Child) -> Path:
        return self._run_dir / f"child-{child.index}.out"

    def _watch(self) -> str | None:
        """Supervise until a signal (returns None) or a child's config error (its message)."""
        while not self._signals:
            now = self.clock()
            for child in self.children:
                if child.proc is not None and child.proc.poll() is not None:
                    error = self._exited(child, now)
                    if error is not None:
                        return error
                if child.proc is None and child.restart_at is not None and now >= child.restart_at:
                    self._start(child)
            time.sleep(_TICK_S)
        return None

    def _exited(self, child: _Child, now: float) -> str | None:
        """Schedule a crashed child's restart, or return its config error's message."""
        assert child.proc is not None
        code, ran, label = child.proc.returncode, now - child.started, child.label()
        stdout = self._reap(child)
        if code == CONFIG_ERROR_EXIT:
            lines = [line for line in stdout.splitlines() if line.strip()]
            return (
                lines[-1].strip()
                if lines
                else (
                    f"worker process {child.index} exited with code {code} (a configuration or "
                    "usage error); see its output above"
                )
            )
        self._forward(stdout)
        if ran >= HEALTHY_AFTER_S:
            child.failures = 0
        delay = restart_delay(child.failures)
        child.failures += 1
        child.restarts += 1
        child.restart_at = now + delay
        if self._metrics is not None:
            self._metrics.restarts.labels(self.pipeline).inc()
        log.warning(
            "%s %s after %.1f s; restart %d in %g s",
            label,
            _describe(code),
            ran,
            child.restarts,
            delay,
            extra={"child": child.index, "exit_code": code, "restart_in_s": delay},
        )
        return None

    def _reap(self, child: _Child) -> str:
        """Forget an exited child's process; returns what it wrote to stdout."""
        assert child.proc is not None
        if self._metrics is not None:
            self._metrics.process_exited(child.proc.pid)
        if self._health_dir is not None:
            child_health_file(self._health_dir, child.index).unlink(missing_ok=True)
        child.proc = None
        return self._stdout(child).read_text(encoding="utf-8", errors="replace")

    @staticmethod
    def _forward(stdout: str) -> None:
        # Children print nothing else on stdout; should a library do so, it is not lost.
        if stdout:
            sys.stdout.write(stdout)
            sys.stdout.flush()

    # -- stopping -----------------------------------------------------------------------

    def _stop_all(self, signum: int) -> bool:
        """Forward ``signum``, wait within the bound, kill stragglers; True if all stopped clean."""
        bound = self.settings.worker.shutdown_timeout_s + CLOSE_GRACE_S
        deadline = self.clock() + bound
        signals_seen = len(self._signals)
        running = [c for c in self.children if c.proc is not None]
        for child in self.children:
            child.restart_at = None
        log.info(
            "stopping: %s to %d worker process(es); any still running after %g s is killed",
            signal.Signals(signum).name,
            len(running),
            bound,
        )
        for child in running:
            assert child.proc is not None
            child.proc.send_signal(signum)
        clean = True
        while running:
            for child in list(running):
                assert child.proc is not None
                code = child.proc.poll()
                if code is None:
                    continue
                log.info("%s stopped (exit code %d)", child.label(), code)
                clean = clean and code in _CLEAN_STOP
                self._forward(self._reap(child))
                running.remove(child)
            if not running:
                break
            if self.clock() >= deadline or len(self._signals) > signals_seen:
                for child in running:
                    log.warning("%s still running; killing it", child.label())
                self._kill_all()
                return False
            time.sleep(_TICK_S)
        return clean

    def _kill_all(self) -> None:
        alive = [c for c in self.children if c.proc is not None]
        for child in alive:  # all signals first, so the waits below overlap
            assert child.proc is not None
            child.proc.kill()
        for child in alive:
            assert child.proc is not None
            try:
                child.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                log.error("%s did not die on SIGKILL", child.label())
            self._reap(child)
