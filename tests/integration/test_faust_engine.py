"""The faust engine loses nothing across kill -9 with records held in flight; stock faust does.

Both scenarios run on the real local broker with the simulator over real HTTP. The head
record of every partition (a fresh group, so faust's stock check does not even apply)
is held by the simulator while ~2,000 keyed records behind it finish. The process is
killed with SIGKILL past the commit interval and restarted, three times; then the hold
is lifted and the input is run to the end.

* ``streams run --engine faust`` (:mod:`streams.faust_app`): every input has an outcome
  (duplicates allowed), and per key the valid topic's source offsets never go back
  except for duplicates.
* :mod:`bench.faust_peer`, a stock ``agent(concurrency=N)``: faust commits past the
  held records, and after the restart they are never read again: lost, asserted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.demo import demo_inputs
from streams.devstack.kafka import LocalKafka
from streams.devstack.secure import SecureKafka
from streams.textnorm import text_sha256
from tests.integration.kafka_utils import (
    ROUTES,
    Message,
    _watermarks,
    committed_vs_end,
    consume_all,
    produce,
)
from tests.integration.pipeline_utils import (
    REPO,
    new_name,
    spawn_worker,
    valid_data,
    write_config,
)
from tests.integration.test_prometheus import mixed_batch
from tests.integration.test_secure_kafka import prepared, routes_of

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4
KEYS = 200
PER_KEY = 10
RECORDS = KEYS * PER_KEY
#: Longer than the whole scenario: a held record never answers before the hold is lifted.
HOLD_S = 600.0
KILLS = 3
COMMIT_INTERVAL_S = 0.5
STOCK_COMMIT_INTERVAL_S = 2.8  # faust's default, which bench.faust_peer keeps
WAIT_S = 240.0  # the bound on each wait below (a failure, never a measurement)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _held_text(p: int) -> str:
    return f"Held document for partition {p}: the simulator answers it only when told."


def _load(bootstrap: str, topic: str, samples: Path) -> dict[tuple[int, int], bytes]:
    """A held record at the head of each partition, then the keyed records; key by input."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        fut.result(timeout=30)
    texts = [p.read_bytes() for p in sorted(samples.glob("*.txt"))]
    where: dict[tuple[int, int], bytes] = {}
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})

    def on_ack(err: object, msg: object) -> None:
        assert err is None, err
        where[msg.partition(), msg.offset()] = msg.key()  # type: ignore[attr-defined]

    for p in range(PARTITIONS):
        producer.produce(topic, _held_text(p).encode(), f"held-{p}".encode(), p, on_ack)
    assert producer.flush(30) == 0
    for i in range(RECORDS):
        producer.produce(topic, texts[i % len(texts)], f"k{i % KEYS}".encode(), on_delivery=on_ack)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert sorted(o for (_p, o) in where if o == 0) == [0] * PARTITIONS
    return where


def _hold(sim: str, on: bool) -> None:
    httpx.delete(f"{sim}/_sim/script").raise_for_status()
    if on:
        rules = {text_sha256(_held_text(p)): ["hang"] for p in range(PARTITIONS)}
        httpx.post(f"{sim}/_sim/script", json={"rules": rules}).raise_for_status()


def _wait(what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not ready():
        assert proc.poll() is None, f"exited {proc.returncode}\n{_tail(log)}"
        assert time.monotonic() < deadline, f"gave up waiting for {what}\n{_tail(log)}"
        time.sleep(1.0)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-5000:]


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)


