"""Avro schemas generated from the contracts, their datums and the checked-in files."""

from __future__ import annotations

import copy
import dataclasses
import enum
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.read import SchemaResolutionError
from pydantic import BaseModel, ConfigDict, Field, create_model

from contracts import (
    SAMPLES_DIR,
    ContractVersion,
    Example,
    Prompt,
    all_contracts,
    get_contract,
)
from contracts.invoice import Invoice
from contracts.invoice_v2 import Invoice as InvoiceV2
from contracts.invoice_v3 import Invoice as InvoiceV3
from streams.avro_schema import (
    ENVELOPE_KINDS,
    ENVELOPE_SCHEMA_VERSION,
    GROUNDING_SCHEMA,
    PROVENANCE_SCHEMA,
    avro_schema_for,
    check_schema_files,
    envelope_datum,
    envelope_schema,
    grounding_datum,
    schema_path,
    to_avro_datum,
    write_schema_files,
)
from streams.devstack.registry import LocalRegistry
from streams.encode import ENVELOPE_VERSION, AvroWireEncoder, envelope_bytes
from streams.errors import ConfigError, EncodingError
from streams.grounding import ground
from streams.settings import default_cache_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
INVOICE_ANSWERS = sorted((SAMPLES_DIR / "invoice").glob("*.json"))

PROVENANCE_DATUM: dict[str, Any] = {
    "pipeline": "invoices",
    "contract": "invoice",
    "contract_version": 1,
    "schema_id": 7,
    "prompt_version": "f76a88a301d6",
    "provider": "openai",
    "model_requested": "gpt-4o-mini",
    "model_reported": "gpt-4o-mini-2024-07-18",
    "attempts": 2,
    "input_tokens": 1834,
    "output_tokens": 296,
    "cost_usd": 0.000453,
    "latency_ms": 812.5,
    "cache_hit": False,
    "repairs": ["strip_code_fence"],
    "source_topic": "invoices.raw",
    "source_partition": 3,
    "source_offset": 1_204_117,
    "source_key": None,
    "input_sha256": "ab" * 32,
    "processed_at": datetime(2024, 3, 5, 12, 30, 1, 250_000, tzinfo=UTC),
}


def _roundtrip(schema: dict[str, Any], datum: dict[str, Any]) -> dict[str, Any]:
    parsed = fastavro.parse_schema(schema)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, datum)
    buffer.seek(0)
    result = fastavro.schemaless_reader(buffer, parsed)
    assert isinstance(result, dict)
    return result


def _contract(model: type[BaseModel], name: str = "probe") -> ContractVersion:
    # Not an entry point: the repo's avro/ check must only see real contracts.
    return ContractVersion(name=name, version=1, model=model, prompt=Prompt("probe"))


# -- the invoice schema -------------------------------------------------------------------


@pytest.mark.parametrize("contract", list(all_contracts()), ids=lambda c: c.ref)
def test_generated_schema_parses(contract: ContractVersion) -> None:
    """Every registered contract's schema is accepted by fastavro.parse_schema."""
    fastavro.parse_schema(avro_schema_for(contract))


def test_invoice_schema_names_and_decimal_types() -> None:
    """Invoice v1 is record contracts.invoice.v1.Invoice with decimals from the field limits."""
    schema = avro_schema_for(get_contract("invoice", 1))
    assert (schema["name"], schema["namespace"]) == ("Invoice", "contracts.invoice.v1")
    fields = {f["name"]: f for f in schema["fields"]}
    money = {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}
    assert fields["total"]["type"] == money
    assert fields["issue_date"]["type"] == {"type": "int", "logicalType": "date"}
    line_item = fields["line_items"]["type"]["items"]
    line_fields = {f["name"]: f["type"] for f in line_item["fields"]}
    assert line_fields["quantity"] == money | {"scale": 4}
    assert line_fields["unit_price"] == money


def test_every_field_has_a_doc() -> None:
    """Each field of the invoice schema, the provenance and the grounding record has a doc."""
    schema = avro_schema_for(get_contract("invoice", 1))
    line_item = next(f for f in schema["fields"] if f["name"] == "line_items")["type"]["items"]
    field_grounding = GROUNDING_SCHEMA["fields"][1]["type"]["items"]
    for field in [
        *schema["fields"],
        *line_item["fields"],
        *PROVENANCE_SCHEMA["fields"],
        *GROUNDING_SCHEMA["fields"],
        *field_grounding["fields"],
    ]:
        assert field.get("doc"), field["name"]


