"""The invoice contract: samples, field constraints, cross-field rules and the prompt."""

from __future__ import annotations

import copy
import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contracts import SAMPLES_DIR, Example, Prompt, get_contract
from contracts.invoice import INVOICE_V1, ISO_4217_CODES, Invoice, LineItem

INVOICE_SAMPLES = SAMPLES_DIR / "invoice"
SAMPLE_ANSWERS = sorted(INVOICE_SAMPLES.glob("*.json"))


def _answer(name: str = "01-acme-industrial-usd.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((INVOICE_SAMPLES / name).read_text(encoding="utf-8"))
    return data


def _errors(data: dict[str, Any]) -> list[tuple[str, tuple[str | int, ...]]]:
    with pytest.raises(ValidationError) as info:
        Invoice.model_validate_json(json.dumps(data), strict=True)
    return [(e["type"], e["loc"]) for e in info.value.errors()]


# -- samples -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLE_ANSWERS, ids=lambda p: p.stem)
def test_sample_answer_validates_strictly(path: Path) -> None:
    """Every sample answer is a valid Invoice under strict JSON validation."""
    Invoice.model_validate_json(path.read_text(encoding="utf-8"), strict=True)


def test_samples_come_in_document_answer_pairs() -> None:
    """Each sample document has an answer and each answer a document, 20 pairs at least."""
    documents = {p.stem for p in INVOICE_SAMPLES.glob("*.txt")}
    answers = {p.stem for p in SAMPLE_ANSWERS}
    assert documents == answers
    assert len(answers) >= 20


@pytest.mark.parametrize("path", SAMPLE_ANSWERS, ids=lambda p: p.stem)
def test_sample_answer_writes_money_as_json_numbers(path: Path) -> None:
    """Sample answers carry money and quantities as JSON numbers, never strings."""
    data = json.loads(path.read_text(encoding="utf-8"))
    numbers = [data["subtotal"], data["tax"], data["total"]]
    for item in data["line_items"]:
        numbers += [item["quantity"], item["unit_price"], item["amount"]]
    assert all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers)


def test_bad_total_fixture_fails_only_on_the_total() -> None:
    """The _bad/bad-total answer is well formed but always fails with total_mismatch."""
    document = INVOICE_SAMPLES / "_bad" / "bad-total.txt"
    assert document.is_file()
    assert _errors(_answer("_bad/bad-total.json")) == [("total_mismatch", ("total",))]


# -- field constraints --------------------------------------------------------------------


@pytest.mark.parametrize("code", ["XYZ", "HRK", "XXX", "XAU"])
def test_unknown_currency_is_rejected(code: str) -> None:
    """Three capital letters that are not an active ISO 4217 currency fail unknown_currency."""
    data = _answer() | {"currency": code}
    assert _errors(data) == [("unknown_currency", ("currency",))]


@pytest.mark.parametrize("code", ["usd", "US$", "EURO", ""])
def test_malformed_currency_fails_the_pattern(code: str) -> None:
    """A currency that is not three capital letters fails before the ISO lookup."""
    assert _errors(_answer() | {"currency": code}) == [("string_pattern_mismatch", ("currency",))]


def test_iso_codes_are_three_capital_letters() -> None:
    """The embedded ISO 4217 set holds well-formed codes, including the common ones."""
    assert all(len(c) == 3 and c.isascii() and c.isupper() for c in ISO_4217_CODES)
    assert {"EUR", "USD", "GBP", "JPY", "CHF", "AUD", "CAD"} <= ISO_4217_CODES


def test_vendor_is_stripped_and_must_not_be_blank() -> None:
    """vendor is stripped of surrounding whitespace, and a blank vendor is rejected."""
    invoice = Invoice.model_validate_json(
        json.dumps(_answer() | {"vendor": "  Acme Industrial Supply Co. \n"}), strict=True
    )
    assert invoice.vendor == "Acme Industrial Supply Co."
    assert _errors(_answer() | {"vendor": "   "}) == [("string_too_short", ("vendor",))]


