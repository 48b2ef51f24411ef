"""Fault tests on the real broker: a fault storm, a worker killed mid-run, a broker restart."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.app import build_worker
from streams.devstack.kafka import LocalKafka
from streams.settings import default_cache_dir
from tests.integration.kafka_utils import ROUTES, Message, consume_all, produce
from tests.integration.pipeline_utils import (
    new_name,
    pipeline_settings,
    run_until,
    settings_for,
    spawn_worker,
    valid_data,
    write_config,
)

pytestmark = pytest.mark.integration

REPORTS = default_cache_dir() / "reports"


def _report(name: str, figures: dict[str, Any]) -> None:
    """Keep the measured figures (for the issue notes) and show them in the test log."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{name}.json").write_text(json.dumps(figures, indent=2, sort_keys=True))
    print(f"\n{name}: {json.dumps(figures, sort_keys=True)}")


def _inputs(samples: Path, n: int, keys: int | None = None) -> list[tuple[bytes, bytes]]:
    texts = [p.read_text(encoding="utf-8") for p in sorted(samples.glob("*.txt"))]
    out = []
    for i in range(n):
        key = f"k{i % keys:04d}" if keys else f"doc-{i:05d}"
        body = {"id": f"doc-{i:05d}", "text": texts[i % len(texts)]}
        out.append((key.encode(), json.dumps(body).encode()))
    return out


@pytest.mark.slow
async def test_fault_storm_accounting_and_spend_cap(
    kafka: LocalKafka, invoice_samples: Path, sim_factory: Any
) -> None:
    """1,000 inputs under 5xx/429/malformed/invalid/hang faults: one outcome each, spend <= cap."""
    sim = sim_factory(
        fixture_dirs=[invoice_samples],
        fault_mix={
            "http_500": 0.2,
            "http_429": 0.1,
            "malformed": 0.1,
            "invalid": 0.1,
            "hang": 0.005,
        },
        seed=7,
        hang_s=4.0,
        latency_ms=5,
    )
    name = new_name("storm")
    cap = 0.20
    settings = settings_for(
        kafka,
        sim,
        name,
        llm={"timeout_s": 1.5},
        budgets={"spend_cap_usd": cap, "transient_retries": 6, "backoff_max_s": 1.2},
        worker={"cache": False, "max_in_flight": 64},
    )
    records = _inputs(invoice_samples, 1000)
    produce(kafka.bootstrap, f"{name}.raw", records)
    worker = build_worker(
        settings, name, registry=SchemaRegistryClient.new_client({"url": "mock://"})
    )
    started = time.monotonic()
    await run_until([worker], len(records), timeout=600)
    elapsed = time.monotonic() - started

    out = consume_all(kafka.bootstrap, [f"{name}.{r}" for r in ROUTES])
    per_key = Counter(m.key for m in out)
    assert set(per_key) == {k for k, _ in records}
    assert max(per_key.values()) == 1, "an input produced more than one outcome"
    routes = Counter(m.topic.removeprefix(f"{name}.") for m in out)
    spent, retries, attempts = 0.0, 0, 0
    for msg in out:
        if msg.topic.endswith(".valid"):
            _data, prov = valid_data(msg)
            spent += float(prov["cost_usd"])
            attempts += int(prov["attempts"])
            retries += int(msg.headers.get("streams.attempts", b"1")) - 1
        else:
            env = json.loads(msg.value or b"")
            spent += sum(
                a["input_tokens"] * 0.15e-6 + a["output_tokens"] * 0.6e-6 for a in env["attempts"]
            )
            attempts += len(env["attempts"])
    assert spent <= cap + 1e-9
    import httpx

    stats = httpx.get(f"{sim}/_sim/stats").json()
    _report(
        "fault_storm",
        {
            "inputs": len(records),
            "routes": dict(routes),
            "model_answers": attempts,
            "simulator_stats": stats,
            "spend_usd": round(spent, 6),
            "cap_usd": cap,
            "seconds": round(elapsed, 1),
            "circuit_trips": worker.guard.trips,
        },
    )
    assert routes["valid"] > 0
    assert routes["over-budget"] > 0


#: Documents that fail the same way on every request, one directive each (issue: "never stuck").
PERSISTENT = ("http_429_too_large", "http_500", "hang", "empty_choices", "http_502_html")


