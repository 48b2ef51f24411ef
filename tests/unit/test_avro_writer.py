"""The compiled Avro writer: fastavro's bytes for what it accepts, fastavro itself otherwise."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from contracts import SAMPLES_DIR, get_contract
from streams._avro_writer import Unsupported, compile_writer
from streams.avro_schema import to_avro_datum
from streams.encode import AvroWireEncoder
from streams.errors import EncodingError
from streams.grounding import ground

CONTRACTS = [("invoice", 1), ("invoice", 2), ("claim", 1), ("lead", 1)]


def _provenance(**changes: Any) -> dict[str, Any]:
    prov: dict[str, Any] = {
        "pipeline": "p",
        "contract": "c",
        "contract_version": 1,
        "schema_id": None,
        "prompt_version": "v",
        "provider": "openai",
        "model_requested": "m",
        "model_reported": "m-ü",
        "attempts": 1,
        "input_tokens": 812,
        "output_tokens": 96,
        "cost_usd": 0.000179,
        "latency_ms": 201.5,
        "cache_hit": False,
        "repairs": ["strip_code_fence"],
        "source_topic": "p.raw",
        "source_partition": 3,
        "source_offset": 2**40,
        "source_key": None,
        "input_sha256": "ab" * 32,
        "processed_at": 1_764_640_000_123,
    }
    prov.update(changes)
    return prov


def _fastavro(schema: dict[str, Any], datum: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), datum)
    return buf.getvalue()


def _encoder(name: str, version: int) -> AvroWireEncoder:
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    contract = get_contract(name, version)
    encoder = AvroWireEncoder(contract, registry, f"{name}.valid-value", manage_compatibility=False)
    encoder.register()
    return encoder


@pytest.mark.parametrize(("name", "version"), CONTRACTS)
def test_every_sample_is_written_byte_for_byte_as_fastavro_writes_it(
    name: str, version: int
) -> None:
    """Each sample record of each contract, with and without its grounding, in wire format."""
    encoder = _encoder(name, version)
    assert encoder._writer is not None
    contract = encoder.contract
    written = 0
    for path in sorted((SAMPLES_DIR / name).glob("*.json")):
        try:
            record = contract.model.model_validate_json(path.read_text("utf-8"))
        except ValueError:
            continue  # a sample of another version of the contract
        datum = {**to_avro_datum(record), "provenance": _provenance(schema_id=encoder.schema_id)}
        text = path.with_suffix(".txt").read_text("utf-8")
        grounding = ground(record, text).as_dict()
        fields = [
            {**f, "start": (f["span"] or {}).get("start"), "end": (f["span"] or {}).get("end")}
            for f in grounding["fields"]
        ]
        for g in (None, {"coverage": grounding["coverage"], "fields": fields}):
            expected = _fastavro(encoder.schema_dict, {**datum, "grounding": g})
            assert encoder._writer({**datum, "grounding": g}) == expected
            wire = encoder.encode(record, _provenance(), g)
            assert wire[5:] == expected
        written += 1
    assert written > 0


@pytest.mark.parametrize(
    "value",
    [
        Decimal("0"),
        Decimal("0.00"),
        Decimal("-0"),
        Decimal("0E-2"),
        Decimal("-0.01"),
        Decimal("127.99"),
        Decimal("-128"),
        Decimal("1E+3"),
        Decimal("99999999999999.99"),
        Decimal("-4346.12"),
    ],
)
def test_decimals_dates_and_ints_match_fastavro(value: Decimal) -> None:
    """Two's-complement decimals, dates as days, zig-zag ints at their edges."""
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {
                "name": "d",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 16, "scale": 2},
            },
            {"name": "day", "type": ["null", {"type": "int", "logicalType": "date"}]},
            {"name": "i", "type": "int"},
            {"name": "l", "type": "long"},
            {"name": "xs", "type": {"type": "array", "items": "double"}},
        ],
    }
    write = compile_writer(schema)
    for day, i, n in (
        (date(1969, 12, 31), -(2**31), -(2**63)),
        (date(2024, 3, 5), 2**31 - 1, 2**63 - 1),
    ):
        datum = {"d": value, "day": day, "i": i, "l": n, "xs": [0.1, -2.5, 1e300]}
        assert write(datum) == _fastavro(schema, datum)


@pytest.mark.parametrize(
    "bad",
    [
        {"source_offset": 2**63},  # out of a long's range
        {"attempts": True},  # a bool where an int goes
        {"cost_usd": 1},  # an int where a double goes
        {"processed_at": datetime(2026, 1, 1, tzinfo=UTC)},  # a datetime timestamp
        {"model_reported": "\ud800"},  # not encodable as UTF-8
        {"repairs": ("a",)},  # a tuple for an array
    ],
)
def test_a_value_the_writer_refuses_is_written_or_refused_by_fastavro(bad: dict[str, Any]) -> None:
    """The compiled writer never decides an odd value: fastavro's bytes or error, as before."""
    encoder = _encoder("invoice", 1)
    sample = SAMPLES_DIR / "invoice" / "01-acme-industrial-usd.json"
    record = encoder.contract.model.model_validate_json(sample.read_text("utf-8"))
    datum = {**to_avro_datum(record), "provenance": _provenance(**bad), "grounding": None}
    assert encoder._writer is not None
    with pytest.raises((Unsupported, ValueError, TypeError, KeyError, OverflowError)):
        encoder._writer(datum)
    datum["provenance"]["schema_id"] = encoder.schema_id
    try:
        expected = _fastavro(encoder.schema_dict, datum)
    except (ValueError, TypeError, KeyError, AttributeError):
        with pytest.raises(EncodingError):  # what the encoder has always turned these into
            encoder.encode(record, _provenance(**bad))
    except OverflowError:
        with pytest.raises(OverflowError):  # not mapped before either: the pipeline DLQs it
            encoder.encode(record, _provenance(**bad))
    else:
        assert encoder.encode(record, _provenance(**bad))[5:] == expected


def test_a_schema_with_a_type_it_does_not_know_is_left_to_fastavro() -> None:
    """Maps, enums, floats and wider unions do not compile (the encoder uses fastavro)."""
    for field_type in (
        {"type": "map", "values": "string"},
        {"type": "enum", "name": "E", "symbols": ["A"]},
        "float",
        ["null", "string", "int"],
        {"type": "string", "logicalType": "uuid"},
    ):
        schema = {"type": "record", "name": "R", "fields": [{"name": "x", "type": field_type}]}
        with pytest.raises(Unsupported):
            compile_writer(schema)