def test_provenance_comes_after_the_contract_fields() -> None:
    """The provenance record follows the contract's fields, with the agreed fields in order."""
    schema = avro_schema_for(get_contract("invoice", 1))
    last = schema["fields"][-2]
    assert last["name"] == "provenance"
    assert last["type"]["name"] == "Provenance"
    assert last["type"]["namespace"] == "streams.provenance"
    assert [f["name"] for f in last["type"]["fields"]] == [
        "pipeline",
        "contract",
        "contract_version",
        "schema_id",
        "prompt_version",
        "provider",
        "model_requested",
        "model_reported",
        "attempts",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "latency_ms",
        "cache_hit",
        "repairs",
        "source_topic",
        "source_partition",
        "source_offset",
        "source_key",
        "input_sha256",
        "processed_at",
    ]


def test_schema_is_a_fresh_copy() -> None:
    """Changing a returned schema leaks into neither the next call nor the shared records."""
    contract = get_contract("invoice", 1)
    first = avro_schema_for(contract)
    first["fields"][-2]["type"]["fields"].clear()
    first["fields"][-1]["type"][1]["fields"].clear()
    first["fields"][0]["name"] = "changed"
    second = avro_schema_for(contract)
    assert second["fields"][0]["name"] == "vendor"
    assert len(second["fields"][-2]["type"]["fields"]) == len(PROVENANCE_SCHEMA["fields"])
    assert second["fields"][-1]["type"][1] == GROUNDING_SCHEMA
    assert len(GROUNDING_SCHEMA["fields"]) == 2


@pytest.mark.parametrize("path", INVOICE_ANSWERS, ids=lambda p: p.stem)
def test_sample_record_roundtrips_through_avro(path: Path) -> None:
    """Each sample invoice survives an Avro write and read with Decimals and dates intact."""
    invoice = Invoice.model_validate_json(path.read_text(encoding="utf-8"), strict=True)
    datum = to_avro_datum(invoice) | {"provenance": PROVENANCE_DATUM, "grounding": None}
    read = _roundtrip(avro_schema_for(get_contract("invoice", 1)), datum)
    assert read == datum
    assert isinstance(read["total"], Decimal)
    assert isinstance(read["issue_date"], date)
    assert read["provenance"]["processed_at"] == PROVENANCE_DATUM["processed_at"]
    read.pop("provenance")
    read.pop("grounding")
    assert Invoice.model_validate(read) == invoice


def test_hand_written_grounding_is_byte_for_byte_fastavro() -> None:
    """The encoder writes the grounding union itself; fastavro writes the same bytes, for
    every sample invoice's real grounding and for the edge values (empty, not found,
    non-ASCII paths, the int limits)."""
    contract = get_contract("invoice", 1)
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    encoder = AvroWireEncoder(contract, registry, "t.valid-value", manage_compatibility=False)
    edge_fields = [
        {"path": "vendor", "found": False, "start": None, "end": None, "method": "not_found"},
        {"path": "é[0].ü", "found": True, "start": 0, "end": 2**31 - 1, "method": "exact"},
        {"path": "", "found": True, "start": 63, "end": 64, "method": "number"},
    ]
    groundings = [{"coverage": 1.0, "fields": []}, {"coverage": 0.0, "fields": edge_fields}]
    for path in INVOICE_ANSWERS:
        invoice = Invoice.model_validate_json(path.read_text(encoding="utf-8"), strict=True)
        text = path.with_suffix(".txt").read_text(encoding="utf-8")
        groundings.append(grounding_datum(ground(invoice, text)))
    invoice = Invoice.model_validate_json(INVOICE_ANSWERS[0].read_text(encoding="utf-8"))
    parsed = fastavro.parse_schema(avro_schema_for(contract))
    for grounding in groundings:
        ours = encoder.encode(invoice, dict(PROVENANCE_DATUM), grounding)
        datum = to_avro_datum(invoice) | {
            "provenance": {**PROVENANCE_DATUM, "schema_id": encoder.schema_id},
            "grounding": grounding,
        }
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, datum)
        assert ours[5:] == buf.getvalue()
    too_big = {"coverage": 1.0, "fields": [{**edge_fields[1], "end": 2**31}]}
    with pytest.raises(EncodingError, match="does not fit"):
        encoder.encode(invoice, dict(PROVENANCE_DATUM), too_big)


OTHER_ANSWERS = [
    (name, path)
    for name in ("claim", "lead")
    for path in sorted((SAMPLES_DIR / name).glob("*.json"))
]


