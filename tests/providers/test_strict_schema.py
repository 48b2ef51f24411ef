"""The OpenAI strict-subset transform and the Anthropic tool input schema."""

from __future__ import annotations

import copy
import datetime
from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from streams.errors import ConfigError
from streams.providers.strict_schema import to_strict_schema, to_tool_input_schema

from ._support import Invoice, invoice_schema

#: Keywords that must never reach a strict-mode endpoint.
UNSUPPORTED = {
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "default",
    "examples",
    "oneOf",
    "allOf",
    "discriminator",
}


def nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every schema node below (and including) ``schema``."""
    if not isinstance(schema, dict):
        return
    yield schema
    for sub in schema.get("properties", {}).values():
        yield from nodes(sub)
    for sub in schema.get("$defs", {}).values():
        yield from nodes(sub)
    for sub in schema.get("anyOf", []):
        yield from nodes(sub)
    yield from nodes(schema.get("items"))


def allows_null(schema: dict[str, Any]) -> bool:
    typ = schema.get("type")
    if typ == "null" or (isinstance(typ, list) and "null" in typ):
        return True
    return any(allows_null(b) for b in schema.get("anyOf", []))


@pytest.fixture
def strict() -> dict[str, Any]:
    return to_strict_schema(invoice_schema())


def test_input_is_not_mutated() -> None:
    """The caller's schema comes back unchanged, even deep inside ``$defs``."""
    schema = invoice_schema()
    before = copy.deepcopy(schema)
    to_strict_schema(schema)
    to_tool_input_schema(schema)
    assert schema == before


def test_output_shares_no_objects_with_input() -> None:
    """Mutating the result cannot reach back into the caller's schema."""
    schema = invoice_schema()
    before = copy.deepcopy(schema)
    out = to_strict_schema(schema)
    for node in nodes(out):
        node.clear()
    assert schema == before


def test_every_object_is_closed_and_fully_required(strict: dict[str, Any]) -> None:
    """Each object node, ``$defs`` included, is closed and lists all its keys as required."""
    objects = [n for n in nodes(strict) if "properties" in n]
    assert len(objects) >= 4  # root, Address (defs and inlined seller), LineItem
    for node in objects:
        assert node["type"] == "object"
        assert node["additionalProperties"] is False
        assert node["required"] == list(node["properties"])


def test_no_unsupported_keyword_survives(strict: dict[str, Any]) -> None:
    """Validation keywords, ``format``, ``default`` and ``oneOf`` are gone from every node."""
    for node in nodes(strict):
        assert not UNSUPPORTED & set(node), node


def test_optional_fields_become_nullable_and_required_ones_do_not(strict: dict[str, Any]) -> None:
    """Fields that were optional accept null; fields that were required stay non-null."""
    props = strict["properties"]
    original_required = set(invoice_schema()["required"])
    for name, prop in props.items():
        assert allows_null(prop) == (name not in original_required), name


