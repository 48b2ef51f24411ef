"""Never stuck: poison records, oversized outputs, outages, deployment faults, SIGTERM, fencing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.app import build_worker
from streams.devstack.kafka import LocalKafka
from streams.settings import default_cache_dir
from tests.integration.kafka_utils import ROUTES, Message, committed_vs_end, consume_all, produce
from tests.integration.pipeline_utils import (
    new_name,
    run_until,
    settings_for,
    spawn_worker,
    write_config,
)

pytestmark = pytest.mark.integration

MOCK_REGISTRY = {"url": "mock://"}


def _create(bootstrap: str, topic: str, partitions: int = 1, **config: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, partitions, 1, config=config)])
    for fut in futures.values():
        fut.result(timeout=30)


def _texts(samples: Path) -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(samples.glob("*.txt"))]


def _sources(out: list[Message]) -> Counter[tuple[int, int]]:
    """Outcomes per input (partition, offset), from provenance or the envelope's source."""
    from tests.integration.pipeline_utils import valid_data

    seen: Counter[tuple[int, int]] = Counter()
    for msg in out:
        if msg.topic.endswith(".valid"):
            _data, prov = valid_data(msg)
            seen[int(prov["source_partition"]), int(prov["source_offset"])] += 1
        else:
            source = json.loads(msg.value or b"")["source"]
            seen[int(source["partition"]), int(source["offset"])] += 1
    return seen


_ODD_KEY_PRODUCER = """
import asyncio, sys
from aiokafka import AIOKafkaProducer

class RawKey(str):
    # aiokafka's pure-Python batch builder calls key.encode("utf-8"): hand it raw bytes.
    def encode(self, *args, **kwargs):
        return b"\\xff\\xfe-odd"

async def main(bootstrap, topic, value):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, value.encode(), key=b"odd", partition=0, headers=[(RawKey("x"), b"1")]
        )
    finally:
        await producer.stop()

asyncio.run(main(*sys.argv[1:4]))
"""


def _produce_non_utf8_header_key(bootstrap: str, topic: str, value: str) -> None:
    """A record whose header key is not UTF-8 (Kafka stores keys as bytes; Java can't write it)."""
    env = {**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"}
    subprocess.run(
        [sys.executable, "-c", _ODD_KEY_PRODUCER, bootstrap, topic, value],
        check=True,
        env=env,
        timeout=60,
    )


@pytest.mark.slow
async def test_poison_records_and_huge_outputs_never_stop_a_partition(
    kafka: LocalKafka, invoice_samples: Path, sim_factory: Any
) -> None:
    """Each odd record, then an ordinary one, on one partition: all routed, commits to the end."""
    sim = sim_factory(fixture_dirs=[invoice_samples])
    name = new_name("poison")
    raw_topic = f"{name}.raw"
    _create(kafka.bootstrap, raw_topic, **{"max.message.bytes": str(8 * 1024 * 1024)})
    texts = _texts(invoice_samples)
    ordinary = iter(texts * 3)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "message.max.bytes": 8_000_000})
    expected: dict[int, str] = {}

    def send(
        value: bytes | None, key: bytes | None, headers: Any = None, expect: str = "valid"
    ) -> None:
        producer.produce(raw_topic, value=value, key=key, headers=headers, partition=0)
        producer.flush(30)
        expected[len(expected)] = expect
        producer.produce(raw_topic, value=next(ordinary).encode(), key=b"same", partition=0)
        producer.flush(30)
        expected[len(expected)] = "valid"

    send(None, b"tomb", expect="dlq")  # a tombstone
    send(next(ordinary).encode(), None)  # a null key
    send(next(ordinary).encode(), b"hn", headers=[("trace", None), ("ok", b"1")])  # null header
    send(next(ordinary).encode(), b"hb", headers=[("big", b"x" * 70_000)], expect="dlq")
    send(("word " * 240_000).encode(), b"huge-text", expect="over-budget")  # 1.2 MB text
    send(bytes(range(256)) * 3200, b"huge-bin", expect="dlq")  # 800 KiB binary
    _produce_non_utf8_header_key(kafka.bootstrap, raw_topic, next(ordinary))
    expected[len(expected)] = "valid"
    produce(kafka.bootstrap, raw_topic, [(b"last", next(ordinary).encode())])
    expected[len(expected)] = "valid"

    settings = settings_for(kafka, sim, name, worker={"cache": False})
    worker = build_worker(settings, name, registry=SchemaRegistryClient.new_client(MOCK_REGISTRY))
    await run_until([worker], len(expected), timeout=240)  # raises if the worker crashed

    out = consume_all(kafka.bootstrap, [f"{name}.{r}" for r in ROUTES])
    assert _sources(out) == Counter({(0, o): 1 for o in expected}), "one outcome per input"
    got = {}
    for msg in out:
        route = msg.topic.removeprefix(f"{name}.")
        if route == "valid":
            from tests.integration.pipeline_utils import valid_data

            got[int(valid_data(msg)[1]["source_offset"])] = route
        else:
            env = json.loads(msg.value or b"")
            got[int(env["source"]["offset"])] = route
            assert len(msg.value or b"") < 1024 * 1024
            if env["source"]["offset"] in (8, 10):  # the 1.2 MB text and the 800 KiB binary
                assert env["truncated"] is True
                assert env["input_sha256"]
                assert env["input_bytes"] > 700_000
    assert got == expected
    reasons = {
        json.loads(m.value or b"")["source"]["offset"]: json.loads(m.value or b"")["reason"]
        for m in out
        if not m.topic.endswith(".valid")
    }
    assert reasons[0] == "tombstone"
    assert reasons[6] == "headers_too_large"
    committed, end = committed_vs_end(kafka.bootstrap, worker.group_id, raw_topic)
    assert committed == end
    null_header = next(
        m
        for m in out
        if m.topic.endswith(".valid") and m.key == b"hn"  # keyed by the input key
    )
    assert null_header is not None


