"""`streams run --processes N`: one supervisor, N members of one group, one /metrics."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.cli import build_parser
from streams.devstack.kafka import LocalKafka
from streams.settings import load_settings
from streams.supervisor import CONFIG_ERROR_EXIT, Supervisor, restart_delay
from tests.integration.kafka_utils import ROUTES, Message, consume_all, produce
from tests.integration.pipeline_utils import REPO, new_name, valid_data, write_config

pytestmark = pytest.mark.integration

PARTITIONS = 4
SHUTDOWN_S = 10
STARTED = re.compile(r"^child (\d+) started \(pid (\d+), instance id (\S+)\)$")
RESTARTED = re.compile(r"^child (\d+) \(pid (\d+), instance id \S+\) was killed by SIGKILL after")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        fut.result(timeout=30)


def _inputs(samples: Path, n: int, start: int = 0) -> list[tuple[bytes | None, bytes]]:
    texts = [p.read_bytes() for p in sorted(samples.glob("*.txt"))]
    return [(f"k{i}".encode(), texts[i % len(texts)]) for i in range(start, start + n)]


def _messages(log: Path) -> list[str]:
    """The ``msg`` of every JSON log line (the supervisor's and the children's)."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(str(json.loads(line).get("msg", "")))
    return out


def _started(log: Path) -> list[tuple[int, int, str]]:
    """(index, pid, instance id) of every child start, in order."""
    hits = (STARTED.match(m) for m in _messages(log))
    return [(int(h[1]), int(h[2]), h[3]) for h in hits if h]


def _outcomes(bootstrap: str, name: str) -> Counter[tuple[int, int]]:
    """Committed outcomes per input (partition, offset), from provenance or the envelope."""
    seen: Counter[tuple[int, int]] = Counter()
    out: list[Message] = consume_all(bootstrap, [f"{name}.{r}" for r in ROUTES])
    for msg in out:
        if msg.topic.endswith(".valid"):
            _data, prov = valid_data(msg)
            seen[int(prov["source_partition"]), int(prov["source_offset"])] += 1
        else:
            source = json.loads(msg.value or b"")["source"]
            seen[int(source["partition"]), int(source["offset"])] += 1
    return seen


def _wait(
    what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"supervisor exited {proc.returncode}\n{_tail(log)}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{_tail(log)}"
        time.sleep(0.5)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:]


def _cleanup(proc: subprocess.Popen[bytes], log: Path) -> None:
    """After a failure: stop the supervisor, then kill any child it left behind, by PID."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(SHUTDOWN_S + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    for _index, pid, _id in _started(log):
        with contextlib.suppress(OSError):  # gone already, or the PID is someone else's now
            if b"--child-index" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def _metric_sum(text: str, name: str) -> float:
    """Sum of every sample of ``name`` in a Prometheus text exposition."""
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return sum(float(v) for v in pattern.findall(text))


def _members(bootstrap: str, group: str) -> set[str]:
    """group.instance.id of each member of a stable ``group`` holding partitions."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except KafkaException:  # the coordinator is still loading on a fresh broker
        return set()
    if desc.state != ConsumerGroupState.STABLE:
        return set()
    return {str(m.group_instance_id) for m in desc.members if m.assignment.topic_partitions}


def _everything_once(bootstrap: str, name: str, expected: int) -> Callable[[], bool]:
    def ready() -> bool:
        seen = _outcomes(bootstrap, name)
        assert max(seen.values(), default=1) == 1, f"an input has two outcomes: {seen}"
        return len(seen) == expected

    return ready


