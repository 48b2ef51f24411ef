"""The pipeline core without a broker: one outcome per record, envelopes match their schemas."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from contracts import SAMPLES_DIR, get_contract
from streams.avro_schema import envelope_datum, envelope_schema
from streams.encode import AvroWireEncoder, decode_wire
from streams.envelope import RawRecord
from streams.errors import ProviderRejected, ProviderRequestTooLarge, ProviderTransient, Route
from streams.extract import Extractor
from streams.pipeline import Pipeline
from streams.settings import BudgetSettings, PipelineSettings, Price
from tests.fakes import FakeClock, NoSleep, ScriptedProvider, answer

SAMPLE = SAMPLES_DIR / "invoice" / "01-acme-industrial-usd"
TEXT = SAMPLE.with_suffix(".txt").read_text(encoding="utf-8")
ANSWER = SAMPLE.with_suffix(".json").read_text(encoding="utf-8")


def _pipeline(script: list[Any], **budgets: Any) -> tuple[Pipeline, ScriptedProvider]:
    contract = get_contract("invoice", 1)
    provider = ScriptedProvider(script, name="openai", model="sim-extractor-1")
    clock = FakeClock()
    extractor = Extractor(
        contract,
        provider,
        BudgetSettings(**{"transient_retries": 1, "max_record_seconds": 60, **budgets}),
        price=Price(input_per_mtok=0.15, output_per_mtok=0.6),
        sleep=NoSleep(clock),
        clock=clock,
    )
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    encoder = AvroWireEncoder(contract, registry, "p.valid-value", manage_compatibility=False)
    settings = PipelineSettings(
        name="p", input_topic="p.raw", contract="invoice", contract_version=1
    )
    return Pipeline(settings, contract, extractor, encoder, clock=lambda: 1_700_000_000.0), provider


def _raw(value: bytes | None, key: bytes | None = b"k") -> RawRecord:
    return RawRecord(topic="p.raw", partition=1, offset=42, key=key, value=value)


async def test_valid_record_is_wire_format_avro_with_provenance() -> None:
    """A valid answer becomes wire-format Avro with provenance and grounding inside."""
    pipeline, _ = _pipeline([answer(ANSWER, model="sim-extractor-1-2026")])
    out = await pipeline.process(_raw(TEXT.encode()))
    assert (out.route, out.topic, out.key) == (Route.VALID, "p.valid", b"k")
    schema = json.loads((Path("avro") / "invoice" / "v1.avsc").read_text())
    schema_id, datum = decode_wire(out.value, schema)
    assert schema_id == pipeline.encoder.schema_id
    prov = datum["provenance"]
    assert prov["model_reported"] == "sim-extractor-1-2026"
    assert prov["model_requested"] == "sim-extractor-1"
    assert (prov["source_partition"], prov["source_offset"], prov["source_key"]) == (1, 42, "k")
    assert prov["processed_at"].timestamp() == 1_700_000_000
    assert datum["grounding"]["coverage"] == pytest.approx(1.0)
    headers = dict(out.headers)
    assert headers["streams.route"] == b"valid"
    assert headers["streams.grounding-coverage"] == b"1.0000"


@pytest.mark.parametrize(
    ("script", "value", "route", "reason"),
    [
        ([answer('{"vendor": "x"}')], TEXT.encode(), Route.INVALID, "contract:"),
        ([answer(ANSWER)], b"\xff\xfe", Route.DLQ, "not_utf8"),
        ([answer(ANSWER)], b'{"text": 3}', Route.DLQ, "bad_envelope"),
        ([ProviderRejected("nope", status=403)], TEXT.encode(), Route.DLQ, "provider:403"),
        ([answer(ANSWER)], ("word " * 20000).encode(), Route.OVER_BUDGET, "budget:record_"),
        (
            [ProviderRequestTooLarge("too large", status=429, limit=30000, requested=41234)],
            TEXT.encode(),
            Route.OVER_BUDGET,
            "provider_request_too_large",
        ),
        (
            [ProviderTransient("down", status=503)],
            TEXT.encode(),
            Route.DLQ,
            "provider_transient_exhausted",
        ),
        ([answer(ANSWER)], None, Route.DLQ, "tombstone"),
    ],
)
async def test_every_failure_routes_with_a_reason(
    script: list[Any], value: bytes, route: Route, reason: str
) -> None:
    """Each failure kind becomes exactly one outcome on its route, with a readable reason."""
    pipeline, _ = _pipeline(script)
    out = await pipeline.process(_raw(value))
    assert out.route is route
    assert out.reason.startswith(reason)
    envelope = json.loads(out.value)
    assert envelope["route"] == route.value
    # The JSON envelope on the topic and the checked-in Avro envelope schema agree.
    schema = fastavro.parse_schema(envelope_schema(route.value))
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, envelope_datum(envelope))
    buf.seek(0)
    assert fastavro.schemaless_reader(buf, schema, schema)["reason"] == out.reason


async def test_over_budget_carries_full_input_and_makes_no_call() -> None:
    """An over-budget record carries the whole document and which budget tripped."""
    pipeline, provider = _pipeline([answer(ANSWER)], max_input_tokens=100)
    out = await pipeline.process(_raw(json.dumps({"id": "d1", "text": TEXT}).encode()))
    envelope = json.loads(out.value)
    assert provider.requests == []
    assert envelope["document"]["text"] == TEXT
    assert envelope["budget"]["name"] == "record_input_tokens"
    assert out.key == b"k"


async def test_stage_bug_goes_to_dlq_not_crash() -> None:
    """An unexpected exception inside a stage is dead-lettered, never raised to the worker."""
    pipeline, _ = _pipeline([ZeroDivisionError("boom")])  # type: ignore[list-item]
    out = await pipeline.process(_raw(TEXT.encode()))
    assert out.route is Route.DLQ
    assert json.loads(out.value)["error_type"] == "ZeroDivisionError"