@pytest.mark.parametrize(("name", "path"), OTHER_ANSWERS, ids=lambda v: getattr(v, "stem", v))
def test_claim_and_lead_samples_roundtrip_through_avro(name: str, path: Path) -> None:
    """Each claim and lead sample survives an Avro write and read and validates again."""
    contract = get_contract(name, 1)
    record = contract.model.model_validate_json(path.read_text(encoding="utf-8"), strict=True)
    datum = to_avro_datum(record) | {"provenance": PROVENANCE_DATUM}
    read = _roundtrip(avro_schema_for(contract), datum)
    assert read == datum | {"grounding": None}
    fields = {k: v for k, v in read.items() if k not in ("provenance", "grounding")}
    assert contract.model.model_validate(fields) == record


def test_datum_quantizes_decimals_to_the_schema_scale() -> None:
    """Decimals leave to_avro_datum with exactly the schema's scale (12.5 -> 12.50)."""
    invoice = Invoice.model_validate_json(
        (SAMPLES_DIR / "invoice" / "17-van-dijk-vers-eur.json").read_text(), strict=True
    )
    datum = to_avro_datum(invoice)
    assert str(datum["line_items"][0]["quantity"]) == "12.5000"
    assert str(datum["line_items"][0]["unit_price"]) == "3.99"
    assert str(datum["total"]) == "128.50"


def test_datum_refuses_to_round() -> None:
    """A Decimal with more places than the schema's scale is an error, never rounded."""
    record = Invoice.model_validate_json(
        (SAMPLES_DIR / "invoice" / "01-acme-industrial-usd.json").read_text(), strict=True
    )
    unchecked = record.model_construct(**(dict(record) | {"total": Decimal("622.421")}))
    with pytest.raises(ValueError, match="more than 2 decimal places"):
        to_avro_datum(unchecked)


# -- the type mapping ---------------------------------------------------------------------


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    """A point."""

    x: float = Field(description="x")
    y: float = Field(description="y")


class Everything(BaseModel):
    name: str = Field(description="a string")
    count: int = Field(default=3, description="an int with a default")
    flag: bool = Field(description="a bool")
    colour: Colour = Field(description="a str enum")
    size: Literal["S", "M", "L"] = Field(description="a literal")
    when: datetime = Field(description="a datetime")
    price: Decimal | None = Field(
        default=None, max_digits=10, decimal_places=3, description="an optional decimal"
    )
    tags: list[str] = Field(default_factory=list, description="a list")
    attrs: dict[str, int] = Field(description="a map")
    start: Point = Field(description="a nested model")
    path: list[Point] = Field(description="the same model again")
    end: Point | None = Field(default=None, description="an optional nested model")


def test_type_mapping() -> None:
    """Python and pydantic types map to the Avro types the module docstring promises."""
    schema = avro_schema_for(_contract(Everything))
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert types["name"] == "string"
    assert types["count"] == "long"
    assert types["flag"] == "boolean"
    assert types["colour"] == "string"
    assert types["size"] == "string"
    assert types["when"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert types["price"] == [
        "null",
        {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 3},
    ]
    assert types["tags"] == {"type": "array", "items": "string"}
    assert types["attrs"] == {"type": "map", "values": "long"}
    assert types["start"]["type"] == "record"
    assert types["start"]["doc"] == "A point."
    assert types["path"] == {"type": "array", "items": "probe.v1.Point"}
    assert types["end"] == ["null", "probe.v1.Point"]


def test_defaults_follow_the_model() -> None:
    """Optional fields default to null; simple pydantic defaults become Avro defaults."""
    schema = avro_schema_for(_contract(Everything))
    defaults = {f["name"]: f.get("default", "<none>") for f in schema["fields"]}
    assert defaults["price"] is None
    assert defaults["end"] is None
    assert defaults["count"] == 3
    assert defaults["tags"] == []
    assert defaults["name"] == "<none>"
    assert "doc" not in schema  # no description on the contract, no docstring on the model


def test_mapped_types_roundtrip() -> None:
    """A record using every supported type round-trips through fastavro."""
    record = Everything(
        name="n",
        flag=True,
        colour=Colour.BLUE,
        size="M",
        when=datetime(2024, 1, 2, 3, 4, 5, 6007, tzinfo=UTC),
        price=Decimal("1.5"),
        attrs={"a": 1},
        start=Point(x=1.0, y=2.0),
        path=[Point(x=3.0, y=4.0)],
    )
    datum = to_avro_datum(record) | {"provenance": PROVENANCE_DATUM}
    read = _roundtrip(avro_schema_for(_contract(Everything)), datum)
    read.pop("provenance")
    assert read["colour"] == "blue"
    assert read["price"] == Decimal("1.500")
    assert read["end"] is None
    assert Everything.model_validate(read) == record


class LooseDecimal(BaseModel):
    amount: Decimal = Field(description="no digits or places")


class AnyUnion(BaseModel):
    value: int | str = Field(description="a union that is not T | None")


class ClashingName(BaseModel):
    provenance: str = Field(description="collides with the provenance field")


class ClashingGrounding(BaseModel):
    grounding: str = Field(description="collides with the grounding field")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        pytest.param(LooseDecimal, "max_digits", id="decimal-without-limits"),
        pytest.param(AnyUnion, "T | None", id="union"),
        pytest.param(ClashingName, "reserved", id="provenance-field"),
        pytest.param(ClashingGrounding, "reserved", id="grounding-field"),
    ],
)
def test_unmappable_models_are_config_errors(model: type[BaseModel], message: str) -> None:
    """A model Avro cannot carry fails at generation time with a ConfigError that says why."""
    with pytest.raises(ConfigError, match=message):
        avro_schema_for(_contract(model))


