"""Subprocesses of the benchmark: the simulator, workers, the faust peer and baseline.

Every process is started here, remembered in :data:`STARTED`, and stopped by its own
PID (SIGTERM, then SIGKILL) by :func:`stop_all`; nothing is ever killed by name.
Workers are ``python -m streams run <pipeline> --config <toml>``: the real entry point,
with a TOML file written for the scenario. Their peak memory is the kernel's own
high-water mark (``VmHWM`` in ``/proc/<pid>/status``), read just before they stop.
Their CPU is metered by :mod:`bench.cpu`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from streams.devstack.kafka import free_ports

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "contracts" / "samples" / "invoice"

STARTED: list[subprocess.Popen[bytes]] = []

#: Consumer session timeout of every worker and peer: how long a SIGKILLed member holds
#: its partitions. Short, so the kill runs spend their time on the work, not on waiting.
SESSION_TIMEOUT_MS = 6_000

#: How long a slow request of a simulator with ``slow_fraction`` takes, in seconds.
SLOW_S = 5.0


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # The generated TOML must be the whole configuration: drop any STREAMS_* overrides.
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _spawn(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, cwd=REPO, env=_env(env), stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    STARTED.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> int | None:
    """SIGTERM ``proc`` by PID and wait; SIGKILL it if it outlives ``timeout``."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    with contextlib.suppress(ValueError):
        STARTED.remove(proc)
    return proc.returncode


def stop_all() -> None:
    for proc in list(STARTED):
        stop(proc, timeout=20.0)


def proc_status_mb(pid: int, field: str) -> float | None:
    """``VmHWM`` / ``VmRSS`` of ``pid`` in MiB, or None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# -- the simulator ----------------------------------------------------------------------


class Simulator:
    """``streams simulate-llm`` in its own process (so its CPU shows up as its own).

    Spawned by the constructor; :meth:`wait_ready` (or ``with``) waits for ``/healthz``.
    ``slow_fraction`` of the requests (drawn per request, seeded) take :data:`SLOW_S`
    instead of ``latency_ms`` (the simulator's ``hang`` behaviour, then a valid answer):
    a model's latency tail. ``fault_mix`` (behaviour name -> probability) adds other
    seeded faults to the mix (the soak's); ``seed`` is the simulator's ``--seed``.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        latency_ms: float,
        max_concurrency: int | None,
        slow_fraction: float = 0.0,
        fault_mix: dict[str, float] | None = None,
        seed: int = 0,
    ) -> None:
        self.latency_ms = latency_ms
        self.max_concurrency = max_concurrency
        self.slow_fraction = slow_fraction
        self.workdir = workdir
        (self.port,) = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready = False
        argv = [
            sys.executable,
            "-m",
            "streams",
            "simulate-llm",
            "--port",
            str(self.port),
            "--fixtures",
            str(SAMPLES),
            "--latency-ms",
            str(latency_ms),
            # Recorded requests hold whole prompts; keep few, the stats count them all.
            "--record-limit",
            "50",
        ]
        if max_concurrency is not None:
            argv += ["--max-concurrency", str(max_concurrency)]
        mix = dict(fault_mix or {})
        if slow_fraction:
            mix["hang"] = slow_fraction
            argv += ["--hang-s", str(SLOW_S)]
        if mix:
            argv += ["--fault-mix", ",".join(f"{name}={p}" for name, p in mix.items())]
        if seed:
            argv += ["--seed", str(seed)]
        self.proc = _spawn(argv, workdir / f"simulator-{self.port}.log")

    def wait_ready(self, timeout: float = 60.0) -> Simulator:
        deadline = time.monotonic() + timeout
        while not self._ready and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the simulator exited at start-up (see {self.workdir})")
            with contextlib.suppress(httpx.HTTPError):
                self._ready = httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            if not self._ready:
                time.sleep(0.2)
        if not self._ready:
            raise RuntimeError(f"the simulator did not answer /healthz within {timeout:.0f}s")
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stats(self) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{self.url}/_sim/stats", timeout=10).json()
        return body

    def model_calls(self) -> int:
        """Completion requests answered so far (every endpoint, every status)."""
        return int(self.stats()["total"])

    def stop(self) -> None:
        stop(self.proc, timeout=15)

    def __enter__(self) -> Simulator:
        return self.wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: (latency ms, concurrency limit, share of slow requests) of a simulator.
SimSpec = tuple[float, int | None, float]


class Simulators:
    """The run's simulators, one per :data:`SimSpec`, all spawned while Kafka starts.

    Scenarios with the same model share one (their figures are differences of its
    stats, and its CPU is metered per run); each is stopped at the end of the run.
    """

    def __init__(self, workdir: Path, specs: set[SimSpec]) -> None:
        self.workdir = workdir
        self._sims = {spec: self._spawn(spec) for spec in sorted(specs, key=str)}

    def _spawn(self, spec: SimSpec) -> Simulator:
        latency_ms, limit, slow = spec
        return Simulator(
            self.workdir, latency_ms=latency_ms, max_concurrency=limit, slow_fraction=slow
        )

    def get(self, latency_ms: float, max_concurrency: int | None, slow: float = 0.0) -> Simulator:
        spec = (float(latency_ms), max_concurrency, float(slow))
        if spec not in self._sims:
            self._sims[spec] = self._spawn(spec)
        return self._sims[spec].wait_ready()

    def stop(self) -> None:
        for sim in self._sims.values():
            sim.stop()


# -- workers ----------------------------------------------------------------------------


def toml_text(data: dict[str, Any]) -> str:
    """A small TOML writer for the settings file: scalars, tables, arrays of tables."""

    def scalar(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return repr(value)
        return json.dumps(str(value))

    lines: list[str] = []
    for name, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{name}]")
            lines += [f"{k} = {scalar(v)}" for k, v in value.items()]
        elif isinstance(value, list):
            for item in value:
                lines.append(f"[[{name}]]")
                lines += [f"{k} = {scalar(v)}" for k, v in item.items()]
        else:
            lines.insert(0, f"{name} = {scalar(value)}")
        lines.append("")
    return "\n".join(lines)


def worker_config(
    bootstrap: str,
    sim_url: str,
    pipeline: str,
    input_topic: str,
    *,
    max_in_flight: int = 64,
    max_connections: int = 64,
    cache: bool = False,
) -> dict[str, Any]:
    return {
        # As the faust peer's: a member killed in (e) and (g) is dropped as fast.
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_prefix": "bench",
            "session_timeout_ms": SESSION_TIMEOUT_MS,
            "heartbeat_interval_ms": SESSION_TIMEOUT_MS // 3,
        },
        "llm": {
            "provider": "openai",
            "base_url": f"{sim_url}/v1",
            "model": "sim-extractor-1",
            "timeout_s": 60,
            "max_connections": max_connections,
        },
        "worker": {"max_in_flight": max_in_flight, "cache": cache},
        "registry": {"url": "mock://"},
        "pipelines": [
            {
                "name": pipeline,
                "input_topic": input_topic,
                "contract": "invoice",
                "contract_version": 1,
            }
        ],
    }


