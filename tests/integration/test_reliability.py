"""Replay, redrive, the spend cap across workers, and exactly-once mode, on the real broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.app import build_worker
from streams.devstack.kafka import CONSUMER_GROUPS_MAIN, LocalKafka, run_kafka_tool
from streams.errors import ConfigError
from streams.redrive import redrive
from streams.replay import reset_offsets
from streams.textnorm import text_sha256
from tests.integration.kafka_utils import ROUTES, consume_all, produce
from tests.integration.pipeline_utils import (
    new_name,
    run_until,
    same_record,
    settings_for,
    sim_requests,
    sim_reset,
    valid_data,
)

pytestmark = pytest.mark.integration


def _samples(root: Path, n: int) -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(root.glob("*.txt"))[:n]}


@pytest.mark.parametrize("tool", ["streams", "kafka-consumer-groups"])
async def test_replay_makes_zero_model_calls(
    kafka: LocalKafka, simulator: str, invoice_samples: Path, tool: str
) -> None:
    """After an offset reset (ours or Kafka's tool), a replay is served from the cache."""
    name = new_name("replay")
    texts = _samples(invoice_samples, 6)
    settings = settings_for(kafka, simulator, name)
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    produce(kafka.bootstrap, f"{name}.raw", [(k.encode(), v.encode()) for k, v in texts.items()])
    sim_reset(simulator)
    first = build_worker(settings, name, registry=registry)
    await run_until([first], len(texts))
    calls_first = len(sim_requests(simulator))
    assert calls_first >= len(texts)

    group = first.group_id
    if tool == "streams":
        reset_offsets(kafka.bootstrap, group, f"{name}.raw", to_earliest=True, progress=print)
    else:
        done = run_kafka_tool(
            kafka.cache_dir,
            CONSUMER_GROUPS_MAIN,
            [
                *("--bootstrap-server", kafka.bootstrap, "--group", group),
                *("--topic", f"{name}.raw", "--reset-offsets", "--to-earliest", "--execute"),
            ],
        )
        assert done.returncode == 0, done.stderr
    sim_reset(simulator)
    second = build_worker(settings, name, registry=registry)
    await run_until([second], len(texts))
    assert sim_requests(simulator) == []

    valid = consume_all(kafka.bootstrap, [f"{name}.valid"])
    assert len(valid) == 2 * len(texts)
    by_key: dict[bytes, list[tuple[dict[str, object], dict[str, object]]]] = {}
    for msg in valid:
        assert msg.key is not None
        by_key.setdefault(msg.key, []).append(valid_data(msg))
    for (data1, prov1), (data2, prov2) in by_key.values():
        assert data1 == data2
        assert same_record(data1, data2)
        assert (prov1["cache_hit"], prov2["cache_hit"]) == (False, True)
        assert prov2["model_reported"] == prov1["model_reported"]
        assert prov2["attempts"] == 0


async def test_replay_refuses_while_workers_run(
    kafka: LocalKafka, simulator: str, invoice_samples: Path
) -> None:
    """Resetting offsets of a group with live members fails with a clear message."""
    import asyncio

    name = new_name("busy")
    settings = settings_for(kafka, simulator, name)
    texts = _samples(invoice_samples, 2)
    produce(kafka.bootstrap, f"{name}.raw", [(k.encode(), v.encode()) for k, v in texts.items()])
    worker = build_worker(
        settings, name, registry=SchemaRegistryClient.new_client({"url": "mock://"})
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(60):
            while worker.stats.total_out < 2:
                await asyncio.sleep(0.1)
        with pytest.raises(ConfigError, match="running member"):
            await asyncio.to_thread(
                reset_offsets, kafka.bootstrap, worker.group_id, f"{name}.raw", to_earliest=True
            )
    finally:
        stop.set()
        await task
        await worker.pipeline.extractor.provider.aclose()


async def test_spend_cap_holds_across_two_workers(
    kafka: LocalKafka, simulator: str, invoice_samples: Path
) -> None:
    """Two workers share one pipeline cap and a tenant cap through Kafka; spend stays under."""
    name = new_name("spend")
    cap, tenant_cap = 0.006, 0.001
    settings = settings_for(
        kafka,
        simulator,
        name,
        budgets={"spend_cap_usd": cap, "tenant_caps": {"acme": tenant_cap}},
        worker={"cache": False},
    )
    texts = _samples(invoice_samples, 23)
    records = []
    for i, (key, text) in enumerate(texts.items()):
        body: dict[str, object] = {"id": key, "text": text}
        if i % 3 == 0:
            body["tenant"] = "acme"
        records.append((key.encode(), json.dumps(body).encode()))
    produce(kafka.bootstrap, f"{name}.raw", records)
    sim_reset(simulator)
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    workers = [build_worker(settings, name, registry=registry) for _ in range(2)]
    await run_until(workers, len(records))

    out = consume_all(kafka.bootstrap, [f"{name}.{r}" for r in ROUTES])
    assert len(out) == len(records)
    assert len({m.key for m in out}) == len(records)
    spent = tenant_spent = 0.0
    tripped: set[str] = set()
    tenant_keys = {k for k, v in records if b'"tenant"' in v}
    for msg in out:
        if msg.topic.endswith(".valid"):
            _data, prov = valid_data(msg)
            cost = float(prov["cost_usd"])
        else:
            env = json.loads(msg.value or b"")
            assert msg.topic.endswith(".over-budget"), env
            tripped.add(env["budget"]["name"])
            cost = sum(
                a["input_tokens"] * 0.15e-6 + a["output_tokens"] * 0.6e-6 for a in env["attempts"]
            )
        spent += cost
        if msg.key in tenant_keys:
            tenant_spent += cost
    assert spent <= cap
    assert tenant_spent <= tenant_cap
    assert {"spend_cap:pipeline", "spend_cap:tenant:acme"} <= tripped
    for w in workers:
        spend = w.pipeline.extractor.spend
        assert spend is not None


async def test_exactly_once_outputs_no_duplicates(
    kafka: LocalKafka, simulator: str, invoice_samples: Path
) -> None:
    """In exactly-once mode a read_committed consumer sees one output per input."""
    name = new_name("eos")
    settings = settings_for(
        kafka, simulator, name, worker={"exactly_once": True, "instance_id": "w1"}
    )
    texts = _samples(invoice_samples, 8)
    records = [(k.encode(), v.encode()) for k, v in texts.items()]
    records.append((b"garbage", b"\xff\xfe"))
    produce(kafka.bootstrap, f"{name}.raw", records)
    sim_reset(simulator, {text_sha256(next(iter(texts.values()))): ["http_500", "valid"]})
    worker = build_worker(
        settings, name, registry=SchemaRegistryClient.new_client({"url": "mock://"})
    )
    await run_until([worker], len(records))
    out = consume_all(kafka.bootstrap, [f"{name}.{r}" for r in ROUTES])
    assert sorted(m.key or b"" for m in out) == sorted(k or b"" for k, _ in records)
    assert worker.stats.commits >= 1


async def test_redrive_puts_records_back_with_lineage(
    kafka: LocalKafka, simulator: str, invoice_samples: Path
) -> None:
    """Over-budget records are re-injected into the raw topic with lineage headers."""
    name = new_name("redrive")
    settings = settings_for(kafka, simulator, name, budgets={"max_input_tokens": 50})
    texts = _samples(invoice_samples, 3)
    produce(kafka.bootstrap, f"{name}.raw", [(k.encode(), v.encode()) for k, v in texts.items()])
    worker = build_worker(
        settings, name, registry=SchemaRegistryClient.new_client({"url": "mock://"})
    )
    await run_until([worker], len(texts))
    result = redrive(kafka.bootstrap, f"{name}.over-budget", f"{name}.raw", progress=print)
    assert (result.read, result.redriven, result.skipped) == (3, 3, 0)
    raw = consume_all(kafka.bootstrap, [f"{name}.raw"])
    assert len(raw) == 6
    redriven = [m for m in raw if "streams.redrive-of" in m.headers]
    assert len(redriven) == 3
    for msg in redriven:
        body = json.loads(msg.value or b"")
        assert msg.key is not None
        assert body["id"] == msg.key.decode()
        assert body["text"] == texts[body["id"]]
        assert msg.headers["streams.redrive-of"].startswith(f"{name}.over-budget[".encode())
        assert msg.headers["streams.redrive-reason"] == b"budget:record_input_tokens"