async def test_valid_record_over_the_topic_limit_goes_to_the_dlq(
    kafka: LocalKafka, invoice_samples: Path, sim_factory: Any
) -> None:
    """A valid topic that accepts 1,500 bytes: the record goes to the DLQ as output_too_large."""
    sim = sim_factory(fixture_dirs=[invoice_samples])
    name = new_name("small")
    _create(kafka.bootstrap, f"{name}.raw")
    _create(kafka.bootstrap, f"{name}.valid", **{"max.message.bytes": "1500"})
    texts = _texts(invoice_samples)[:3]
    produce(
        kafka.bootstrap,
        f"{name}.raw",
        [(f"k{i}".encode(), t.encode()) for i, t in enumerate(texts)],
    )
    settings = settings_for(kafka, sim, name, worker={"cache": False})
    worker = build_worker(settings, name, registry=SchemaRegistryClient.new_client(MOCK_REGISTRY))
    await run_until([worker], len(texts))
    out = consume_all(kafka.bootstrap, [f"{name}.{r}" for r in ROUTES])
    assert [m.topic for m in out] == [f"{name}.dlq"] * 3
    envs = [json.loads(m.value or b"") for m in out]
    assert {e["reason"] for e in envs} == {"output_too_large"}
    assert all(e["truncated"] and e["input_sha256"] for e in envs)
    assert worker.stats.too_large == 3


async def test_outage_opens_the_breaker_and_dead_letters_nothing(
    kafka: LocalKafka, invoice_samples: Path, sim_factory: Any
) -> None:
    """Every request fails for 4 s: the breaker opens, no record is dead-lettered, all valid."""
    sim = sim_factory(fixture_dirs=[invoice_samples], latency_ms=50)
    name = new_name("outage")
    texts = _texts(invoice_samples)[:12]
    settings = settings_for(
        kafka,
        sim,
        name,
        budgets={"transient_retries": 1, "max_record_seconds": 60},
        worker={"cache": False, "pause_backoff_s": 0.5},
    )
    httpx.post(f"{sim}/_sim/outage", json={"status": 503, "seconds": 4}).raise_for_status()
    produce(
        kafka.bootstrap,
        f"{name}.raw",
        [(f"k{i}".encode(), t.encode()) for i, t in enumerate(texts)],
    )
    worker = build_worker(settings, name, registry=SchemaRegistryClient.new_client(MOCK_REGISTRY))
    await run_until([worker], len(texts), timeout=120)
    out = consume_all(kafka.bootstrap, [f"{name}.{r}" for r in ROUTES])
    assert sorted(m.topic for m in out) == [f"{name}.valid"] * len(texts)
    assert worker.guard.trips >= 1


async def test_deployment_fault_holds_probes_and_resumes(
    kafka: LocalKafka, invoice_samples: Path, sim_factory: Any
) -> None:
    """A 401 for 3 s holds the pipeline (no DLQ); a budget-free probe sees it clear; all valid."""
    sim = sim_factory(fixture_dirs=[invoice_samples])
    name = new_name("revoked")
    texts = _texts(invoice_samples)[:6]
    settings = settings_for(kafka, sim, name, worker={"cache": False})
    httpx.post(f"{sim}/_sim/outage", json={"status": 401, "seconds": 3}).raise_for_status()
    produce(
        kafka.bootstrap,
        f"{name}.raw",
        [(f"k{i}".encode(), t.encode()) for i, t in enumerate(texts)],
    )
    worker = build_worker(settings, name, registry=SchemaRegistryClient.new_client(MOCK_REGISTRY))
    held: list[str] = []

    async def watch() -> None:
        while True:
            if worker.guard.held_reason:
                held.append(worker.guard.held_reason)
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    try:
        await run_until([worker], len(texts), timeout=120)
    finally:
        watcher.cancel()
    out = consume_all(kafka.bootstrap, [f"{name}.{r}" for r in ROUTES])
    assert sorted(m.topic for m in out) == [f"{name}.valid"] * len(texts)
    assert held
    assert "401" in held[0]
    requests = httpx.get(f"{sim}/_sim/requests").json()["requests"]
    assert any(r["endpoint"] == "models" for r in requests), "the probe spends no tokens"