def _output_count(bootstrap: str, name: str) -> int:
    """Records in the four output topics (their end offsets: cheap to poll)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"count-{name}"})
    try:
        cluster = consumer.list_topics(timeout=10).topics
        total = 0
        for route in ROUTES:
            meta = cluster.get(f"{name}.{route}")
            for p in meta.partitions if meta is not None else ():
                # Retried while a just-created output partition elects its leader.
                total += _watermarks(consumer, TopicPartition(meta.topic, p))[1]
        return total
    finally:
        consumer.close()


def _sources(bootstrap: str, name: str) -> tuple[Counter[tuple[int, int]], list[Message]]:
    """Outcomes per input (partition, offset) over the four routes, and the valid messages."""
    seen: Counter[tuple[int, int]] = Counter()
    valid: list[Message] = []
    for msg in consume_all(bootstrap, [f"{name}.{r}" for r in ROUTES]):
        if msg.topic.endswith(".valid"):
            _data, prov = valid_data(msg)
            seen[int(prov["source_partition"]), int(prov["source_offset"])] += 1
            valid.append(msg)
        else:
            source = json.loads(msg.value or b"")["source"]
            seen[int(source["partition"]), int(source["offset"])] += 1
    return seen, valid


def _backwards(valid: list[Message]) -> list[str]:
    """Per key, a source offset lower than an earlier new one (duplicates are skipped)."""
    seen: set[tuple[int, int]] = set()
    last: dict[bytes | None, int] = {}
    bad = []
    for msg in valid:  # consume_all keeps each output partition's order; a key has one
        _data, prov = valid_data(msg)
        coords = (int(prov["source_partition"]), int(prov["source_offset"]))
        if coords in seen:
            continue
        seen.add(coords)
        if msg.key in last and coords[1] < last[msg.key]:
            bad.append(f"{msg.key!r}: {coords[1]} after {last[msg.key]}")
        last[msg.key] = coords[1]
    return bad


def test_faust_engine_loses_nothing_across_kills_with_held_records(
    kafka: LocalKafka, sim_factory: Callable[..., str], invoice_samples: Path, tmp_path: Path
) -> None:
    """kill -9 x3 with each partition's head held: 0 missing, per-key order kept."""
    sim = sim_factory(fixture_dirs=[invoice_samples], hang_s=HOLD_S)
    name = new_name("faust")
    raw = f"{name}.raw"
    inputs = _load(kafka.bootstrap, raw, invoice_samples)
    config = write_config(
        tmp_path / "streams.toml",
        kafka.bootstrap,
        sim,
        name,
        timeout_s=HOLD_S,
        kafka={"session_timeout_ms": 6000, "heartbeat_interval_ms": 2000},
        commit_interval_s=COMMIT_INTERVAL_S,
        metrics_port=_free_port(),
    )
    log = tmp_path / "faust.log"
    argv = [sys.executable, "-m", "streams", "run", name, "--config", str(config)]
    argv += ["--engine", "faust"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    not_held = len(inputs) - PARTITIONS
    _hold(sim, on=True)
    for run in range(1, KILLS + 2):
        if run == KILLS + 1:
            _hold(sim, on=False)
        with log.open("ab") as sink:
            proc = subprocess.Popen(argv, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            if run <= KILLS:
                # The held heads keep every partition's commit at 0, so each run redoes
                # everything behind them: wait for this run's share of outputs.
                def progressed(k: int = run) -> bool:
                    return _output_count(kafka.bootstrap, name) >= k * not_held

                _wait(f"run {run}", progressed, proc, log)
                time.sleep(4 * COMMIT_INTERVAL_S)  # past the commit interval, then the kill
                _kill(proc)
            else:

                def everything() -> bool:
                    committed, end = committed_vs_end(kafka.bootstrap, f"streams.{name}", raw)
                    return committed == end

                _wait("the commit to reach the end", everything, proc, log)
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
        finally:
            _kill(proc)
    seen, valid = _sources(kafka.bootstrap, name)
    missing = sorted(set(inputs) - set(seen))
    assert missing == [], f"{len(missing)} inputs have no outcome: {missing[:10]}"
    assert set(seen) == set(inputs)
    assert _backwards(valid) == []
    print(f"faust engine: {len(inputs)} inputs, 0 missing, {sum(seen.values())} outcomes")


def test_stock_faust_agent_loses_held_records(
    kafka: LocalKafka, sim_factory: Callable[..., str], invoice_samples: Path, tmp_path: Path
) -> None:
    """The same scenario with a stock faust agent(concurrency=N): held heads are lost."""
    sim = sim_factory(fixture_dirs=[invoice_samples], hang_s=HOLD_S)
    name = new_name("stock")
    source, sink_topic = f"{name}.raw", f"{name}.out"
    inputs = _load(kafka.bootstrap, source, invoice_samples)
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    for fut in admin.create_topics([NewTopic(sink_topic, PARTITIONS, 1)]).values():
        fut.result(timeout=30)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "BENCH_PEER_ID": name,
        "BENCH_PEER_BROKER": kafka.bootstrap,
        "BENCH_PEER_IN": source,
        "BENCH_PEER_OUT": sink_topic,
        "BENCH_PEER_SIM_URL": f"{sim}/v1",
        "BENCH_PEER_CONCURRENCY": "32",
        "BENCH_PEER_DATADIR": str(tmp_path / "peer-data"),
    }
    argv = [sys.executable, "-m", "bench.faust_peer", "worker", "--without-web", "-l", "warn"]
    log = tmp_path / "peer.log"

    def routed() -> set[tuple[int, int]]:
        out = consume_all(kafka.bootstrap, [sink_topic])
        return {tuple(int(x) for x in m.headers["src"].decode().split(":")) for m in out}  # type: ignore[misc]

    _hold(sim, on=True)
    for run in (1, 2):
        if run == 2:
            _hold(sim, on=False)
        with log.open("ab") as sink:
            proc = subprocess.Popen(argv, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            if run == 1:
                _wait(
                    "the unheld records",
                    lambda: len(routed()) >= len(inputs) - PARTITIONS,
                    proc,
                    log,
                )

                def committed_past_heads() -> bool:
                    committed, _end = committed_vs_end(kafka.bootstrap, name, source)
                    return committed >= len(inputs) - PARTITIONS

                _wait("stock faust to commit", committed_past_heads, proc, log)
                time.sleep(STOCK_COMMIT_INTERVAL_S)
            else:

                def caught_up() -> bool:
                    committed, end = committed_vs_end(kafka.bootstrap, name, source)
                    return committed == end

                _wait("the restarted agent to reach the end", caught_up, proc, log)
        finally:
            _kill(proc)
    lost = sorted(set(inputs) - routed())
    print(f"stock faust agent(concurrency=32): {len(inputs)} inputs, {len(lost)} lost: {lost}")
    assert len(lost) >= 1
    assert all(offset == 0 for _p, offset in lost), "only the held heads can be lost"


def _routes_by_key(bootstrap: str, name: str) -> dict[str, str]:
    """The route each input key landed in (every key once: nothing was killed)."""
    out: dict[str, str] = {}
    for msg in consume_all(bootstrap, [f"{name}.{r}" for r in ROUTES]):
        key = (msg.key or b"").decode()
        assert key not in out, f"{key} has two outcomes"
        out[key] = msg.topic.removeprefix(f"{name}.")
    return out


def test_faust_cli_routes_the_demo_inputs_like_the_native_worker(
    kafka: LocalKafka, sim_factory: Callable[..., str], invoice_samples: Path, tmp_path: Path
) -> None:
    """`faust -A streams.faust_app worker` sends the demo's inputs where the native worker
    does, and serves /metrics, /livez and /readyz from faust's web server."""
    inputs, script = demo_inputs()
    routes: dict[str, dict[str, str]] = {}
    for engine in ("native", "faust"):
        # A simulator each: its scripts count attempts per document.
        sim = sim_factory(fixture_dirs=[invoice_samples], script=script)
        name = new_name(engine)
        produce(kafka.bootstrap, f"{name}.raw", [(i.key.encode(), i.value) for i in inputs])
        port = _free_port()
        config = write_config(
            tmp_path / f"{engine}.toml", kafka.bootstrap, sim, name, metrics_port=port
        )
        log = tmp_path / f"{engine}.log"
        if engine == "native":
            argv = [sys.executable, "-m", "streams", "run", name, "--config", str(config)]
        else:
            argv = [sys.executable, "-m", "faust", "-A", "streams.faust_app", "worker"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "STREAMS_CONFIG": str(config)}
        with log.open("ab") as sink:
            proc = subprocess.Popen(argv, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:

            def done(n: str = name) -> bool:
                committed, end = committed_vs_end(kafka.bootstrap, f"streams.{n}", f"{n}.raw")
                return end == len(inputs) and committed == end

            _wait(f"{engine}: every input committed", done, proc, log)
            if engine == "faust":
                base = f"http://127.0.0.1:{port}"
                ready = f"{base}/readyz"
                _wait("faust: /readyz", lambda u=ready: _status(u) == 200, proc, log)
                assert _status(f"{base}/livez") == 200
                metrics = httpx.get(f"{base}/metrics").text
                assert f'streams_records_in_total{{pipeline="{name}"}} {len(inputs)}.0' in metrics
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        finally:
            _kill(proc)
        routes[engine] = _routes_by_key(kafka.bootstrap, name)
    assert len(routes["native"]) == len(inputs)
    assert routes["faust"] == routes["native"]
    assert set(routes["native"].values()) == set(ROUTES)


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.TransportError:
        return 0


def test_faust_engine_over_sasl_ssl_scram_with_exact_acls(
    secure_kafka: SecureKafka, invoice_samples: Path, sim_factory: Any, tmp_path: Path
) -> None:
    """`--engine faust` reaches a SASL_SSL + SCRAM-SHA-512 listener with only the native
    worker's ACLs (security from the one client builder) and routes every input once."""
    batch = mixed_batch(invoice_samples)
    sim = sim_factory(fixture_dirs=[invoice_samples], script=batch.rules)
    name = new_name("fscram")
    prepared(secure_kafka, sim, name, batch)
    kafka_toml = {
        k: v for k, v in secure_kafka.client_settings("worker").items() if k != "password"
    }
    config = write_config(
        tmp_path / "worker.toml", kafka_toml.pop("bootstrap_servers"), sim, name, kafka=kafka_toml,
        metrics_port=_free_port(),
    )  # fmt: skip
    log = tmp_path / "faust.log"
    password = secure_kafka.password("worker")
    proc = spawn_worker(
        config, name, log, env={"STREAMS_KAFKA__PASSWORD": password}, engine="faust"
    )
    try:
        _wait(
            "every input routed",
            lambda: sum(routes_of(secure_kafka, name).values()) >= len(batch.records),
            proc,
            log,
        )
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        _kill(proc)
    assert routes_of(secure_kafka, name) == Counter(batch.expected.values())
    assert password not in log.read_text()


def test_faust_engine_rebalance_drains_and_loses_nothing(
    kafka: LocalKafka, sim_factory: Callable[..., str], invoice_samples: Path, tmp_path: Path
) -> None:
    """A second member joins mid-run: the first drains and commits its revoked partitions
    inside the rebalance (no deadlock with faust's consumer thread); nothing is lost."""
    # ~20 records/s per member: a is still busy when b has started and joined.
    sim = sim_factory(fixture_dirs=[invoice_samples], latency_ms=200)
    name = new_name("frebal")
    raw = f"{name}.raw"
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    for fut in admin.create_topics([NewTopic(raw, PARTITIONS, 1)]).values():
        fut.result(timeout=30)
    texts = [p.read_bytes() for p in sorted(invoice_samples.glob("*.txt"))]
    n = 400
    produce(
        kafka.bootstrap, raw, [(f"k{i % 60}".encode(), texts[i % len(texts)]) for i in range(n)]
    )
    members: list[tuple[subprocess.Popen[bytes], Path]] = []

    def join(member: str) -> tuple[subprocess.Popen[bytes], Path]:
        config = write_config(
            tmp_path / f"{member}.toml", kafka.bootstrap, sim, name,
            kafka={"session_timeout_ms": 6000, "heartbeat_interval_ms": 2000},
            metrics_port=_free_port(), max_in_flight=4, max_buffered=40, cache=False,
        )  # fmt: skip
        log = tmp_path / f"{member}.log"
        members.append((spawn_worker(config, name, log, engine="faust"), log))
        return members[-1]

    try:
        first, first_log = join("a")
        # b joins once a is under way, so a's partitions are revoked while it works.
        _wait(
            "a to route some", lambda: _output_count(kafka.bootstrap, name) >= 50, first, first_log
        )
        second, second_log = join("b")

        def done() -> bool:
            committed, end = committed_vs_end(kafka.bootstrap, f"streams.{name}", raw)
            return committed == end == n

        _wait("both members to commit the end", done, second, second_log)
        assert first.poll() is None, _tail(first_log)
        for proc, _log in members:
            proc.send_signal(signal.SIGTERM)
        for proc, _log in members:
            proc.wait(60)
    finally:
        for proc, _log in members:
            _kill(proc)
    assert "drained revoked partitions" in first_log.read_text()
    inputs = {(m.partition, m.offset) for m in consume_all(kafka.bootstrap, [raw])}
    assert len(inputs) == n
    assert set(_sources(kafka.bootstrap, name)[0]) == inputs