def test_two_processes_share_the_group_survive_a_kill_and_stop_in_bound(
    kafka: LocalKafka, invoice_samples: Path, sim_factory: Any, tmp_path: Path
) -> None:
    """2 children: one group, one /metrics, a SIGKILLed child restarts, SIGTERM exits 0 in bound."""
    sim = sim_factory(fixture_dirs=[invoice_samples], latency_ms=200)
    name = new_name("procs")
    _create_topic(kafka.bootstrap, f"{name}.raw", PARTITIONS)
    first = produce(kafka.bootstrap, f"{name}.raw", _inputs(invoice_samples, 200))
    port = _free_port()
    config = write_config(
        tmp_path / "w.toml",
        kafka.bootstrap,
        sim,
        name,
        cache=False,
        exactly_once=True,
        instance_id=name,
        metrics_port=port,
        shutdown_timeout_s=SHUTDOWN_S,
    )
    log = tmp_path / "supervisor.log"
    argv = [sys.executable, "-m", "streams", "run", name, "--config", str(config)]
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [*argv, "--processes", "2"], cwd=REPO, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        _wait("both children", lambda: len(_started(log)) == 2, proc, log, 30)
        ids = {instance for _i, _pid, instance in _started(log)}
        assert ids == {f"{name}-0", f"{name}-1"}
        _wait(
            "2 members", lambda: _members(kafka.bootstrap, f"streams.{name}") == ids, proc, log, 45
        )

        _wait("the first batch", _everything_once(kafka.bootstrap, name, first), proc, log, 60)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert _metric_sum(text, "streams_records_in_total") == first, text
        assert _metric_sum(text, "streams_records_out_total") == first, text

        # A second batch, and one child killed while it works on its share.
        produce(kafka.bootstrap, f"{name}.raw", _inputs(invoice_samples, 100, start=200))
        time.sleep(0.3)
        victim = next(pid for index, pid, _id in _started(log) if index == 1)
        os.kill(victim, signal.SIGKILL)
        _wait(
            "the restart",
            lambda: any(RESTARTED.match(m) for m in _messages(log)) and len(_started(log)) == 3,
            proc,
            log,
            30,
        )
        index, pid, instance = _started(log)[-1]
        assert (index, instance) == (1, f"{name}-1")
        assert pid != victim
        _wait("every input", _everything_once(kafka.bootstrap, name, first + 100), proc, log, 90)

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(SHUTDOWN_S + 8 + 2)
        took = time.monotonic() - started
    finally:
        _cleanup(proc, log)
    assert code == 0, _tail(log)
    assert took < SHUTDOWN_S + 8, _tail(log)
    first_line = json.loads(log.read_text().splitlines()[0])
    assert first_line["msg"].startswith("supervising 2 worker process(es)")
    assert not Path(first_line["multiproc_dir"]).exists()  # removed at exit
    stopped = [m for m in _messages(log) if re.match(r"^child \d .* stopped \(exit code 0\)$", m)]
    assert len(stopped) == 2, _tail(log)


def test_a_config_error_in_a_child_stops_the_parent_with_one_line(tmp_path: Path) -> None:
    """A child's ConfigError (unknown contract) is printed once, with its exit code, no restart."""
    config = tmp_path / "bad.toml"
    config.write_text(
        '[registry]\nurl = "mock://"\n[[pipelines]]\nname = "x"\ninput_topic = "x.raw"\n'
        'contract = "nope"\ncontract_version = 1\n'
    )
    argv = [sys.executable, "-m", "streams", "run", "x", "--config", str(config)]
    done = subprocess.run(
        [*argv, "--processes", "2"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == CONFIG_ERROR_EXIT, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("streams: error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("streams: error: pipeline x: unknown contract nope.v1"), errors
    assert "restart" not in done.stderr


def test_processes_must_be_at_least_one(capsys: pytest.CaptureFixture[str]) -> None:
    """`--processes 0` is an argparse error; `run --help` documents the option."""
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["run", "x", "--processes", "0"])
    assert exit_info.value.code == 2
    assert "--processes: '0' is not a whole number of at least 1" in capsys.readouterr().err
    args = parser.parse_args(["run", "x"])
    assert isinstance(args, argparse.Namespace)
    assert args.processes == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "--help"])
    assert "--processes N" in capsys.readouterr().out


def test_restart_backoff_doubles_from_one_second_to_thirty() -> None:
    """Restart delays: 1, 2, 4, 8, 16, then 30 s for good."""
    assert [restart_delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert restart_delay(10_000) == 30


def _supervise(code: str, *, after_s: float, shutdown_s: float = 1) -> tuple[int, float]:
    """Supervise 1 child running ``python -c code``; SIGTERM ourselves after ``after_s``."""
    settings = load_settings(None, worker={"shutdown_timeout_s": shutdown_s})
    supervisor = Supervisor(settings, "invoices", processes=1, argv=[sys.executable, "-c", code])
    timer = threading.Timer(after_s, os.kill, (os.getpid(), signal.SIGTERM))
    started = time.monotonic()
    timer.start()
    try:
        result = supervisor.run()
    finally:
        timer.cancel()
    return result, time.monotonic() - started


def test_a_child_exiting_0_unasked_is_restarted_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A child exiting 0 with no stop asked for restarts after 1 s, 2 s, 4 s; one line each."""
    caplog.set_level(logging.INFO, logger="streams.supervisor")
    # Exits at ~0.1 s, ~1.2 s and ~3.3 s; the next start would be at ~7.3 s.
    result, _took = _supervise("pass", after_s=5.0)
    assert result == 0
    restarts = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(restarts) == 3, restarts
    assert re.match(r"child 0 \(pid \d+, instance id \S+-0\) exited 0 without a stop", restarts[0])
    assert [m.rsplit(";", 1)[1] for m in restarts] == [
        " restart 1 in 1 s",
        " restart 2 in 2 s",
        " restart 3 in 4 s",
    ]


def test_a_child_ignoring_sigterm_is_killed_inside_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A child that ignores SIGTERM is SIGKILLed; the stop stays inside shutdown_timeout_s + 8."""
    caplog.set_level(logging.INFO, logger="streams.supervisor")
    ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    result, took = _supervise(ignore, after_s=1.0, shutdown_s=1)
    assert result == 1  # not a clean stop: the straggler's work was cut off
    assert took - 1.0 < 1 + 8, took
    assert any("still running; killing it" in r.getMessage() for r in caplog.records)
