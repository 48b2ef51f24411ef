"""End to end on the real broker: every route, the accounting invariant, Avro decoding."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from contracts import get_contract
from streams.app import build_worker
from streams.devstack.kafka import LocalKafka
from streams.encode import decode_wire
from streams.settings import Settings, load_settings
from streams.textnorm import text_sha256
from streams.worker import Worker
from tests.integration.kafka_utils import ROUTES, committed_vs_end, consume_all, produce

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _settings(kafka: LocalKafka, sim_url: str, name: str, **budgets: Any) -> Settings:
    return load_settings(
        None,
        kafka={"bootstrap_servers": kafka.bootstrap},
        llm={"base_url": f"{sim_url}/v1", "model": "sim-extractor-1", "timeout_s": 5},
        budgets={"backoff_base_s": 0.05, "backoff_max_s": 1.5, **budgets},
        worker={"commit_interval_s": 0.2, "pause_backoff_s": 0.5},
        pipelines=[
            {
                "name": name,
                "input_topic": f"{name}.raw",
                "contract": "invoice",
                "contract_version": 1,
            }
        ],
    )


async def _run_until(worker: Worker, expected: int, timeout: float = 120.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(timeout):
            while worker.stats.total_out < expected:
                if task.done():
                    task.result()
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
        await worker.pipeline.extractor.provider.aclose()


def _script(sim_url: str, rules: dict[str, list[str]]) -> None:
    httpx.delete(f"{sim_url}/_sim/requests").raise_for_status()
    httpx.delete(f"{sim_url}/_sim/script").raise_for_status()
    httpx.post(f"{sim_url}/_sim/script", json={"rules": rules}).raise_for_status()


async def test_every_route_and_exactly_one_outcome_per_input(
    kafka: LocalKafka,
    simulator: str,
    invoice_samples: Path,
    registry_client: SchemaRegistryClient,
) -> None:
    """Inputs for all four routes each land in exactly one output topic, offsets committed."""
    name = f"it-{uuid.uuid4().hex[:8]}"
    samples = sorted(invoice_samples.glob("*.txt"))[:6]
    texts = {p.stem: p.read_text(encoding="utf-8") for p in samples}
    stems = list(texts)
    _script(
        simulator,
        {
            text_sha256(texts[stems[1]]): ["malformed", "valid"],
            text_sha256(texts[stems[2]]): ["http_429", "valid"],
            text_sha256(texts[stems[3]]): ["truncated", "valid"],
            text_sha256(texts[stems[4]]): ["http_400"],
        },
    )
    records: list[tuple[bytes | None, bytes]] = []
    expected: dict[str, str] = {}
    for i, (stem, text) in enumerate(texts.items()):
        value = text.encode() if i % 2 == 0 else json.dumps({"id": stem, "text": text}).encode()
        records.append((stem.encode(), value))
        expected[stem] = "dlq" if i == 4 else "valid"
    bad = invoice_samples / "_bad" / "bad-total.txt"
    records.append((b"bad-total", bad.read_bytes()))
    expected["bad-total"] = "invalid"
    records.append((b"huge", ("INVOICE line " * 20000).encode()))
    expected["huge"] = "over-budget"
    records.append((b"not-utf8", b"\xff\xfe Rechnung \xe9"))
    expected["not-utf8"] = "dlq"
    records.append((b"broken-envelope", b'{"id": "x", "text": "unterminated'))
    expected["broken-envelope"] = "dlq"
    records.append((b"tombstone-ish", b"   "))
    expected["tombstone-ish"] = "dlq"

    settings = _settings(kafka, simulator, name)
    produce(kafka.bootstrap, f"{name}.raw", records)
    worker = build_worker(settings, name, registry=registry_client)
    await _run_until(worker, len(records))

    outputs = consume_all(kafka.bootstrap, [f"{name}.{r}" for r in ROUTES])
    landed: dict[str, list[str]] = {}
    for msg in outputs:
        assert msg.key is not None
        landed.setdefault(msg.key.decode(), []).append(msg.topic.removeprefix(f"{name}."))
    assert {k: v for k, v in landed.items()} == {k: [v] for k, v in expected.items()}

    committed, end = committed_vs_end(kafka.bootstrap, worker.group_id, f"{name}.raw")
    assert committed == end == len(records)

    # Valid records: wire format decodes with the checked-in schema and a stock deserializer.
    schema = json.loads((REPO / "avro" / "invoice" / "v1.avsc").read_text())
    model = get_contract("invoice", 1).model
    # A stock consumer-side deserializer with its own client: it fetches the writer
    # schema by the id in each record from the real registry.
    registry = registry_client
    deserializer = AvroDeserializer(registry)
    subject = f"{name}.valid-value"
    assert registry.get_compatibility(subject) == "BACKWARD"
    assert registry.get_latest_version(subject).schema_id == worker.pipeline.encoder.schema_id
    for msg in outputs:
        if not msg.topic.endswith(".valid"):
            continue
        assert msg.value is not None
        _schema_id, datum = decode_wire(msg.value, schema)
        ctx = SerializationContext(msg.topic, MessageField.VALUE)
        assert deserializer(msg.value, ctx) == datum
        stem = msg.key.decode() if msg.key else ""
        fixture = json.loads((invoice_samples / f"{stem}.json").read_text())
        assert model.model_validate(fixture) == model.model_validate(_contract_fields(datum))
        prov = datum["provenance"]
        assert prov["pipeline"] == name
        assert prov["model_reported"] != prov["model_requested"]
        assert prov["source_topic"] == f"{name}.raw"
        assert prov["input_sha256"] == text_sha256(texts[stem])
        assert msg.headers["streams.route"] == b"valid"
        grounding = datum["grounding"]
        assert grounding["coverage"] == pytest.approx(1.0)
        assert all(f["found"] for f in grounding["fields"] if f["method"] != "skipped")
        first = grounding["fields"][0]
        assert texts[stem][first["start"] : first["end"]]
    repaired = next(m for m in outputs if m.key == stems[1].encode())
    assert int(repaired.headers["streams.attempts"]) == 2

    # Non-valid envelopes carry the reason and enough to redrive.
    by_key = {m.key.decode(): m for m in outputs if m.key}
    invalid = json.loads(by_key["bad-total"].value or b"")
    assert invalid["reason"].startswith("contract:")
    assert invalid["errors"]
    assert invalid["last_output"]
    assert len(invalid["attempts"]) == settings.budgets.max_attempts
    over = json.loads(by_key["huge"].value or b"")
    assert over["budget"]["name"] == "record_input_tokens"
    assert over["document"]["text"].startswith("INVOICE line")
    dlq = json.loads(by_key["not-utf8"].value or b"")
    assert dlq["reason"] == "not_utf8"
    assert dlq["raw_value_b64"]
    rejected = json.loads(by_key[stems[4]].value or b"")
    assert rejected["error_type"] == "ProviderRejected"
    assert rejected["provider_status"] == 400

    # The huge document made no model call; the 400 was not retried.
    seen = httpx.get(f"{simulator}/_sim/requests").json()
    requests = seen["requests"] if isinstance(seen, dict) else seen
    requests = [r for r in requests if r["endpoint"] != "models"]
    keys = [r["key"] for r in requests]
    assert keys.count(text_sha256(texts[stems[4]])) == 1
    assert all(r["strict_response_format"] for r in requests)


def _contract_fields(datum: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in datum.items() if k not in ("provenance", "grounding")}
    return json.loads(json.dumps(data, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return value.isoformat()