def test_invalid_contract_name_is_rejected_when_declared() -> None:
    """A contract name that is no valid Avro name fails where the contract is declared."""
    with pytest.raises(ValueError, match="letters, digits and underscores"):
        _contract(Point, name="sales-lead")


def test_namespace_defaults_from_the_name_and_can_be_set() -> None:
    """A user's contract gets namespace <name>.v<N>; ``namespace=`` overrides it."""
    assert avro_schema_for(_contract(Point))["namespace"] == "probe.v1"
    custom = dataclasses.replace(_contract(Point), namespace="com.acme.probe.v1")
    assert avro_schema_for(custom)["namespace"] == "com.acme.probe.v1"
    assert avro_schema_for(get_contract("invoice", 1))["namespace"] == "contracts.invoice.v1"


# -- the checked-in files -----------------------------------------------------------------


def test_checked_in_schemas_match_the_models() -> None:
    """avro/ in the repository holds exactly the schemas the contracts generate."""
    assert check_schema_files(REPO_ROOT) == []


def test_write_is_deterministic_and_newline_terminated(tmp_path: Path) -> None:
    """Writing twice gives identical, sorted, pretty JSON ending in one newline."""
    path = tmp_path / "avro" / "invoice" / "v1.avsc"
    assert path in write_schema_files(tmp_path)
    first = path.read_text(encoding="utf-8")
    write_schema_files(tmp_path)
    assert path.read_text(encoding="utf-8") == first
    assert first.endswith("}\n")
    assert (
        first == json.dumps(json.loads(first), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )
    assert check_schema_files(tmp_path) == []


def test_check_reports_a_missing_file(tmp_path: Path) -> None:
    """A registered contract without its file is reported as missing."""
    write_schema_files(tmp_path)
    schema_path(tmp_path, get_contract("invoice", 1)).unlink()
    assert check_schema_files(tmp_path) == [
        "avro/invoice/v1.avsc: missing; generate it for invoice.v1"
    ]


def test_check_reports_a_schema_that_differs(tmp_path: Path) -> None:
    """A file whose fields no longer match the model is reported with the fields named."""
    write_schema_files(tmp_path)
    path = schema_path(tmp_path, get_contract("invoice", 1))
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "tax"]
    schema["fields"][0]["doc"] = "stale"
    path.write_text(json.dumps(schema), encoding="utf-8")
    assert check_schema_files(tmp_path) == [
        "avro/invoice/v1.avsc: differs from the model invoice.v1: "
        "fields only in the model: tax; fields that differ: vendor"
    ]


def test_check_reports_formatting_drift(tmp_path: Path) -> None:
    """A file with the right schema but hand-reformatted is reported as such."""
    write_schema_files(tmp_path)
    path = schema_path(tmp_path, get_contract("invoice", 1))
    path.write_text(json.dumps(json.loads(path.read_text(encoding="utf-8"))), encoding="utf-8")
    assert check_schema_files(tmp_path) == [
        "avro/invoice/v1.avsc: matches invoice.v1 but is not formatted as generated"
    ]


def test_check_reports_broken_json_and_stray_files(tmp_path: Path) -> None:
    """Unparseable files and files of unregistered contract versions are reported."""
    write_schema_files(tmp_path)
    schema_path(tmp_path, get_contract("invoice", 1)).write_text("{", encoding="utf-8")
    stray = tmp_path / "avro" / "invoice" / "v9.avsc"
    stray.write_text("{}\n", encoding="utf-8")
    problems = check_schema_files(tmp_path)
    assert len(problems) == 2
    assert problems[0].startswith("avro/invoice/v1.avsc: not valid JSON")
    assert problems[1] == "avro/invoice/v9.avsc: no registered contract invoice.v9"


