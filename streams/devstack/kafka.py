"""A real single-node Kafka for development and integration tests, without Docker.

The jars come from Maven once per cache dir (``deploy/kafka/pom.xml``); the broker is
``java kafka.Kafka`` in KRaft combined mode (broker and controller in one JVM, node 1),
listening on 127.0.0.1 only::

    from streams.devstack.kafka import LocalKafka
    from streams.settings import default_cache_dir

    with LocalKafka(default_cache_dir()) as kafka:
        producer = clients.producer(kafka.bootstrap)
        ...
        kafka.restart()  # same port, same data: a broker-restart fault

:mod:`streams.devstack.dev_kafka` keeps one long-lived broker for ``streams dev``.

Errors are :class:`DevstackError` when the broker could not be prepared, started or
stopped, and its subclass :class:`ToolMissing` without ``mvn`` or ``java``; both are
:class:`~streams.errors.ConfigError`, so the CLI prints one line. They, and the process
and port helpers re-exported here, live in :mod:`streams.devstack._process`, shared with
the Schema Registry.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from confluent_kafka import KafkaException

from streams.devstack._coordinators import wait_for_coordinators
from streams.devstack._maven import _run_maven
from streams.devstack._process import (
    HOST,
    DevstackError,
    ToolMissing,
    _file_lock,
    _process_alive,
    _require_tool,
    _size,
    _spawn,
    _tail,
    _terminate,
    free_ports,
    port_is_free,
)
from streams.kafka import clients

__all__ = [
    "BROKER_MAIN",
    "CONSUMER_GROUPS_MAIN",
    "HOST",
    "KAFKA_VERSION",
    "STORAGE_TOOL_MAIN",
    "DevstackError",
    "LocalKafka",
    "ToolMissing",
    "ensure_kafka_jars",
    "free_ports",
    "kafka_home",
    "new_cluster_id",
    "port_is_free",
    "render_server_properties",
    "run_kafka_tool",
]

KAFKA_VERSION = "4.1.1"
BROKER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"
CONSUMER_GROUPS_MAIN = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"

_DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "kafka"

# The distribution's kafka-server-start.sh settings, with a heap sized for a laptop, and
# the C1-only JIT: on two cores C2 competes with start-up and costs ~2s of every (re)start,
# while a dev broker's traffic never needs C2's peak speed.
_BROKER_JVM = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)
# Tools run for a second or two: the C1-only JIT and serial GC start fastest.
_TOOL_JVM = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Djava.awt.headless=true")


def _deploy_file(name: str) -> Path:
    path = _DEPLOY_DIR / name
    if not path.is_file():
        raise DevstackError(f"{path} is missing: run from a source checkout of this project")
    return path


def kafka_home(cache_dir: Path) -> Path:
    """The per-version folder in the cache: ``libs/``, the Maven log, tool logs."""
    return cache_dir / f"kafka-{KAFKA_VERSION}"


def ensure_kafka_jars(cache_dir: Path, *, progress: Callable[[str], None] = print) -> Path:
    """Resolve the broker and tool jars into ``<cache_dir>/kafka-<ver>/libs`` once.

    A marker file holds the hash of ``pom.xml``, so editing the pom resolves again.
    Returns the libs dir. Raises :class:`ToolMissing` without ``java`` or (on the first
    run) ``mvn``, and :class:`DevstackError` when Maven fails.
    """
    _require_tool("java")
    home = kafka_home(cache_dir)
    libs = home / "libs"
    marker = home / ".resolved"
    pom = _deploy_file("pom.xml")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    if _resolved(marker, digest, libs):
        return libs
    mvn = _require_tool("mvn")
    with _file_lock(home / ".lock"):
        if _resolved(marker, digest, libs):  # another process finished while we waited
            return libs
        started = time.monotonic()
        progress(f"Resolving Kafka {KAFKA_VERSION} jars with Maven (first run only)...")
        partial = home / f"libs.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        _run_maven(mvn, pom, partial, home / "mvn.log", progress, what="the Kafka jars")
        marker.unlink(missing_ok=True)
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        marker.write_text(digest + "\n")
        count = len(list(libs.glob("*.jar")))
        elapsed = time.monotonic() - started
        progress(f"Kafka {KAFKA_VERSION}: {count} jars in {libs} ({elapsed:.1f}s)")
    return libs


def _resolved(marker: Path, digest: str, libs: Path) -> bool:
    try:
        recorded = marker.read_text().strip()
    except FileNotFoundError:
        return False
    return recorded == digest and (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()


def new_cluster_id() -> str:
    """A random cluster id in Kafka's ``Uuid`` format (22 chars of URL-safe base64)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka rejects ids that look like a CLI flag
            return text


def render_server_properties(
    *, port: int, controller_port: int, log_dir: Path, node_id: int = 1
) -> str:
    """The ``server.properties`` of a one-node KRaft cluster on 127.0.0.1."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        # A static quorum: the voter set lives in this file, not in the metadata log,
        # so a restart may even move the controller port.
        "controller.quorum.voters": f"{node_id}@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "3",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        # 50 offsets partitions is the production default; 10 makes the first group faster.
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _java_command(java: str, libs: Path, jvm: tuple[str, ...], logs: Path, main: str) -> list[str]:
    return [
        java,
        *jvm,
        f"-Dlog4j2.configurationFile={_deploy_file('log4j2.yaml')}",
        f"-Dkafka.logs.dir={logs}",
        "-cp",
        f"{libs}/*",
        main,
    ]


def run_kafka_tool(
    cache_dir: Path, main_class: str, args: list[str], *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a Kafka command-line tool, e.g. ``CONSUMER_GROUPS_MAIN`` with ``["--list", ...]``.

    Output is captured as text and the exit status is not checked: read ``returncode``.
    Tool logs go to ``<cache_dir>/kafka-<ver>/tool-logs``; only warnings reach stderr.
    """
    libs = ensure_kafka_jars(cache_dir)
    logs = kafka_home(cache_dir) / "tool-logs"
    command = _java_command(_require_tool("java"), libs, _TOOL_JVM, logs, main_class) + args
    try:
        return subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DevstackError(f"{main_class} did not finish within {timeout:.0f}s") from exc