async def test_two_exactly_once_workers_with_one_pid_do_not_fence(
    kafka: LocalKafka, invoice_samples: Path, sim_factory: Any
) -> None:
    """Two exactly-once workers in one process (same PID), own instance ids: no fencing, no dups."""
    sim = sim_factory(fixture_dirs=[invoice_samples], latency_ms=20)
    name = new_name("eos2")
    _create(kafka.bootstrap, f"{name}.raw", partitions=4)
    texts = _texts(invoice_samples)
    records = [(f"k{i % 20}".encode(), texts[i % len(texts)].encode()) for i in range(120)]
    produce(kafka.bootstrap, f"{name}.raw", records)
    workers = [
        build_worker(
            settings_for(
                kafka,
                sim,
                name,
                worker={"cache": False, "exactly_once": True, "instance_id": f"pod-{i}"},
            ),
            name,
            registry=SchemaRegistryClient.new_client(MOCK_REGISTRY),
        )
        for i in range(2)
    ]
    await run_until(workers, len(records), timeout=240)
    out = consume_all(kafka.bootstrap, [f"{name}.{r}" for r in ROUTES])
    assert len(out) == len(records)
    assert max(_sources(out).values()) == 1


@pytest.mark.slow
def test_sigterm_with_64_hanging_calls_exits_inside_the_grace(
    kafka: LocalKafka, invoice_samples: Path, sim_factory: Any, tmp_path: Path
) -> None:
    """SIGTERM with 64 calls hanging for 120 s: exits well under 30 s, every client closed."""
    sim = sim_factory(fixture_dirs=[invoice_samples], latency_ms=120_000)
    name = new_name("term")
    texts = _texts(invoice_samples)
    produce(
        kafka.bootstrap,
        f"{name}.raw",
        [(f"k{i}".encode(), texts[i % len(texts)].encode()) for i in range(80)],
    )
    config = write_config(
        tmp_path / "w.toml",
        kafka.bootstrap,
        sim,
        name,
        timeout_s=300,
        cache=False,
        max_in_flight=64,
        shutdown_timeout_s=10,
    )
    log = tmp_path / "worker.log"
    proc = spawn_worker(config, name, log)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            in_flight = int(httpx.get(f"{sim}/_sim/stats").json()["in_flight"])
            if in_flight >= 64:
                break
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        assert in_flight >= 64, f"only {in_flight} calls in flight"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        exit_s = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    reports = default_cache_dir() / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    figures = {"hanging_calls": in_flight, "exit_s": round(exit_s, 2), "code": proc.returncode}
    (reports / "sigterm.json").write_text(json.dumps(figures))
    assert exit_s < 30, text[-3000:]
    assert proc.returncode == 0, text[-3000:]
    assert "Unclosed" not in text, text[-3000:]
    assert committed_vs_end(kafka.bootstrap, f"streams.{name}", f"{name}.raw")[0] == 0


async def test_a_revoke_drains_for_a_bounded_time_then_hands_over(
    kafka: LocalKafka, invoice_samples: Path, sim_factory: Any
) -> None:
    """Calls hanging 60 s: a second member joins, the revoke gives up after its bound."""
    sim = sim_factory(fixture_dirs=[invoice_samples], latency_ms=60_000)
    name = new_name("revoke")
    _create(kafka.bootstrap, f"{name}.raw", partitions=4)
    texts = _texts(invoice_samples)
    produce(
        kafka.bootstrap,
        f"{name}.raw",
        [(f"k{i}".encode(), texts[i % len(texts)].encode()) for i in range(40)],
    )

    def member() -> Any:
        settings = settings_for(
            kafka,
            sim,
            name,
            llm={"timeout_s": 120},
            kafka_opts={"rebalance_timeout_ms": 10_000, "session_timeout_ms": 10_000},
            worker={"cache": False, "shutdown_timeout_s": 6, "revoke_drain_fraction": 0.4},
        )
        return build_worker(settings, name, registry=SchemaRegistryClient.new_client(MOCK_REGISTRY))

    first, second = member(), member()
    assert first.revoke_timeout_s == pytest.approx(4.0)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(first.run(stop))]
    try:
        async with asyncio.timeout(60):
            while first._tracker.in_flight() < 20:
                await asyncio.sleep(0.2)
            joined = time.monotonic()
            tasks.append(asyncio.create_task(second.run(stop)))
            while not (second._consumer and second._consumer.assignment()):
                assert not any(t.done() for t in tasks)
                await asyncio.sleep(0.1)
            handover_s = time.monotonic() - joined
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for w in (first, second):
            await w.pipeline.extractor.provider.aclose()
    assert first.stats.cancelled > 0, "the revoke should have given up on the hanging calls"
    assert handover_s < 10.0, f"the new member waited {handover_s:.1f}s (rebalance timeout 10s)"
    assert first.stats.total_out == second.stats.total_out == 0  # nothing half-done was produced