def test_check_reports_a_contract_avro_cannot_carry(tmp_path: Path) -> None:
    """A contract whose model has no Avro mapping is a reported problem, not a crash."""
    (problem,) = check_schema_files(tmp_path, [_contract(LooseDecimal)])
    assert problem.startswith("avro/probe/v1.avsc: cannot generate a schema for probe.v1: ")
    assert "max_digits" in problem


# -- grounding in the value schema --------------------------------------------------------


def _resolve(datum: dict[str, Any], writer: dict[str, Any], reader: dict[str, Any]) -> Any:
    """Write ``datum`` with the writer's schema and read it back with the reader's."""
    parsed_writer = fastavro.parse_schema(writer)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed_writer, datum)
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, parsed_writer, fastavro.parse_schema(reader))


def _invoice(name: str = "01-acme-industrial-usd") -> Invoice:
    text = (SAMPLES_DIR / "invoice" / f"{name}.json").read_text(encoding="utf-8")
    return Invoice.model_validate_json(text, strict=True)


def test_grounding_is_the_last_field_and_optional() -> None:
    """The value schema ends with an optional grounding record that defaults to null."""
    last = avro_schema_for(get_contract("invoice", 1))["fields"][-1]
    assert last["name"] == "grounding"
    assert last["default"] is None
    null, record = last["type"]
    assert (null, record["name"], record["namespace"]) == ("null", "Grounding", "streams.grounding")
    entry = record["fields"][1]["type"]["items"]
    assert [(f["name"], f["type"]) for f in entry["fields"]] == [
        ("path", "string"),
        ("found", "boolean"),
        ("start", ["null", "int"]),
        ("end", ["null", "int"]),
        ("method", "string"),
    ]


def test_datum_leaves_grounding_to_the_caller_and_null_is_written() -> None:
    """to_avro_datum has no grounding key; a datum without one is written as null."""
    datum = to_avro_datum(_invoice()) | {"provenance": PROVENANCE_DATUM}
    assert "grounding" not in datum
    assert _roundtrip(avro_schema_for(get_contract("invoice", 1)), datum)["grounding"] is None


def test_grounding_datum_roundtrips_with_spans() -> None:
    """grounding_datum of a real grounding is written and read back unchanged."""
    invoice = _invoice()
    text = (SAMPLES_DIR / "invoice" / "01-acme-industrial-usd.txt").read_text(encoding="utf-8")
    grounding = grounding_datum(ground(invoice, text))
    datum = to_avro_datum(invoice) | {"provenance": PROVENANCE_DATUM, "grounding": grounding}
    read = _roundtrip(avro_schema_for(get_contract("invoice", 1)), datum)
    assert read["grounding"] == grounding
    total = next(f for f in grounding["fields"] if f["path"] == "total")
    assert total["found"]
    assert text[total["start"] : total["end"]] == "622.42"


def test_adding_grounding_kept_v1_backward_compatible() -> None:
    """Data written with v1 before grounding existed reads with today's v1 schema as null."""
    today = avro_schema_for(get_contract("invoice", 1))
    before = today | {"fields": today["fields"][:-1]}
    datum = to_avro_datum(_invoice()) | {"provenance": PROVENANCE_DATUM}
    assert _resolve(datum, before, today)["grounding"] is None


# -- invoice versions: proven with fastavro -----------------------------------------------


def test_invoice_v1_data_reads_with_the_v2_schema() -> None:
    """BACKWARD: a v2 reader reads a v1 record, with purchase_order filled as null."""
    datum = to_avro_datum(_invoice()) | {"provenance": PROVENANCE_DATUM}
    v1, v2 = (avro_schema_for(get_contract("invoice", n)) for n in (1, 2))
    read = _resolve(datum, v1, v2)
    assert read["purchase_order"] is None
    assert {k: v for k, v in read.items() if k not in ("purchase_order", "grounding")} == datum


def test_invoice_v2_data_reads_with_the_v1_schema() -> None:
    """FORWARD: a v1 reader reads a v2 record that has a purchase order, and skips it."""
    record = InvoiceV2.model_validate(dict(_invoice()) | {"purchase_order": "PO-77120"})
    datum = to_avro_datum(record) | {"provenance": PROVENANCE_DATUM}
    v1, v2 = (avro_schema_for(get_contract("invoice", n)) for n in (1, 2))
    read = _resolve(datum, v2, v1)
    assert "purchase_order" not in read
    assert read | {"purchase_order": "PO-77120"} == datum | {"grounding": None}
    assert Invoice.model_validate({k: v for k, v in read.items() if k in Invoice.model_fields})