def _is_broker(pid: int, properties: Path) -> bool:
    """Guard against a recycled PID: the process must be our ``kafka.Kafka <properties>``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return BROKER_MAIN.encode() in argv and str(properties).encode() in argv


class LocalKafka:
    """One KRaft broker+controller on 127.0.0.1, run as a child JVM in its own session.

    Ports are chosen when the object is built, so ``bootstrap`` is known before
    ``start()``. Without ``data_dir`` a temporary one is made and removed by ``__exit__``.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.cache_dir = cache_dir.resolve()
        self._progress = progress
        self._owns_data_dir = data_dir is None
        # Absolute, because `dev down` recognises the broker by this path in its argv.
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="local-kafka-")) if data_dir is None else data_dir
        ).resolve()
        if port is None:
            port, controller_port = free_ports(2)
        else:
            controller_port = next(p for p in free_ports(2) if p != port)
        self.port = port
        self.controller_port = controller_port
        self.bootstrap = f"{HOST}:{port}"
        self.pid: int | None = None
        self._log_offsets = (0, 0)

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_path(self) -> Path:
        """Kafka's own log (log4j2, INFO); ``console.log`` beside it has the JVM's output."""
        return self.data_dir / "logs" / "server.log"

    @property
    def console_path(self) -> Path:
        return self.data_dir / "logs" / "console.log"

    def start(self, timeout: float = 120.0) -> None:
        """Format storage on first use, launch the JVM, return once a client gets metadata."""
        if self.pid is not None and _process_alive(self.pid):
            raise DevstackError(f"Kafka is already running on {self.bootstrap} (pid {self.pid})")
        started = time.monotonic()
        libs = ensure_kafka_jars(self.cache_dir, progress=self._progress)
        java = _require_tool("java")
        for port in (self.port, self.controller_port):
            if not port_is_free(port):
                raise DevstackError(f"port {port} on {HOST} is in use: choose another port")
        logs = self.log_path.parent
        logs.mkdir(parents=True, exist_ok=True)
        kraft_dir = self.data_dir / "kraft"
        self.properties_path.write_text(self._render_properties(kraft_dir))
        if not (kraft_dir / "meta.properties").is_file():
            self._format(java, libs, logs)
        command = _java_command(java, libs, self._broker_jvm(), logs, BROKER_MAIN)
        self._log_offsets = (_size(self.console_path), _size(self.log_path))
        self.pid = _spawn([*command, str(self.properties_path)], self.console_path)
        try:
            self._wait_ready(started + timeout)
        except BaseException:
            self.stop()
            raise
        elapsed = time.monotonic() - started
        self._progress(f"Kafka {KAFKA_VERSION} ready on {self.bootstrap} in {elapsed:.1f}s")

    def _render_properties(self, log_dir: Path) -> str:
        """The broker's ``server.properties`` (a subclass adds listeners and security)."""
        return render_server_properties(
            port=self.port, controller_port=self.controller_port, log_dir=log_dir
        )

    def _broker_jvm(self) -> tuple[str, ...]:
        """The broker JVM's options (a subclass adds system properties)."""
        return _BROKER_JVM

    def _format_args(self) -> list[str]:
        """Extra ``kafka-storage format`` arguments (a subclass adds SCRAM users)."""
        return []

    def _format(self, java: str, libs: Path, logs: Path) -> None:
        command = _java_command(java, libs, _TOOL_JVM, logs, STORAGE_TOOL_MAIN)
        args = ["format", "-t", new_cluster_id(), "-c", str(self.properties_path)]
        args += self._format_args()
        result = subprocess.run(
            command + args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise DevstackError(f"formatting {self.data_dir} failed:\n{output}")

    def _wait_ready(self, deadline: float) -> None:
        admin: Any = None
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            assert self.pid is not None
            if not _process_alive(self.pid):
                self.pid = None
                raise DevstackError(f"Kafka exited during start-up:\n{self._log_tails()}")
            if admin is None and self._accepts_connections():
                # librdkafka's own logging is silenced: failures surface as exceptions.
                admin = clients.admin_client(self.bootstrap, {"log_level": 0})
            if admin is not None:
                try:
                    metadata = admin.list_topics(timeout=2.0)
                except KafkaException as exc:
                    last_error = str(exc)
                else:
                    if metadata.brokers:
                        wait_for_coordinators(admin, self.bootstrap, deadline, self._log_tails)
                        return
            time.sleep(0.2)
        raise DevstackError(
            f"Kafka on {self.bootstrap} gave no metadata in time ({last_error}):\n"
            f"{self._log_tails()}"
        )

    def _accepts_connections(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def _log_tails(self) -> str:
        """This start's warnings and JVM output, else its last INFO lines."""
        console_since, log_since = self._log_offsets
        tail = _tail(self.console_path, console_since)
        if tail:
            return f"{tail}\n(JVM output: {self.console_path}; full log: {self.log_path})"
        tail = _tail(self.log_path, log_since) or "(nothing was logged)"
        return f"{tail}\n(full log: {self.log_path})"

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the broker by PID and wait; SIGKILL after ``timeout``. Idempotent."""
        if self.pid is None:
            return
        _terminate(self.pid, timeout)
        self.pid = None

    def restart(self) -> None:
        """Stop, then start again on the same ports and data dir."""
        self.stop()
        self.start()

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
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