def test_unknown_fields_are_forbidden() -> None:
    """An answer with a field the contract does not define is rejected, not ignored."""
    assert _errors(_answer() | {"notes": "net 30"}) == [("extra_forbidden", ("notes",))]


def test_money_with_more_than_two_places_is_rejected() -> None:
    """Money amounts carry at most two decimal places."""
    data = _answer()
    data["tax"] = 47.441
    assert _errors(data) == [("decimal_max_places", ("tax",))]


def test_quantity_must_be_positive_and_price_non_negative() -> None:
    """A zero quantity and a negative unit price are each rejected at their path."""
    data = _answer()
    data["line_items"][0]["quantity"] = 0
    data["line_items"][1]["unit_price"] = -1
    assert _errors(data) == [
        ("greater_than", ("line_items", 0, "quantity")),
        ("greater_than_equal", ("line_items", 1, "unit_price")),
    ]


def test_at_least_one_line_item_is_required() -> None:
    """An invoice without line items is rejected."""
    assert _errors(_answer() | {"line_items": []}) == [("too_short", ("line_items",))]


def test_invoice_is_frozen() -> None:
    """A validated invoice cannot be changed afterwards."""
    invoice = Invoice.model_validate_json(json.dumps(_answer()), strict=True)
    with pytest.raises(ValidationError, match="frozen"):
        invoice.total = Decimal("1")  # type: ignore[misc]


def test_strict_mode_rejects_numeric_strings_for_dates() -> None:
    """Dates must be ISO date strings; a timestamp number is not accepted in strict mode."""
    assert _errors(_answer() | {"issue_date": 1709596800}) == [("date_type", ("issue_date",))]


# -- cross-field rules --------------------------------------------------------------------


def test_line_amount_must_match_quantity_times_price() -> None:
    """An amount off quantity * unit_price by more than 0.01 fails at that line's amount."""
    data = _answer() | {"subtotal": 575.00, "total": 622.44}  # sums stay consistent
    data["line_items"][2]["amount"] = 180.00  # 2 x 89.99 = 179.98
    assert _errors(data) == [("line_amount_mismatch", ("line_items", 2, "amount"))]


def test_line_amount_rounding_within_a_cent_is_accepted() -> None:
    """A line amount rounded to the cent (12.5 * 3.99 = 49.875, printed 49.88) passes."""
    data = _answer("17-van-dijk-vers-eur.json")
    assert data["line_items"][0] == {
        "description": "Tomaten, tros",
        "quantity": 12.5,
        "unit_price": 3.99,
        "amount": 49.88,
    }
    Invoice.model_validate_json(json.dumps(data), strict=True)


def test_line_items_must_sum_to_subtotal() -> None:
    """A subtotal that is not the sum of the line amounts fails line_items_sum_mismatch."""
    data = _answer()
    data["subtotal"] = 575.98
    data["total"] = 623.42  # keep subtotal + tax = total so only one rule trips
    assert _errors(data) == [("line_items_sum_mismatch", ("subtotal",))]


def test_subtotal_plus_tax_must_equal_total() -> None:
    """A total that is not subtotal + tax fails total_mismatch at total."""
    assert _errors(_answer() | {"total": 574.98}) == [("total_mismatch", ("total",))]


def test_due_date_must_not_precede_issue_date() -> None:
    """A due date before the issue date fails due_before_issue at due_date."""
    assert _errors(_answer() | {"due_date": "2024-03-04"}) == [("due_before_issue", ("due_date",))]


def test_due_date_equal_to_issue_date_is_accepted() -> None:
    """An invoice due on receipt (due date = issue date) is valid."""
    Invoice.model_validate_json(json.dumps(_answer() | {"due_date": "2024-03-05"}), strict=True)


