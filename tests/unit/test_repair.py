"""Deterministic repair names every change it makes and never calls a model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.errors import MalformedOutput
from streams.repair import repair

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "total": {"anyOf": [{"type": "number"}, {"type": "string"}]},
        "issued": {"type": "string", "format": "date"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
        "name": {"type": "string"},
    },
    "$defs": {"Item": {"type": "object", "properties": {"amount": {"type": "number"}}}},
}


def test_clean_json_needs_no_repair() -> None:
    """Valid JSON passes through untouched with no repairs recorded."""
    out = repair('{"name": "A", "total": 5}', SCHEMA)
    assert out.value == {"name": "A", "total": 5}
    assert out.repairs == ()


def test_code_fence_and_prose_are_stripped() -> None:
    """Markdown fences and prose around the object are removed, and named."""
    out = repair('```json\n{"name": "A"}\n```', SCHEMA)
    assert out.value == {"name": "A"}
    assert out.repairs == ("strip_code_fence",)
    out = repair('Sure! Here it is: {"name": "A"} Hope it helps.', SCHEMA)
    assert out.repairs == ("extract_json_object",)


def test_trailing_commas_removed() -> None:
    """Trailing commas before a closing bracket are removed."""
    out = repair('{"items": [{"amount": 1},], "name": "A",}', SCHEMA)
    assert out.value == {"items": [{"amount": 1}], "name": "A"}
    assert "remove_trailing_commas" in out.repairs


@pytest.mark.parametrize(
    ("text", "number"),
    [("$1,234.50", 1234.5), ("1.234,50 EUR", 1234.5), ("CHF 1'200", 1200), ("12,5", 12.5)],
)
def test_numbers_from_strings(text: str, number: float) -> None:
    """Amounts written as strings with symbols or separators become numbers."""
    out = repair(f'{{"total": "{text}"}}', SCHEMA)
    assert out.value["total"] == number
    assert out.repairs == ("number_from_string:total",)


def test_nested_numbers_follow_refs() -> None:
    """Repairs follow $ref into nested definitions and name the path."""
    out = repair('{"items": [{"amount": "7.10"}]}', SCHEMA)
    assert out.value == {"items": [{"amount": 7.1}]}
    assert out.repairs == ("number_from_string:items[0].amount",)


def test_dates_and_codes() -> None:
    """Common date layouts become ISO dates; ISO codes are upper-cased."""
    out = repair('{"issued": "March 5, 2024", "currency": "eur"}', SCHEMA)
    assert out.value == {"issued": "2024-03-05", "currency": "EUR"}
    assert set(out.repairs) == {"date_to_iso:issued", "uppercase_code:currency"}


def test_unrecoverable_output_raises_with_last_output() -> None:
    """Garbage raises MalformedOutput carrying the raw answer."""
    with pytest.raises(MalformedOutput) as info:
        repair('{"name": "A", "total": ', SCHEMA)
    assert info.value.last_output == '{"name": "A", "total": '


def test_non_object_json_is_malformed() -> None:
    """A JSON array or string is not a record."""
    with pytest.raises(MalformedOutput, match="not an object"):
        repair("[1, 2]", SCHEMA)


def test_does_not_touch_plain_strings() -> None:
    """Strings in non-numeric fields are left alone, even if they look numeric."""
    out = repair('{"name": "1,234"}', SCHEMA)
    assert out.value == {"name": "1,234"}


def test_null_for_defaulted_field_is_dropped() -> None:
    """A strict-mode null for a field with a default is dropped so the default applies."""
    schema = {"type": "object", "properties": {"kind": {"type": "string", "default": "invoice"}}}
    out = repair('{"kind": null}', schema)
    assert out.value == {}
    assert out.repairs == ("drop_null_default:kind",)


def test_float_noise_is_rounded_but_real_precision_kept() -> None:
    """12.340000000000002 becomes 12.34; a genuine 12.345 is left for validation to judge."""
    out = repair('{"total": 12.340000000000002, "items": [{"amount": 12.345}]}', SCHEMA)
    assert out.value == {"total": 12.34, "items": [{"amount": 12.345}]}
    assert out.repairs == ("round_float_noise:total",)


def test_the_schema_plan_stays_bounded_over_many_answers() -> None:
    """Resolved schema nodes are remembered per schema; unknown keys and new schemas
    never make that memory grow without bound."""
    from streams import repair as module

    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    for i in range(200):
        repair(json.dumps({"a": "1", f"extra_{i}": {"deep": [i]}}), schema)
    assert len(module._plan_for(schema)) <= 4
    for _ in range(3 * module._MAX_PLANS):
        repair('{"a": 1}', {"type": "object", "properties": {"a": {"type": "integer"}}})
    assert len(module._PLANS) <= module._MAX_PLANS