@pytest.mark.parametrize(("writer", "reader"), [(2, 3), (3, 2)], ids=["v2-to-v3", "v3-to-v2"])
def test_invoice_v3_is_really_incompatible_with_v2(writer: int, reader: int) -> None:
    """v3's vendor record cannot be resolved against v2's vendor string, either way."""
    v3_example = get_contract("invoice", 3).prompt.examples[1].record
    records = {
        2: InvoiceV2.model_validate(dict(_invoice()) | {"purchase_order": None}),
        3: InvoiceV3.model_validate_json(json.dumps(v3_example), strict=True),
    }
    datum = to_avro_datum(records[writer]) | {"provenance": PROVENANCE_DATUM}
    schemas = {n: avro_schema_for(get_contract("invoice", n)) for n in (2, 3)}
    with pytest.raises(SchemaResolutionError, match="Schema mismatch"):
        _resolve(datum, schemas[writer], schemas[reader])


def test_breaking_v3_is_not_checked_against_older_versions() -> None:
    """v3 starts a new line (compatible_with None), so the repository's check stays clean."""
    assert get_contract("invoice", 3).compatible_with is None
    assert get_contract("invoice", 2).compatible_with == 1
    assert check_schema_files(REPO_ROOT) == []


def test_v3_declared_compatible_with_v2_would_be_flagged(tmp_path: Path) -> None:
    """The same v3, declared FULL compatible with v2, fails both directions of the check."""
    lying = dataclasses.replace(get_contract("invoice", 3), compatible_with=2, compatibility="FULL")
    versions = [get_contract("invoice", 1), get_contract("invoice", 2), lying]
    write_schema_files(tmp_path, versions)
    problems = check_schema_files(tmp_path, versions)
    assert [p.split(": a ")[0] for p in problems] == [
        "avro/invoice/v3.avsc: invoice.v3 is not BACKWARD compatible with invoice.v2",
        "avro/invoice/v3.avsc: invoice.v3 is not FORWARD compatible with invoice.v2",
    ]
    assert "a v3 reader cannot read v2 data (sample 01-acme-industrial-usd)" in problems[0]
    assert "SchemaResolutionError: Schema mismatch: string is not record" in problems[0]
    assert "a v2 reader cannot read v3 data (prompt example 1 of invoice.v3)" in problems[1]


# -- the compatibility check --------------------------------------------------------------


def _probe_model(**fields: Any) -> type[BaseModel]:
    # Every version is named "Probe": Avro resolves records by name, like real versions.
    model: type[BaseModel] = create_model(
        "Probe", __config__=ConfigDict(extra="forbid"), __doc__="A probe.", **fields
    )
    return model


_NAME = (str, Field(description="a name"))


def _probe(version: int, model: type[BaseModel], *records: dict[str, Any], **kw: Any) -> Any:
    examples = tuple(Example(document="probe", record=r) for r in records)
    return ContractVersion(
        name="probe", version=version, model=model, prompt=Prompt("probe", examples), **kw
    )


def _probe_problems(tmp_path: Path, *versions: ContractVersion) -> list[str]:
    write_schema_files(tmp_path, versions)
    return check_schema_files(tmp_path, versions)


def test_required_field_without_default_under_backward_is_flagged(tmp_path: Path) -> None:
    """A v2 adding a required field without a default fails BACKWARD, with fastavro's reason."""
    v1 = _probe(1, _probe_model(name=_NAME), {"name": "a"})
    amount = (int, Field(description="required, no default"))
    v2 = _probe(
        2, _probe_model(name=_NAME, amount=amount), {"name": "b", "amount": 1}, compatible_with=1
    )
    assert _probe_problems(tmp_path, v1, v2) == [
        "avro/probe/v2.avsc: probe.v2 is not BACKWARD compatible with probe.v1: a v2 reader "
        "cannot read v1 data (prompt example 1 of probe.v1): SchemaResolutionError: "
        "No default value for field amount in probe.v2.Probe"
    ]


def test_field_with_a_default_passes_full(tmp_path: Path) -> None:
    """A v2 adding an optional field is proven FULL compatible, both directions."""
    note = (str | None, Field(default=None, description="optional"))
    v1 = _probe(1, _probe_model(name=_NAME), {"name": "a"})
    v2 = _probe(
        2,
        _probe_model(name=_NAME, note=note),
        {"name": "b", "note": "n"},
        compatible_with=1,
        compatibility="FULL",
    )
    assert _probe_problems(tmp_path, v1, v2) == []


