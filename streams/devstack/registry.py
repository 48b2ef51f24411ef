"""A real Schema Registry for development and integration tests, without Docker.

Apicurio Registry (Quarkus, in-memory H2 storage) serves the Confluent-compatible API,
so confluent-kafka's ``SchemaRegistryClient`` and Avro serdes talk to it unchanged. Maven
builds its runner jar once per cache dir from ``deploy/registry/pom.xml``; it listens on
127.0.0.1 only::

    from streams.devstack.registry import LocalRegistry
    from streams.settings import default_cache_dir

    with LocalRegistry(default_cache_dir()) as registry:
        client = SchemaRegistryClient({"url": registry.url})
        ...

Schemas live in memory: a stopped registry forgets them, and ids start at 1 again.

``dev_registry_up`` / ``dev_registry_down`` / ``dev_registry_status`` keep one long-lived
registry for ``streams dev``, found again through ``<cache_dir>/dev/registry.json``.

Errors are those of :mod:`streams.devstack` (defined in ``_process``): :class:`DevstackError`
when the registry cannot be built, started or stopped, and its subclass :class:`ToolMissing`
without ``mvn`` or ``java``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from streams.devstack._maven import _MVN_TIMEOUT, _first_maven_error
from streams.devstack._process import (
    HOST,
    DevstackError,
    _dev_dir,
    _file_lock,
    _process_alive,
    _require_tool,
    _size,
    _spawn,
    _tail,
    _terminate,
    _write_state,
    free_ports,
    port_is_free,
)

APICURIO_VERSION = "2.1.5.Final"
CCOMPAT_PATH = "/apis/ccompat/v6"
RUNNER_JAR = "apicurio-registry-local-1.0-runner.jar"

_POM = Path(__file__).resolve().parents[2] / "deploy" / "registry" / "pom.xml"

# A dev registry holds a handful of schemas: 192 MB of heap is plenty. Serial GC and the
# C1-only JIT start fastest and keep the resident size near 250 MB.
_REGISTRY_JVM = (
    "-Xmx192m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)


def registry_home(cache_dir: Path) -> Path:
    """The per-version folder in the cache: ``build/`` (the runner jar and ``lib/``), the
    Maven log."""
    return cache_dir / f"apicurio-registry-{APICURIO_VERSION}"


def runner_jar(cache_dir: Path) -> Path:
    """Where :func:`ensure_registry_jar` puts the runner jar (``lib/`` lies beside it)."""
    return registry_home(cache_dir) / "build" / RUNNER_JAR


def ensure_registry_jar(cache_dir: Path, *, progress: Callable[[str], None] = print) -> Path:
    """Build the registry's runner jar into ``<cache_dir>/apicurio-registry-<ver>/build`` once.

    A marker file holds the hash of ``pom.xml``, so editing the pom builds again. Returns
    the runner jar. Raises :class:`ToolMissing` without ``java`` or (on the first run)
    ``mvn``, and :class:`DevstackError` when Maven fails.
    """
    _require_tool("java")
    home = registry_home(cache_dir)
    jar = runner_jar(cache_dir)
    marker = home / ".built"
    if not _POM.is_file():
        raise DevstackError(f"{_POM} is missing: run from a source checkout of this project")
    digest = hashlib.sha256(_POM.read_bytes()).hexdigest()
    if _built(marker, digest, jar):
        return jar
    mvn = _require_tool("mvn")
    with _file_lock(home / ".lock"):
        if _built(marker, digest, jar):  # another process finished while we waited
            return jar
        started = time.monotonic()
        log = home / "mvn.log"
        progress(
            f"Building Apicurio Registry {APICURIO_VERSION} with Maven "
            f"(first run only; log: {log})..."
        )
        partial = home / f"build.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        _build(mvn, partial, log)
        marker.unlink(missing_ok=True)
        shutil.rmtree(jar.parent, ignore_errors=True)
        # The runner jar names its dependencies relative to itself (lib/...): safe to move.
        partial.rename(jar.parent)
        marker.write_text(digest + "\n")
        elapsed = time.monotonic() - started
        progress(f"Apicurio Registry {APICURIO_VERSION}: {jar} ({elapsed:.1f}s)")
    return jar


def _built(marker: Path, digest: str, jar: Path) -> bool:
    try:
        recorded = marker.read_text().strip()
    except FileNotFoundError:
        return False
    return recorded == digest and jar.is_file()


def _build(mvn: str, build_dir: Path, log_path: Path) -> None:
    """``mvn package`` with every output in ``build_dir``, the transcript in ``log_path``."""
    command = [
        mvn,
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(_POM),
        "package",
        "-DskipTests",
        f"-Dregistry.build.dir={build_dir}",
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log_path.open("w") as log:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=_MVN_TIMEOUT,
                check=False,
            )
    except subprocess.TimeoutExpired:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise DevstackError(
            f"Maven did not build the Schema Registry within {_MVN_TIMEOUT:.0f}s "
            f"(full log: {log_path})",
            log=str(log_path),
        ) from None
    if result.returncode != 0:
        shutil.rmtree(build_dir, ignore_errors=True)
        reason = _first_maven_error(log_path) or f"exit status {result.returncode}"
        raise DevstackError(
            f"Maven could not build the Schema Registry: {reason} (full log: {log_path})",
            log=str(log_path),
        )


def _ccompat_url(port: int) -> str:
    return f"http://{HOST}:{port}{CCOMPAT_PATH}"


class LocalRegistry:
    """Apicurio Registry on 127.0.0.1, run as a child JVM in its own session.

    The port is chosen when the object is built, so ``url`` (the Confluent-compatible
    base URL) is known before ``start()``. Without ``log_path`` the JVM's output goes to a
    temporary file that ``__exit__`` removes.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        port: int | None = None,
        log_path: Path | None = None,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.cache_dir = cache_dir.resolve()
        self._progress = progress
        self._temp_dir: Path | None = None
        if log_path is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="local-registry-"))
            log_path = self._temp_dir / "registry.log"
        # Absolute: the error messages point at it from any working directory.
        self.log_path = log_path.resolve()
        self.port = free_ports(1)[0] if port is None else port
        self.url = _ccompat_url(self.port)
        self.pid: int | None = None
        self._log_offset = 0

    def start(self, timeout: float = 120.0) -> None:
        """Build the jar on first use, launch the JVM, return once ``GET /subjects`` is 200."""
        if self.pid is not None and _process_alive(self.pid):
            raise DevstackError(
                f"the Schema Registry is already running at {self.url} (pid {self.pid})"
            )
        jar = ensure_registry_jar(self.cache_dir, progress=self._progress)
        # The bound covers the JVM's start, not the first-run Maven build before it (which
        # took over two minutes on a cold, loaded machine).
        started = time.monotonic()
        java = _require_tool("java")
        if not port_is_free(self.port):
            raise DevstackError(f"port {self.port} on {HOST} is in use: choose another port")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = _size(self.log_path)
        self.pid = _spawn(registry_command(java, jar, self.port), self.log_path)
        try:
            self._wait_ready(started + timeout)
        except BaseException:
            self.stop()
            raise
        elapsed = time.monotonic() - started
        self._progress(
            f"Apicurio Registry {APICURIO_VERSION} ready at {self.url} in {elapsed:.1f}s"
        )

    def _wait_ready(self, deadline: float) -> None:
        last_error = "no answer yet"
        # trust_env=False: a proxy from the environment must not see loopback requests.
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                assert self.pid is not None
                if not _process_alive(self.pid):
                    self.pid = None
                    raise DevstackError(
                        f"the Schema Registry exited during start-up:\n{self._log_tail()}",
                        log=str(self.log_path),
                    )
                try:
                    response = client.get(f"{self.url}/subjects")
                except httpx.TransportError as exc:
                    last_error = str(exc) or type(exc).__name__
                else:
                    if response.status_code == 200:
                        return
                    last_error = f"HTTP {response.status_code}"
                time.sleep(0.1)
        raise DevstackError(
            f"the Schema Registry at {self.url} was not ready in time ({last_error}):\n"
            f"{self._log_tail()}",
            log=str(self.log_path),
        )

    def _log_tail(self) -> str:
        tail = _tail(self.log_path, self._log_offset) or "(nothing was logged)"
        return f"{tail}\n(full log: {self.log_path})"

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the JVM by PID and wait; SIGKILL after ``timeout``. Idempotent."""
        if self.pid is None:
            return
        _terminate(self.pid, timeout)
        self.pid = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)


def registry_command(java: str, jar: Path, port: int) -> list[str]:
    """The ``java`` argv of a registry on ``127.0.0.1:port``; ``dev down`` matches on it."""
    return [
        java,
        *_REGISTRY_JVM,
        f"-Dquarkus.http.host={HOST}",
        f"-Dquarkus.http.port={port}",
        "-jar",
        str(jar),
    ]


def _is_registry(pid: int, jar: Path, port: int) -> bool:
    """Guard against a recycled PID: the process must run our jar on the recorded port."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(jar).encode() in argv and f"-Dquarkus.http.port={port}".encode() in argv