@pytest.mark.slow
async def test_deterministic_fault_storm_with_an_outage_phase(
    kafka: LocalKafka, invoice_samples: Path, sim_factory: Any
) -> None:
    """1,000 inputs, 10% failing persistently, a 60 s total outage: all routed, none by age."""
    sim = sim_factory(
        fixture_dirs=[invoice_samples],
        fault_mix={"http_500": 0.1, "http_429": 0.05, "malformed": 0.05, "invalid": 0.05},
        seed=11,
        hang_s=4.0,
        latency_ms=5,
        retry_after_s=0,
    )
    name = new_name("never")
    cap = 1.0
    settings = settings_for(
        kafka,
        sim,
        name,
        llm={"timeout_s": 1.5},
        budgets={
            "spend_cap_usd": cap,
            "transient_retries": 4,
            "backoff_max_s": 1.0,
            "max_record_seconds": 30,
        },
        worker={"cache": False, "max_in_flight": 64, "pause_backoff_s": 2.0},
    )
    texts = [p.read_text(encoding="utf-8") for p in sorted(invoice_samples.glob("*.txt"))]
    records: list[tuple[bytes, bytes]] = []
    persistent: dict[bytes, str] = {}
    for i in range(1000):
        key = f"doc-{i:05d}".encode()
        text = texts[i % len(texts)]
        if i % 10 == 3:
            fault = PERSISTENT[(i // 10) % len(PERSISTENT)]
            text = f"{text}\nref {i}\n[[sim: {fault}]]\n"
            persistent[key] = fault
        records.append((key, json.dumps({"id": key.decode(), "text": text}).encode()))
    produce(kafka.bootstrap, f"{name}.raw", records)
    worker = build_worker(
        settings, name, registry=SchemaRegistryClient.new_client({"url": "mock://"})
    )
    import httpx

    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    outage: dict[str, float] = {}
    try:
        async with asyncio.timeout(480):
            while worker.stats.total_out < 300:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.1)
            outage["start"] = time.time()
            httpx.post(f"{sim}/_sim/outage", json={"status": 503, "seconds": 60})
            await asyncio.sleep(60)
            outage["end"] = time.time()
            ticks = 0
            while worker.stats.total_out < len(records):
                assert not task.done(), task.exception()
                await asyncio.sleep(0.1)
                ticks += 1
                if ticks % 50 == 0:
                    print(
                        f"storm: {worker.stats.total_out}/{len(records)} routed, "
                        f"{worker._tracker.in_flight()} in flight, guard {worker.guard.state}",
                        flush=True,
                    )
            last_routed = time.time()
    finally:
        stop.set()
        await task
        await worker.pipeline.extractor.provider.aclose()

    out = consume_all(kafka.bootstrap, [f"{name}.{r}" for r in ROUTES])
    per_key = Counter(m.key for m in out)
    assert set(per_key) == {k for k, _ in records}
    assert max(per_key.values()) == 1, "an input produced more than one outcome"
    routes = Counter(m.topic.removeprefix(f"{name}.") for m in out)
    reasons: Counter[str] = Counter()
    spent = 0.0
    by_age_in_outage = 0
    persistent_routes: Counter[str] = Counter()
    for msg in out:
        if msg.topic.endswith(".valid"):
            spent += float(valid_data(msg)[1]["cost_usd"])
            route = "valid"
        else:
            env = json.loads(msg.value or b"")
            spent += float(env["cost_usd"])
            reasons[f"{env['route']}:{env['reason']}"] += 1
            route = f"{env['route']}:{env['reason']}"
            at = env["processed_at"] / 1000
            if (
                env["reason"] == "provider_transient_exhausted"
                and "max_record_seconds" in env["message"]
                and outage["start"] + 1 < at < outage["end"]
            ):
                by_age_in_outage += 1
        if msg.key in persistent:
            persistent_routes[f"{persistent[msg.key]} -> {route}"] += 1
    figures = {
        "inputs": len(records),
        "persistent_documents": len(persistent),
        "routes": dict(routes),
        "reasons": dict(reasons),
        "persistent_routes": dict(persistent_routes),
        "outage_s": round(outage["end"] - outage["start"], 1),
        "last_routed_after_outage_s": round(last_routed - outage["end"], 1),
        "routed_by_age_during_outage": by_age_in_outage,
        "spend_usd": round(spent, 6),
        "cap_usd": cap,
        "circuit_trips": worker.guard.trips,
        "simulator_stats": httpx.get(f"{sim}/_sim/stats").json(),
    }
    _report("never_stuck_storm", figures)
    assert last_routed - outage["end"] <= 120
    assert by_age_in_outage == 0
    assert spent <= cap + 1e-9
    assert worker.guard.trips >= 1
    assert reasons["over-budget:provider_request_too_large"] == sum(
        1 for f in persistent.values() if f == "http_429_too_large"
    )


def _count_outputs(bootstrap: str, name: str) -> int:
    return len(consume_all(bootstrap, [f"{name}.{r}" for r in ROUTES], timeout=10))


def _wait_outputs(bootstrap: str, name: str, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n = _count_outputs(bootstrap, name)
        if n >= at_least:
            return n
        time.sleep(0.5)
    raise AssertionError(f"only {n} outputs after {timeout}s (wanted {at_least})")


def _first_occurrence_order(valid: list[Message]) -> dict[bytes, list[int]]:
    seen: set[tuple[bytes, int]] = set()
    order: dict[bytes, list[int]] = {}
    for msg in sorted(valid, key=lambda m: (m.partition, m.offset)):
        _data, prov = valid_data(msg)
        assert msg.key is not None
        ident = (msg.key, int(prov["source_offset"]))
        if ident in seen:
            continue
        seen.add(ident)
        order.setdefault(msg.key, []).append(int(prov["source_offset"]))
    return order


@pytest.mark.slow
@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_worker_killed_mid_flight_loses_nothing(
    kafka: LocalKafka,
    invoice_samples: Path,
    sim_factory: Any,
    tmp_path: Path,
    registry_url: str,
    exactly_once: bool,
) -> None:
    """kill -9 with many calls in flight, restart: nothing lost, same-key order kept."""
    sim = sim_factory(fixture_dirs=[invoice_samples], latency_ms=150)
    name = new_name("kill")
    extra: dict[str, Any] = {"cache": False}
    if exactly_once:
        extra |= {"exactly_once": True, "instance_id": "w1"}
    config = write_config(
        tmp_path / "w.toml", kafka.bootstrap, sim, name, registry=registry_url, **extra
    )
    records = _inputs(invoice_samples, 400, keys=40)
    produce(kafka.bootstrap, f"{name}.raw", records)
    log = tmp_path / "worker.log"
    first = spawn_worker(config, name, log)
    try:
        _wait_outputs(kafka.bootstrap, name, 60, timeout=120)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    second = spawn_worker(config, name, log)
    try:
        _wait_outputs(kafka.bootstrap, name, len(records), timeout=240)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)

    out = consume_all(kafka.bootstrap, [f"{name}.{r}" for r in ROUTES])
    sources: Counter[tuple[bytes | None, int]] = Counter()
    data: dict[tuple[bytes | None, int], dict[str, Any]] = {}
    for msg in out:
        assert msg.topic.endswith(".valid"), log.read_text()[-3000:]
        record, prov = valid_data(msg)
        ident = (msg.key, int(prov["source_offset"]))
        sources[ident] += 1
        if ident in data:
            assert data[ident] == record, "a duplicate differs from the original"
        data[ident] = record
    assert len(sources) == len(records), "an input has no output"
    duplicates = sum(c - 1 for c in sources.values())
    if exactly_once:
        assert duplicates == 0
    for key, offsets in _first_occurrence_order(
        [m for m in out if m.topic.endswith(".valid")]
    ).items():
        assert offsets == sorted(offsets), f"key {key!r} out of order: {offsets}"
    _report(
        f"kill_{'eos' if exactly_once else 'alo'}",
        {"inputs": len(records), "outputs": len(out), "duplicates": duplicates},
    )


@pytest.mark.slow
async def test_broker_restart_mid_run_recovers(
    invoice_samples: Path, sim_factory: Any, tmp_path: Path
) -> None:
    """The broker restarts mid-run; the worker recovers on its own and nothing is lost."""
    broker = LocalKafka(default_cache_dir(), data_dir=tmp_path / "kafka", progress=print)
    broker.start()
    try:
        sim = sim_factory(fixture_dirs=[invoice_samples], latency_ms=40)
        name = new_name("restart")
        settings = pipeline_settings(broker.bootstrap, sim, name, worker={"cache": False})
        records = _inputs(invoice_samples, 300, keys=30)
        produce(broker.bootstrap, f"{name}.raw", records)
        worker = build_worker(
            settings, name, registry=SchemaRegistryClient.new_client({"url": "mock://"})
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            async with asyncio.timeout(120):
                while worker.stats.total_out < 60:
                    await asyncio.sleep(0.05)
            await asyncio.to_thread(broker.restart)
            async with asyncio.timeout(300):
                while True:
                    done = await asyncio.to_thread(_count_outputs, broker.bootstrap, name)
                    if done >= len(records) and worker.stats.total_out >= len(records):
                        break
                    if task.done():
                        task.result()
                    await asyncio.sleep(1.0)
        finally:
            stop.set()
            await task
            await worker.pipeline.extractor.provider.aclose()
        out = consume_all(broker.bootstrap, [f"{name}.{r}" for r in ROUTES])
        per_key_offsets = {(m.key, valid_data(m)[1]["source_offset"]) for m in out}
        assert len(per_key_offsets) == len(records)
        _report(
            "broker_restart",
            {"inputs": len(records), "outputs": len(out), "duplicates": len(out) - len(records)},
        )
    finally:
        broker.stop()
