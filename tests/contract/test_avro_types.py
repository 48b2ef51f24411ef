"""A user's model built from the common types maps to Avro; anything else is refused by name."""

from __future__ import annotations

import enum
import io
import uuid
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Literal

import fastavro
import pytest
from pydantic import BaseModel, ConfigDict, Field

from streams.avro_schema import avro_schema_for, to_avro_datum
from streams.contract import Contract, Prompt
from streams.errors import ConfigError


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Address(BaseModel):
    """Where to ship."""

    model_config = ConfigDict(extra="forbid")
    street: str
    city: str


class Ticket(BaseModel):
    """A support ticket, using every type the mapping promises."""

    model_config = ConfigDict(extra="forbid")
    id: uuid.UUID
    opened: date
    updated: datetime
    channel: Literal["email", "phone"]
    priority: Priority
    refund: Decimal = Field(max_digits=8, decimal_places=2)
    note: str | None = None
    address: Address
    previous: list[Address] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)


def _contract(model: type[BaseModel]) -> Contract:
    return Contract(name="ticket", version=1, model=model, prompt=Prompt("Extract it."))


def test_every_common_type_round_trips_through_avro() -> None:
    """UUID, date, datetime, Literal, Enum, Decimal, Optional, nested, lists, dict[str, str]."""
    schema = avro_schema_for(_contract(Ticket))
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert schema["namespace"] == "ticket.v1"
    assert types["id"] == {"type": "string", "logicalType": "uuid"}
    assert types["opened"] == {"type": "int", "logicalType": "date"}
    assert types["refund"] == {
        "type": "bytes",
        "logicalType": "decimal",
        "precision": 8,
        "scale": 2,
    }
    assert types["note"] == ["null", "string"]
    assert types["labels"] == {"type": "map", "values": "string"}
    assert types["previous"] == {"type": "array", "items": "ticket.v1.Address"}
    ticket = Ticket(
        id=uuid.UUID(int=7),
        opened=date(2026, 1, 2),
        updated=datetime(2026, 1, 3, 4, 5, 6, 789, tzinfo=UTC),
        channel="phone",
        priority=Priority.HIGH,
        refund=Decimal("12.50"),
        address=Address(street="1 Main St", city="Springfield"),
        previous=[Address(street="2 Side St", city="Shelbyville")],
        tags=["late"],
        labels={"team": "billing"},
    )
    datum: dict[str, Any] = to_avro_datum(ticket) | {"provenance": _provenance()}
    parsed = fastavro.parse_schema(schema)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, datum)
    buffer.seek(0)
    back = fastavro.schemaless_reader(buffer, parsed)
    back.pop("provenance")
    back.pop("grounding")
    assert Ticket.model_validate(back) == ticket


class _Union(BaseModel):
    value: int | str


class _IntKeys(BaseModel):
    counts: dict[int, str]


class _Time(BaseModel):
    at: time


class _Loose(BaseModel):
    amount: Decimal


class _Nested(BaseModel):
    inner: _Union


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (_Union, r"_Union\.value: only `T \| None` unions map to Avro.*; use one type"),
        (_IntKeys, r"_IntKeys\.counts: Avro maps need str keys.*; use dict\[str, T\]"),
        (_Time, r"_Time\.at: no Avro type for time; use str, int, float"),
        (_Loose, r"_Loose\.amount: a Decimal needs Field\(max_digits=\.\.\., decimal_places"),
        (_Nested, r"_Union\.value: only `T \| None`"),
    ],
)
def test_unsupported_constructs_are_refused_naming_the_field(
    model: type[BaseModel], message: str
) -> None:
    """The ConfigError names the model and field, and what to use instead."""
    with pytest.raises(ConfigError, match=message):
        avro_schema_for(_contract(model))


def _provenance() -> dict[str, Any]:
    return {
        "pipeline": "p",
        "contract": "ticket",
        "contract_version": 1,
        "schema_id": None,
        "prompt_version": "0" * 12,
        "provider": "none",
        "model_requested": "m",
        "model_reported": "m",
        "attempts": 1,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "latency_ms": 0.0,
        "cache_hit": False,
        "repairs": [],
        "source_topic": "t",
        "source_partition": 0,
        "source_offset": 0,
        "source_key": None,
        "input_sha256": "0" * 64,
        "processed_at": 0,
    }