class WorkerProc:
    """One ``streams run`` worker process; knows when it joined its group."""

    def __init__(self, workdir: Path, name: str, config: dict[str, Any]) -> None:
        self.name = name
        self.pipeline = config["pipelines"][0]["name"]
        self.config_path = workdir / f"{name}.toml"
        self.config_path.write_text(toml_text(config))
        self.log_path = workdir / f"{name}.log"
        self.assigned_at: float | None = None  # epoch seconds of the first assignment
        self.peak_rss_mb: float | None = None
        self.errors: list[str] = []
        argv = [sys.executable, "-m", "streams", "run", self.pipeline]
        argv += ["--config", str(self.config_path), "--log-level", "INFO"]
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        STARTED.append(self.proc)
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        with self.log_path.open("wb") as log:
            for line in self.proc.stderr:
                log.write(line)
                log.flush()
                self._parse(line)

    def _parse(self, line: bytes) -> None:
        try:
            doc = json.loads(line)
        except ValueError:
            if b"Traceback" in line or b"Error" in line:
                self.errors.append(line.decode(errors="replace").strip())
            return
        msg = str(doc.get("msg", ""))
        # A fresh broker's coordinator takes a moment to load; aiokafka logs it and retries.
        if doc.get("level") in ("error", "critical") and "CoordinatorNotAvailable" not in msg:
            self.errors.append(msg)
        if self.assigned_at is None and msg.startswith("assigned [") and msg != "assigned []":
            ts = dt.datetime.strptime(doc["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
            self.assigned_at = ts.replace(tzinfo=dt.UTC).timestamp()

    def wait_assigned(self, timeout: float = 120.0) -> float:
        """Epoch seconds at which the worker was first given partitions (group joined)."""
        deadline = time.monotonic() + timeout
        while self.assigned_at is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} joined no group in {timeout:.0f}s")
            time.sleep(0.05)
        return self.assigned_at

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"worker {self.name} exited with {self.proc.returncode}; see {self.log_path}"
            )

    def stop(self) -> float | None:
        """Read the peak RSS, then stop cleanly (SIGTERM drains and commits)."""
        self.peak_rss_mb = proc_status_mb(self.pid, "VmHWM") or self.peak_rss_mb
        stop(self.proc)
        self._reader.join(10)
        return self.peak_rss_mb

    def kill(self) -> None:
        """SIGKILL: no drain, no commit, no leaving the group. A crash."""
        self.peak_rss_mb = proc_status_mb(self.pid, "VmHWM")
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)
        with contextlib.suppress(ValueError):
            STARTED.remove(self.proc)