def test_all_cross_field_problems_are_reported_together() -> None:
    """One answer breaking every rule gets every error at once, for a single re-ask."""
    data = _answer() | {"due_date": "2024-01-01", "subtotal": 1.00, "total": 2.00}
    data["line_items"][0]["amount"] = 1.00
    assert _errors(data) == [
        ("line_amount_mismatch", ("line_items", 0, "amount")),
        ("line_items_sum_mismatch", ("subtotal",)),
        ("total_mismatch", ("total",)),
        ("due_before_issue", ("due_date",)),
    ]


def test_cross_field_messages_name_the_fields_and_values() -> None:
    """Error messages name the fields involved and the expected value, for the re-ask."""
    data = _answer() | {"total": 600.00}
    with pytest.raises(ValidationError) as info:
        Invoice.model_validate_json(json.dumps(data), strict=True)
    (error,) = info.value.errors()
    assert error["msg"].startswith("total 600")
    assert error["msg"].endswith("is not subtotal 574.98 + tax 47.44 = 622.42")
    assert set(error["ctx"]) == {"total", "subtotal", "tax", "expected"}
    assert error["ctx"]["expected"] == "622.42"
    json.dumps(info.value.errors(include_url=False, include_input=False))


# -- schema and prompt --------------------------------------------------------------------


def _models() -> list[type[BaseModel]]:
    return [Invoice, LineItem]


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.__name__)
def test_every_field_has_a_description(model: type[BaseModel]) -> None:
    """Every field carries a description, since that is what the model is told."""
    missing = [name for name, info in model.model_fields.items() if not info.description]
    assert missing == []


def test_json_schema_asks_for_numbers_not_strings() -> None:
    """Money and quantities are plain JSON numbers in the schema sent to the model."""
    schema = INVOICE_V1.json_schema()
    line = schema["$defs"]["LineItem"]["properties"]
    for prop in (schema["properties"][k] for k in ("subtotal", "tax", "total")):
        assert prop["type"] == "number"
    for prop in (line[k] for k in ("quantity", "unit_price", "amount")):
        assert prop["type"] == "number"
    assert schema["additionalProperties"] is False


def test_contract_is_registered() -> None:
    """invoice v1 is registered on import with BACKWARD compatibility."""
    assert get_contract("invoice", 1) is INVOICE_V1
    assert INVOICE_V1.model is Invoice
    assert INVOICE_V1.compatibility == "BACKWARD"


@pytest.mark.parametrize("index", [0, 1])
def test_prompt_example_records_are_valid(index: int) -> None:
    """Each worked example in the prompt is itself a valid invoice."""
    record = INVOICE_V1.prompt.examples[index].record
    Invoice.model_validate_json(json.dumps(record), strict=True)


def test_prompt_version_is_pinned() -> None:
    """Changing the invoice prompt is deliberate: it changes cache keys and provenance."""
    assert INVOICE_V1.prompt.version == "f76a88a301d6"


def test_prompt_version_is_deterministic() -> None:
    """An equal prompt built separately has the same version."""
    prompt = INVOICE_V1.prompt
    rebuilt = Prompt(
        instructions=str(prompt.instructions),
        examples=tuple(Example(e.document, copy.deepcopy(e.record)) for e in prompt.examples),
    )
    assert rebuilt.version == prompt.version


def test_prompt_version_changes_with_instructions_or_examples() -> None:
    """Editing the instructions or an example record yields a new prompt version."""
    prompt = INVOICE_V1.prompt
    reworded = dataclasses.replace(prompt, instructions=prompt.instructions + "\nBe brief.")
    record = copy.deepcopy(prompt.examples[0].record) | {"invoice_number": "BW-1043"}
    new_example = dataclasses.replace(
        prompt, examples=(Example(prompt.examples[0].document, record), *prompt.examples[1:])
    )
    versions = {prompt.version, reworded.version, new_example.version}
    assert len(versions) == 3