def test_a_version_without_data_gets_projected_datums(tmp_path: Path) -> None:
    """A version no record validates as is proven with other versions' records projected."""
    nickname = (str | None, Field(default=None, description="dropped in v2"))
    v1 = _probe(1, _probe_model(name=_NAME, nickname=nickname), {"name": "a", "nickname": "b"})
    v2 = _probe(2, _probe_model(name=_NAME), compatible_with=1, compatibility="FULL")
    assert _probe_problems(tmp_path, v1, v2) == []


def test_a_version_with_no_data_at_all_is_reported(tmp_path: Path) -> None:
    """With no sample or example for the writer, the check says there is nothing to prove with."""
    v1 = _probe(1, _probe_model(name=_NAME))
    v2 = _probe(2, _probe_model(name=_NAME), compatible_with=1)
    (problem,) = _probe_problems(tmp_path, v1, v2)
    assert problem.startswith("avro/probe/v2.avsc: probe.v2 is not BACKWARD compatible with")
    assert "no sample or prompt example validates as probe.v1" in problem


def test_compatible_with_an_unregistered_version_is_reported(tmp_path: Path) -> None:
    """compatible_with naming a version that does not exist is a problem, not a crash."""
    assert _probe_problems(tmp_path, _probe(3, _probe_model(name=_NAME), compatible_with=2)) == [
        "avro/probe/v3.avsc: probe.v3 declares compatible_with=2, but probe.v2 is not registered"
    ]


def test_check_accepts_the_avro_folder_as_root(tmp_path: Path) -> None:
    """`streams schemas --root avro` and the repository root name the same files."""
    avro = tmp_path / "avro"
    written = write_schema_files(avro)
    assert avro / "invoice" / "v1.avsc" in written
    assert not (avro / "avro").exists()
    assert check_schema_files(avro) == []
    schema_path(avro, get_contract("invoice", 2)).unlink()
    assert check_schema_files(tmp_path) == [
        "avro/invoice/v2.avsc: missing; generate it for invoice.v2"
    ]


# -- envelope schemas ---------------------------------------------------------------------


def _envelope(kind: str) -> dict[str, Any]:
    """An envelope as the pipeline writes it: a body through encode.envelope_bytes."""
    body: dict[str, Any] = {
        "pipeline": "invoices",
        "contract": "invoice",
        "contract_version": 1,
        "prompt_version": "f76a88a301d6",
        "route": kind,
        "reason": "contract:total:total_mismatch",
        "error_type": "AttemptsExhausted",
        "message": "answer failed the contract after 3 attempts",
        "errors": [
            {"path": "total", "type": "total_mismatch", "message": "total 1 is not", "value": "1"}
        ],
        "attempts": [
            {
                "number": 1,
                "input_tokens": 1834,
                "output_tokens": 296,
                "finish_reason": "stop",
                "model_reported": "gpt-4o-mini-2024-07-18",
                "latency_ms": 812.5,
                "outcome": "contract_violation",
                "errors": [{"path": "total", "type": "missing", "message": "m", "value": None}],
                "transient_retries": 1,
            }
        ],
        "last_output": '{"total": 1}',
        "cost_usd": 0.00042,
        "source": {
            "topic": "invoices.raw",
            "partition": 3,
            "offset": 1204117,
            "key": None,
            "timestamp_ms": 1709641801250,
        },
        "processed_at": 1709641802000,
        "document": {
            "id": "doc-1",
            "text": "INVOICE ...",
            "sha256": "ab" * 32,
            "source": {"mailbox": "ap@example.com", "received": "2024-03-05"},
            "tenant": "acme",
        },
        "provider_statuses": ["200", "500", "200"],
        "headers": [
            {"key": "traceparent", "value_b64": "MDA="},
            {"key": "empty", "value_b64": None},
        ],
        "input_sha256": "ab" * 32,
        "input_bytes": 11,
        "truncated": False,
    }
    if kind == "over-budget":
        body["budget"] = {"name": "record_tokens", "limit": 4000, "used": 5210}
    if kind == "dlq":
        body["provider_status"] = 400
    envelope: dict[str, Any] = json.loads(envelope_bytes(kind, body))
    return envelope


