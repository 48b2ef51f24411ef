"""The long-lived broker of ``streams dev up|down|status``.

It outlives the CLI and is found again through ``<cache_dir>/dev/kafka.json``. With
``secure=True`` it is a :class:`~streams.devstack.secure.SecureKafka` (SASL_SSL listener,
SCRAM and PLAIN users, ACLs), kept in a data dir of its own because its users are created
when the storage is formatted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streams.devstack._process import (
    DevstackError,
    _dev_dir,
    _file_lock,
    _process_alive,
    _terminate,
    _write_state,
    port_is_free,
)
from streams.devstack.kafka import KAFKA_VERSION, LocalKafka, _is_broker
from streams.devstack.secure import SecureKafka

__all__ = ["dev_down", "dev_status", "dev_up"]


def _state_path(cache_dir: Path) -> Path:
    return _dev_dir(cache_dir) / "kafka.json"


def dev_status(cache_dir: Path) -> dict[str, Any] | None:
    """The running dev broker's state (pid, bootstrap, data dir, ...), or None."""
    try:
        state: dict[str, Any] = json.loads(_state_path(cache_dir).read_text())
        pid = int(state["pid"])
        properties = Path(state["data_dir"]) / "server.properties"
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    if not (_process_alive(pid) and _is_broker(pid, properties)):
        return None
    return state


def dev_up(
    cache_dir: Path,
    port: int | None = None,
    progress: Callable[[str], None] = print,
    *,
    secure: bool = False,
) -> dict[str, Any]:
    """Start the dev broker detached, or report the one already running.

    Returns its state plus ``already_running``. Without ``port`` the previous run's
    port is reused when it is free, so ``bootstrap`` stays stable between runs. With
    ``secure`` the broker also has a SASL_SSL listener (see :mod:`streams.devstack.secure`).
    """
    with _file_lock(_dev_dir(cache_dir) / ".lock"):
        running = dev_status(cache_dir)
        if running is not None:
            if port is not None and port != running["port"]:
                raise DevstackError(
                    f"the dev Kafka already runs on {running['bootstrap']}: "
                    "run `streams dev down` first to change its port"
                )
            if secure != ("secure_bootstrap" in running):
                mode = "with" if "secure_bootstrap" in running else "without"
                raise DevstackError(
                    f"the dev Kafka already runs {mode} --secure: "
                    "run `streams dev down` first to change that"
                )
            return {**running, "already_running": True}
        data_dir = _dev_dir(cache_dir) / ("data-secure" if secure else "data")
        if port is None:
            port = _previous_port(cache_dir)
        kafka: LocalKafka
        if secure:
            kafka = SecureKafka(cache_dir, port=port, data_dir=data_dir, progress=progress)
        else:
            kafka = LocalKafka(cache_dir, port=port, data_dir=data_dir, progress=progress)
        kafka.start()
        assert kafka.pid is not None
        state: dict[str, Any] = {
            "pid": kafka.pid,
            "bootstrap": kafka.bootstrap,
            "port": kafka.port,
            "controller_port": kafka.controller_port,
            "data_dir": str(kafka.data_dir),
            "log": str(kafka.log_path),
            "version": KAFKA_VERSION,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if isinstance(kafka, SecureKafka):
            # Where the passwords are, never the passwords: this state is printed.
            state |= {
                "secure_bootstrap": kafka.secure_bootstrap,
                "mtls_bootstrap": kafka.mtls_bootstrap,
                "ca_file": str(kafka.ca_file),
                "users": list(kafka.users),
                "secrets_file": str(kafka.secrets_path),
            }
        _write_state(_state_path(cache_dir), state)
        return {**state, "already_running": False}


def _previous_port(cache_dir: Path) -> int | None:
    try:
        port = int(json.loads(_state_path(cache_dir).read_text())["port"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    return port if port_is_free(port) else None


def dev_down(cache_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the dev broker by its recorded PID. False when none was running."""
    with _file_lock(_dev_dir(cache_dir) / ".lock"):
        running = dev_status(cache_dir)
        if running is None:
            return False
        _terminate(int(running["pid"]), timeout)
        return True
