"""CPU per process: ``utime + stime`` from ``/proc/<pid>/stat`` over a measured window.

The machine is shared and has two cores, so a rate alone says little: every figure
comes with the CPU seconds each process of the run spent in the window, and what the
rest of the machine used. :class:`CpuMeter` measures a window, :func:`ms_per_record`
turns its seconds into milliseconds per record per role::

    meter = CpuMeter({"worker": worker.pid, "simulator": sim.pid, "kafka": kafka_pid})
    ...  # the run
    cpu = meter.read()  # {"worker_s": 9.1, "simulator_s": 1.4, ..., "wall_s": 10.0}
    ms_per_record(cpu, 1500)  # {"worker": 6.07, "simulator": 0.93, ...}
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (all its threads) so far, or None once gone.

    ``utime`` and ``stime`` of ``/proc/<pid>/stat``, fields 14 and 15: they cover every
    thread of the process (librdkafka's, the JVM's), not the children it waited for.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy since boot (``/proc/stat``, idle and iowait excluded)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICK


#: The role a process name counts towards: ``worker2`` and ``worker2b`` are workers.
ROLES = ("worker", "peer", "faust", "simulator", "kafka", "bench_driver")


def role_of(name: str) -> str:
    return next((r for r in ROLES if name.startswith(r)), name)


class CpuMeter:
    """CPU seconds used by named processes, and by everything else, over one window.

    A process started inside the window is :meth:`add`-ed (counted from then); one about
    to be SIGKILLed is :meth:`freeze`-d first, since a reaped process has no ``/proc``.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {**pids, "bench_driver": os.getpid()}
        self._start = {name: cpu_seconds(pid) or 0.0 for name, pid in self.pids.items()}
        self._frozen: dict[str, float] = {}
        self._busy = machine_busy_seconds()
        self._wall = time.monotonic()

    def add(self, name: str, pid: int) -> None:
        self.pids[name] = pid
        self._start[name] = cpu_seconds(pid) or 0.0

    def freeze(self, name: str) -> None:
        now = cpu_seconds(self.pids[name])
        if now is not None:
            self._frozen[name] = now

    def read(self) -> dict[str, float]:
        """Seconds per process, ``others`` (the rest of the machine), and ``wall``."""
        out: dict[str, float] = {}
        for name, pid in self.pids.items():
            now = self._frozen.get(name, cpu_seconds(pid))
            out[f"{name}_s"] = round(now - self._start[name], 3) if now is not None else 0.0
        busy = machine_busy_seconds() - self._busy
        out["others_s"] = round(max(busy - sum(out.values()), 0.0), 2)
        out["wall_s"] = round(time.monotonic() - self._wall, 2)
        return out


def ms_per_record(cpu: dict[str, float], records: int) -> dict[str, float]:
    """Milliseconds of CPU per record for each role (several workers are summed)."""
    out: dict[str, float] = {}
    for key, seconds in cpu.items():
        if key in ("others_s", "wall_s") or not records:
            continue
        role = role_of(key.removesuffix("_s"))
        out[role] = out.get(role, 0.0) + 1000 * seconds / records
    return {role: round(ms, 3) for role, ms in out.items()}
