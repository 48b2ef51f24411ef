"""Process, port and lock helpers shared by the local Kafka and the local Schema Registry.

Both are JVMs started detached in their own session, found again by PID, and stopped
with SIGTERM, then SIGKILL. Nothing here knows which service it runs.

Errors (both are :class:`~streams.errors.ConfigError`, so the CLI prints one line)::

    ConfigError
    └── DevstackError        a local service could not be prepared, started or stopped
        └── ToolMissing      ``mvn`` or ``java`` is not on PATH
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streams.errors import ConfigError

HOST = "127.0.0.1"
_LOG_TAIL_LINES = 30


class DevstackError(ConfigError):
    """A local dev service could not be prepared, started or stopped. The message says why."""


class ToolMissing(DevstackError):
    """``mvn`` or ``java`` is not on PATH. ``tool`` names which."""

    def __init__(self, message: str, *, tool: str) -> None:
        super().__init__(message, tool=tool)
        self.tool = tool


_INSTALL_HINTS = {
    "java": "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)",
    "mvn": "install Maven (Debian: apt-get install maven); it fetches the Kafka jars once",
}


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"`{name}` not found on PATH: {_INSTALL_HINTS[name]}", tool=name)
    return path


def _dev_dir(cache_dir: Path) -> Path:
    """Where ``streams dev`` keeps its state files, locks and long-lived data."""
    return cache_dir / "dev"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise processes sharing a cache dir (parallel test runs, two ``dev up``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def free_ports(count: int = 1, *, host: str = HOST) -> list[int]:
    """``count`` distinct ports that were free a moment ago (bound to port 0, then closed)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def port_is_free(port: int, *, host: str = HOST) -> bool:
    """Whether ``port`` can be listened on now (SO_REUSEADDR, as the JVM binds)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _write_state(path: Path, state: dict[str, Any]) -> None:
    """Write a dev service's state file atomically (a reader never sees half of it)."""
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(state, indent=2) + "\n")
    partial.replace(path)


def _spawn(argv: list[str], output: Path) -> int:
    """Start ``argv`` in a new session with stdout+stderr appended to ``output``.

    ``posix_spawn`` rather than ``Popen``: a detached service (``dev up``) must outlive
    this process, and a dropped ``Popen`` of a live child warns when collected.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    return os.posix_spawn(
        argv[0],
        argv,
        dict(os.environ),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(output), flags, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )


def _process_alive(pid: int) -> bool:
    """Whether ``pid`` still runs; reaps it first if it is our exited child."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (e.g. `dev down` from another CLI run)
        pass
    else:
        if waited == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM (a controlled shutdown), then SIGKILL if it outlives ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _process_alive(pid):
                return
            time.sleep(0.1)
    raise DevstackError(f"process {pid} survived SIGKILL for 10s")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _tail(path: Path, since: int, lines: int = _LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines written to ``path`` after byte offset ``since``."""
    try:
        with path.open("rb") as handle:
            handle.seek(since)
            tail = collections.deque(handle, maxlen=lines)
    except FileNotFoundError:
        return ""
    return b"".join(tail).decode(errors="replace").rstrip()