# -- the faust baseline and the faust peer ----------------------------------------------


def start_faust(
    workdir: Path, bootstrap: str, app_id: str, source: str, sink: str
) -> subprocess.Popen[bytes]:
    """The bare byte-forwarding agent (:mod:`bench.faust_forward`): the broker's ceiling."""
    env = {
        "BENCH_FAUST_ID": app_id,
        "BENCH_FAUST_BROKER": bootstrap,
        "BENCH_FAUST_IN": source,
        "BENCH_FAUST_OUT": sink,
        "BENCH_FAUST_DATADIR": str(workdir / f"{app_id}-data"),
    }
    argv = [
        sys.executable,
        "-m",
        "bench.faust_forward",
        "worker",
        "--loglevel=warn",
        "--without-web",
    ]
    return _spawn(argv, workdir / f"{app_id}.log", env)


class PeerProc:
    """One naive faust peer (:mod:`bench.faust_peer`); knows when it was given partitions.

    Same interface as :class:`WorkerProc` (``pid``, ``wait_assigned``, ``check_alive``,
    ``stop``, ``kill``, ``peak_rss_mb``), so the harness runs either the same way.
    """

    def __init__(
        self,
        workdir: Path,
        name: str,
        *,
        bootstrap: str,
        sim_url: str,
        app_id: str,
        source: str,
        sink: str,
        concurrency: int,
    ) -> None:
        self.name = name
        self.app_id = app_id
        self.log_path = workdir / f"{name}.log"
        self.assigned_at: float | None = None
        self.peak_rss_mb: float | None = None
        self.errors: list[str] = []
        env = {
            "BENCH_PEER_ID": app_id,
            "BENCH_PEER_BROKER": bootstrap,
            "BENCH_PEER_SIM_URL": f"{sim_url}/v1",
            "BENCH_PEER_IN": source,
            "BENCH_PEER_OUT": sink,
            "BENCH_PEER_CONCURRENCY": str(concurrency),
            "BENCH_PEER_SESSION_TIMEOUT_S": str(SESSION_TIMEOUT_MS / 1000),
            # Per process: instances of one app run side by side (no tables to keep).
            "BENCH_PEER_DATADIR": str(workdir / f"{name}-data"),
        }
        argv = [
            sys.executable,
            "-m",
            "bench.faust_peer",
            "worker",
            "--loglevel=warn",
            "--without-web",
        ]
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        STARTED.append(self.proc)
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_log(self) -> None:
        assert self.proc.stdout is not None
        with self.log_path.open("ab") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                # faust routes stdout through its logger: the JSON is mid-line.
                at = line.find(b'{"event": "assigned"')
                if at >= 0 and self.assigned_at is None:
                    self.assigned_at = float(json.loads(line[at:].split(b"}")[0] + b"}")["ts"])
                elif b"Traceback" in line:
                    self.errors.append(line.decode(errors="replace").strip())

    def wait_assigned(self, timeout: float = 120.0) -> float:
        deadline = time.monotonic() + timeout
        while self.assigned_at is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"peer {self.name} exited; see {self.log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"peer {self.name} was given no partitions in {timeout:.0f}s")
            time.sleep(0.05)
        return self.assigned_at

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"peer {self.name} exited with {self.proc.returncode}; see {self.log_path}"
            )

    def stop(self) -> float | None:
        """Read the peak RSS, then SIGKILL: the run's outputs are all acknowledged by now.

        A clean faust shutdown takes ~2 s and changes nothing that is measured; the
        peer's group is never used again.
        """
        self.kill()
        self._reader.join(10)
        return self.peak_rss_mb

    def kill(self) -> None:
        """SIGKILL, as :meth:`WorkerProc.kill`."""
        self.peak_rss_mb = proc_status_mb(self.pid, "VmHWM") or self.peak_rss_mb
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)
        with contextlib.suppress(ValueError):
            STARTED.remove(self.proc)
