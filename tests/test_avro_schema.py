"""Avro schemas generated from the contracts, their datums and the checked-in files."""

from __future__ import annotations

import enum
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import fastavro
import pytest
from pydantic import BaseModel, Field

from contracts import SAMPLES_DIR, ContractVersion, Prompt, all_contracts, get_contract
from contracts.invoice import Invoice
from streams.avro_schema import (
    PROVENANCE_SCHEMA,
    avro_schema_for,
    check_schema_files,
    schema_path,
    to_avro_datum,
    write_schema_files,
)
from streams.errors import ConfigError

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
    # Deliberately not registered: the registry is global and the repo's avro/ check
    # must only see real contracts.
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
    """Each field of the invoice schema and of the provenance record carries a doc."""
    schema = avro_schema_for(get_contract("invoice", 1))
    line_item = next(f for f in schema["fields"] if f["name"] == "line_items")["type"]["items"]
    for field in [*schema["fields"], *line_item["fields"], *PROVENANCE_SCHEMA["fields"]]:
        assert field.get("doc"), field["name"]


def test_provenance_is_the_last_field() -> None:
    """The value schema ends with the provenance record, with the agreed fields in order."""
    schema = avro_schema_for(get_contract("invoice", 1))
    last = schema["fields"][-1]
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
    """Changing a returned schema does not leak into the next call or PROVENANCE_SCHEMA."""
    contract = get_contract("invoice", 1)
    first = avro_schema_for(contract)
    first["fields"][-1]["type"]["fields"].clear()
    first["fields"][0]["name"] = "changed"
    second = avro_schema_for(contract)
    assert second["fields"][0]["name"] == "vendor"
    assert len(second["fields"][-1]["type"]["fields"]) == len(PROVENANCE_SCHEMA["fields"])


@pytest.mark.parametrize("path", INVOICE_ANSWERS, ids=lambda p: p.stem)
def test_sample_record_roundtrips_through_avro(path: Path) -> None:
    """Each sample invoice survives an Avro write and read with Decimals and dates intact."""
    invoice = Invoice.model_validate_json(path.read_text(encoding="utf-8"), strict=True)
    datum = to_avro_datum(invoice) | {"provenance": PROVENANCE_DATUM}
    read = _roundtrip(avro_schema_for(get_contract("invoice", 1)), datum)
    assert read == datum
    assert isinstance(read["total"], Decimal)
    assert isinstance(read["issue_date"], date)
    assert read["provenance"]["processed_at"] == PROVENANCE_DATUM["processed_at"]
    read.pop("provenance")
    assert Invoice.model_validate(read) == invoice


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
    assert types["path"] == {"type": "array", "items": "contracts.probe.v1.Point"}
    assert types["end"] == ["null", "contracts.probe.v1.Point"]


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


@pytest.mark.parametrize(
    ("model", "message"),
    [
        pytest.param(LooseDecimal, "max_digits", id="decimal-without-limits"),
        pytest.param(AnyUnion, "T | None", id="union"),
        pytest.param(ClashingName, "reserved", id="provenance-field"),
    ],
)
def test_unmappable_models_are_config_errors(model: type[BaseModel], message: str) -> None:
    """A model Avro cannot carry fails at generation time with a ConfigError that says why."""
    with pytest.raises(ConfigError, match=message):
        avro_schema_for(_contract(model))


def test_invalid_contract_name_is_a_config_error() -> None:
    """A contract name that is no valid Avro namespace part is rejected."""
    with pytest.raises(ConfigError, match="namespace"):
        avro_schema_for(_contract(Point, name="sales-lead"))


# -- the checked-in files -----------------------------------------------------------------


def test_checked_in_schemas_match_the_models() -> None:
    """avro/ in the repository holds exactly the schemas the contracts generate."""
    assert check_schema_files(REPO_ROOT) == []


def test_write_is_deterministic_and_newline_terminated(tmp_path: Path) -> None:
    """Writing twice gives identical, sorted, pretty JSON ending in one newline."""
    (path,) = [p for p in write_schema_files(tmp_path) if p.parent.name == "invoice"]
    assert path == tmp_path / "avro" / "invoice" / "v1.avsc"
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


def test_check_reports_a_contract_avro_cannot_carry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A contract whose model has no Avro mapping is a reported problem, not a crash."""
    monkeypatch.setattr(
        "streams.avro_schema.all_contracts", lambda: iter([_contract(LooseDecimal)])
    )
    (problem,) = check_schema_files(tmp_path)
    assert problem.startswith("avro/probe/v1.avsc: cannot generate a schema for probe.v1: ")
    assert "max_digits" in problem