@pytest.mark.parametrize("kind", list(ENVELOPE_KINDS))
def test_envelope_schema_roundtrips_the_pipeline_envelope(kind: str) -> None:
    """Each envelope kind's schema parses and round-trips an envelope the pipeline writes."""
    envelope = _envelope(kind)
    datum = envelope_datum(envelope)
    read = _roundtrip(envelope_schema(kind), datum)
    assert read["processed_at"] == datetime(2024, 3, 5, 12, 30, 2, tzinfo=UTC)
    assert read["source"]["timestamp_ms"] == datetime(2024, 3, 5, 12, 30, 1, 250_000, tzinfo=UTC)
    assert json.loads(read["document"]["source"]) == envelope["document"]["source"]
    assert read["raw_value_b64"] is None
    assert read["errors"] == envelope["errors"]
    assert read["attempts"] == envelope["attempts"]
    assert read["budget"] == envelope.get("budget")
    assert read["provider_status"] == envelope.get("provider_status")


@pytest.mark.parametrize("kind", list(ENVELOPE_KINDS))
def test_envelope_schema_has_every_field_the_pipeline_writes(kind: str) -> None:
    """The schema's top-level fields are exactly the envelope's keys, optional parts included."""
    names = {f["name"] for f in envelope_schema(kind)["fields"]}
    written = set(_envelope(kind)) | {"budget", "provider_status", "raw_value_b64"}
    assert names == written
    assert envelope_schema(kind)["fields"][1]["name"] == "envelope_version"
    assert ENVELOPE_SCHEMA_VERSION == ENVELOPE_VERSION


def test_undecoded_input_envelope_carries_raw_bytes() -> None:
    """A dead letter without a document carries raw_value_b64 and a null document."""
    envelope = _envelope("dlq")
    del envelope["document"]
    envelope["raw_value_b64"] = "//79"
    read = _roundtrip(envelope_schema("dlq"), envelope_datum(envelope))
    assert (read["document"], read["raw_value_b64"]) == (None, "//79")


def test_envelope_datum_leaves_its_input_unchanged() -> None:
    """envelope_datum copies before it serialises document.source."""
    envelope = _envelope("invalid")
    before = copy.deepcopy(envelope)
    envelope_datum(envelope)
    assert envelope == before


def test_unknown_envelope_kind_is_a_config_error() -> None:
    """Asking for an envelope kind that does not exist names the kinds that do."""
    with pytest.raises(ConfigError, match="invalid, over-budget, dlq"):
        envelope_schema("valid")


def test_envelope_files_are_written_and_checked(tmp_path: Path) -> None:
    """avro/_envelopes/<kind>/v1.avsc are generated; missing and stray ones are reported."""
    written = write_schema_files(tmp_path)
    envelopes = tmp_path / "avro" / "_envelopes"
    assert [p for p in written if envelopes in p.parents] == [
        envelopes / kind / "v1.avsc" for kind in ENVELOPE_KINDS
    ]
    (envelopes / "dlq" / "v1.avsc").unlink()
    (envelopes / "valid").mkdir()
    (envelopes / "valid" / "v1.avsc").write_text("{}\n", encoding="utf-8")
    assert check_schema_files(tmp_path) == [
        "avro/_envelopes/dlq/v1.avsc: missing; generate it for envelope dlq.v1",
        "avro/_envelopes/valid/v1.avsc: no envelope kind valid v1",
    ]


# -- the real registry agrees -------------------------------------------------------------


@pytest.mark.integration
def test_local_registry_agrees_with_the_compatibility_lines() -> None:
    """Apicurio at FULL takes v1-before-grounding, v1 and v2 in one subject, refuses v3 (409)."""
    cache = default_cache_dir()
    today = avro_schema_for(get_contract("invoice", 1))
    before_grounding = today | {"fields": today["fields"][:-1]}

    def schema(value: dict[str, Any]) -> Schema:
        return Schema(json.dumps(value), schema_type="AVRO")

    with (
        LocalRegistry(cache, progress=lambda _: None) as registry,
        SchemaRegistryClient({"url": registry.url}) as client,
    ):
        subject = "invoices.valid-value"
        client.register_schema(subject, schema(before_grounding))
        client.set_compatibility(subject_name=subject, level="FULL")
        for version in (1, 2):
            client.register_schema(
                subject, schema(avro_schema_for(get_contract("invoice", version)))
            )
        assert client.get_versions(subject) == [1, 2, 3]
        v3 = schema(avro_schema_for(get_contract("invoice", 3)))
        with pytest.raises(SchemaRegistryError) as refused:
            client.register_schema(subject, v3)
        assert refused.value.http_status_code == 409
        client.register_schema("invoices-v3.valid-value", v3)
        for kind in ENVELOPE_KINDS:
            client.register_schema(f"invoices.{kind}-value", schema(envelope_schema(kind)))