def _state_path(cache_dir: Path) -> Path:
    return _dev_dir(cache_dir) / "registry.json"


def _read_state(cache_dir: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(_state_path(cache_dir).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def dev_registry_status(cache_dir: Path) -> dict[str, Any] | None:
    """The running dev registry's state (pid, url, port, log, ...), or None."""
    state = _read_state(cache_dir)
    if state is None:
        return None
    try:
        pid, port, jar = int(state["pid"]), int(state["port"]), Path(state["jar"])
    except (KeyError, ValueError, TypeError):
        return None
    if not (_process_alive(pid) and _is_registry(pid, jar, port)):
        return None
    return state


def dev_registry_up(
    cache_dir: Path, port: int | None = None, progress: Callable[[str], None] = print
) -> dict[str, Any]:
    """Start the dev registry detached, or report the one already running.

    Returns its state plus ``already_running``. Without ``port`` the previous run's port
    is reused when it is free, so ``url`` stays stable between runs.
    """
    # Not kafka's dev lock: `streams dev up` takes both in turn, and flock does not nest.
    with _file_lock(_dev_dir(cache_dir) / ".registry.lock"):
        running = dev_registry_status(cache_dir)
        if running is not None:
            if port is not None and port != running["port"]:
                raise DevstackError(
                    f"the dev Schema Registry already runs at {running['url']}: "
                    "run `streams dev down` first to change its port"
                )
            return {**running, "already_running": True}
        if port is None:
            port = _previous_port(cache_dir)
        registry = LocalRegistry(
            cache_dir,
            port=port,
            log_path=_dev_dir(cache_dir) / "registry.log",
            progress=progress,
        )
        registry.start()
        assert registry.pid is not None
        state: dict[str, Any] = {
            "pid": registry.pid,
            "url": registry.url,
            "port": registry.port,
            "jar": str(runner_jar(registry.cache_dir)),
            "log": str(registry.log_path),
            "version": APICURIO_VERSION,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write_state(_state_path(cache_dir), state)
        return {**state, "already_running": False}


def _previous_port(cache_dir: Path) -> int | None:
    state = _read_state(cache_dir)
    try:
        port = int(state["port"]) if state is not None else None
    except (KeyError, ValueError, TypeError):
        return None
    return port if port is not None and port_is_free(port) else None


def dev_registry_down(cache_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the dev registry by its recorded PID. False when none was running."""
    with _file_lock(_dev_dir(cache_dir) / ".registry.lock"):
        running = dev_registry_status(cache_dir)
        if running is None:
            return False
        _terminate(int(running["pid"]), timeout)
        return True