def test_optional_scalar_widens_type_and_optional_ref_wraps_in_any_of() -> None:
    """Plain scalars get ``type: [t, "null"]``; refs and enums get ``anyOf [.., null]``."""
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "c": {"$ref": "#/$defs/C"},
            "k": {"enum": ["a", "b"], "type": "string"},
        },
        "$defs": {"C": {"enum": ["x"], "type": "string"}},
    }
    props = to_strict_schema(schema)["properties"]
    assert props["n"] == {"type": ["integer", "null"]}
    assert props["c"] == {"anyOf": [{"$ref": "#/$defs/C"}, {"type": "null"}]}
    assert props["k"] == {"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}]}


def test_already_nullable_optional_is_not_wrapped_twice(strict: dict[str, Any]) -> None:
    """``X | None = None`` keeps its single null branch."""
    due = strict["properties"]["due"]
    assert due["anyOf"] == [
        {"type": "string", "description": "ISO 8601 date (YYYY-MM-DD)"},
        {"type": "null"},
    ]


def test_constraints_move_into_description(strict: dict[str, Any]) -> None:
    """Removed keywords are written into the node's description, after its own text."""
    number = strict["properties"]["number"]
    assert number["description"] == "Invoice number\nConstraints: pattern=^[A-Z]{3}-[0-9]+$"
    country = strict["$defs"]["Address"]["properties"]["country"]
    assert country["description"] == "ISO 3166-1 alpha-2\nConstraints: minLength=2; maxLength=2"
    lines = strict["properties"]["lines"]
    assert lines["description"] == "Constraints: minItems=1"
    qty = strict["$defs"]["LineItem"]["properties"]["quantity"]
    assert qty == {"title": "Quantity", "type": "integer", "description": "Constraints: minimum=1"}


def test_defaults_and_examples_become_hints_but_null_defaults_vanish() -> None:
    """A non-null default and examples are described; ``default: null`` is just dropped."""
    schema = {
        "type": "object",
        "properties": {
            "kind": {"type": "string", "default": "invoice", "examples": ["invoice", "credit"]},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        "required": ["kind", "note"],
    }
    props = to_strict_schema(schema)["properties"]
    assert props["kind"] == {
        "type": "string",
        "description": 'Default: "invoice"\nExamples: ["invoice", "credit"]',
    }
    assert props["note"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}


def test_pydantic_decimal_becomes_a_number() -> None:
    """Pydantic's ``anyOf [number, string+pattern]`` for Decimal collapses to ``number``."""

    class Price(BaseModel):
        amount: Decimal

    schema = Price.model_json_schema()
    schema["properties"]["amount"]["anyOf"][1]["pattern"] = r"^(?!^[-+.]*$)[+-]?0*\d*\.?\d*$"
    amount = to_strict_schema(schema)["properties"]["amount"]
    assert amount == {
        "title": "Amount",
        "type": "number",
        "description": "Decimal number, written as a JSON number (e.g. 1234.50)",
    }


def test_constrained_decimal_keeps_its_bounds_as_hints(strict: dict[str, Any]) -> None:
    """A constrained Decimal is a number whose bounds are described, optional or not."""
    price = strict["$defs"]["LineItem"]["properties"]["unit_price"]
    assert price["type"] == "number"
    assert price["description"].endswith("Constraints: exclusiveMinimum=0.0")
    tax = strict["properties"]["tax_rate"]
    assert tax["anyOf"][0]["type"] == "number"
    assert tax["anyOf"][0]["description"].endswith("Constraints: minimum=0.0; maximum=100.0")
    assert tax["anyOf"][1] == {"type": "null"}


def test_date_becomes_a_described_string(strict: dict[str, Any]) -> None:
    """``format: date`` is removed and spelled out as an ISO 8601 hint."""
    assert strict["properties"]["issued"] == {
        "title": "Issued",
        "type": "string",
        "description": "ISO 8601 date (YYYY-MM-DD)",
    }


def test_unknown_format_is_kept_as_a_constraint_hint() -> None:
    """A ``format`` without a plain-words hint is still shown to the model."""
    out = to_strict_schema({"type": "string", "format": "iban"})
    assert out == {"type": "string", "description": "Constraints: format=iban"}


def test_bare_refs_and_defs_are_kept(strict: dict[str, Any]) -> None:
    """A ``$ref`` on its own stays a reference; ``$defs`` stays at the root."""
    assert strict["properties"]["currency"] == {"$ref": "#/$defs/Currency"}
    assert strict["properties"]["lines"]["items"] == {"$ref": "#/$defs/LineItem"}
    assert set(strict["$defs"]) == {"Address", "Currency", "LineItem"}


def test_ref_with_siblings_is_inlined_and_strict(strict: dict[str, Any]) -> None:
    """``{"$ref", "description"}`` becomes the strict referenced object, with the description."""
    seller = strict["properties"]["seller"]
    assert "$ref" not in seller
    assert seller["description"] == "Who issued the invoice"
    assert seller["properties"] == strict["$defs"]["Address"]["properties"]
    assert seller["additionalProperties"] is False


def test_old_style_allof_ref_is_inlined() -> None:
    """``allOf: [{"$ref"}]`` plus a description (older pydantic) inlines the reference."""
    schema = {
        "type": "object",
        "properties": {"a": {"allOf": [{"$ref": "#/$defs/A"}], "description": "the a"}},
        "required": ["a"],
        "$defs": {"A": {"type": "object", "properties": {"x": {"type": "string"}}}},
    }
    a = to_strict_schema(schema)["properties"]["a"]
    assert a == {
        "type": "object",
        "description": "the a",
        "properties": {"x": {"type": ["string", "null"]}},
        "required": ["x"],
        "additionalProperties": False,
    }


def test_recursive_model_with_described_self_reference_terminates() -> None:
    """Inlining a self-reference stops at the second level instead of recursing forever."""

    class Node(BaseModel):
        name: str
        parent: Node | None = Field(None, description="enclosing node")
        children: list[Node] = Field(description="direct children")

    out = to_strict_schema(Node.model_json_schema())
    node_def = out["$defs"]["Node"]
    assert node_def["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert node_def["additionalProperties"] is False


def test_discriminated_union_becomes_any_of() -> None:
    """``oneOf`` + ``discriminator`` turns into a plain ``anyOf`` of strict objects."""

    class Cat(BaseModel):
        pet: Literal["cat"]
        lives: int

    class Dog(BaseModel):
        pet: Literal["dog"]
        good: bool

    class Owner(BaseModel):
        animal: Annotated[Cat | Dog, Field(discriminator="pet")]

    out = to_strict_schema(Owner.model_json_schema())
    animal = out["properties"]["animal"]
    assert animal == {
        "title": "Animal",
        "anyOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}],
    }
    assert out["$defs"]["Cat"]["required"] == ["pet", "lives"]


def test_free_form_map_is_rejected_at_build_time() -> None:
    """``dict[str, X]`` cannot be strict: a ConfigError names the field and the fix."""

    class Tagged(BaseModel):
        tags: dict[str, int]

    with pytest.raises(ConfigError, match=r"free-form map .* #/properties/tags"):
        to_strict_schema(Tagged.model_json_schema())


def test_tuple_is_rejected_at_build_time() -> None:
    """Positional tuples (``prefixItems``) raise a ConfigError suggesting a nested model."""

    class Point(BaseModel):
        xy: tuple[int, int]

    with pytest.raises(ConfigError, match="nested model"):
        to_strict_schema(Point.model_json_schema())


def test_dangling_ref_is_a_config_error() -> None:
    """A ``$ref`` to a missing definition fails clearly instead of with a KeyError."""
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/Nope", "title": "A"}}}
    with pytest.raises(ConfigError, match="points nowhere"):
        to_strict_schema(schema)


def test_extra_allow_is_closed_anyway() -> None:
    """An object with properties and ``additionalProperties: true`` is closed for strict mode."""
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "additionalProperties": True,
    }
    assert to_strict_schema(schema)["additionalProperties"] is False


def test_model_dump_of_realistic_contract_fits_strict_shape(strict: dict[str, Any]) -> None:
    """A full record of the contract has exactly the keys the strict schema requires."""
    record = Invoice.model_validate(
        {
            "number": "ABC-1",
            "issued": datetime.date(2024, 5, 1),
            "currency": "EUR",
            "seller": {"street": "Main 1", "country": "DE"},
            "lines": [{"description": "x", "quantity": 1, "unit_price": "2.50"}],
            "total": "2.50",
        }
    ).model_dump(mode="json")
    assert list(record) == strict["required"]
    assert list(record["seller"]) == strict["$defs"]["Address"]["required"]
    assert list(record["lines"][0]) == strict["$defs"]["LineItem"]["required"]


def test_tool_input_schema_keeps_constraints_and_defs() -> None:
    """Anthropic gets the full schema: constraints native, ``$defs`` at the object root."""
    schema = invoice_schema()
    out = to_tool_input_schema(schema)
    assert out == schema
    assert out is not schema


def test_tool_input_schema_inlines_a_root_ref() -> None:
    """A root ``$ref`` (TypeAdapter style) is inlined so the root is an object."""
    schema = {
        "$ref": "#/$defs/Inv",
        "$defs": {"Inv": {"type": "object", "properties": {"n": {"type": "string"}}}},
    }
    out = to_tool_input_schema(schema)
    assert out["type"] == "object"
    assert out["properties"] == {"n": {"type": "string"}}
    assert "$ref" not in out
    assert "Inv" in out["$defs"]


def test_tool_input_schema_rejects_a_non_object_root() -> None:
    """Anthropic tools take objects only: a list root is a ConfigError."""
    with pytest.raises(ConfigError, match="must be an object"):
        to_tool_input_schema({"type": "array", "items": {"type": "string"}})
