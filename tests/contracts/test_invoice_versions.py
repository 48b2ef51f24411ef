"""Invoice v2 (an optional purchase order) and v3 (a breaking vendor record), and their lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import SAMPLES_DIR, ContractVersion, Prompt, get_contract
from contracts.invoice import INVOICE_V1
from contracts.invoice import Invoice as InvoiceV1
from contracts.invoice_v2 import INVOICE_V2
from contracts.invoice_v2 import Invoice as InvoiceV2
from contracts.invoice_v3 import INVOICE_V3, Vendor
from contracts.invoice_v3 import Invoice as InvoiceV3
from streams.grounding import ground

INVOICE_ANSWERS = sorted((SAMPLES_DIR / "invoice").glob("*.json"))


def _v1_answer() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(INVOICE_ANSWERS[0].read_text(encoding="utf-8"))
    return data


def _v3_answer() -> dict[str, Any]:
    data = _v1_answer()
    return data | {"vendor": {"name": data["vendor"], "tax_id": "US-94-1234567"}}


def _errors(model: Any, data: dict[str, Any]) -> list[tuple[str, tuple[str | int, ...]]]:
    with pytest.raises(ValidationError) as info:
        model.model_validate_json(json.dumps(data), strict=True)
    return [(e["type"], e["loc"]) for e in info.value.errors()]


# -- the version lines --------------------------------------------------------------------


def test_versions_and_compatibility_lines() -> None:
    """v1 starts the line, v2 is FULL compatible with v1, v3 starts a new line."""
    lines = [
        (c.version, c.compatibility, c.compatible_with)
        for c in (get_contract("invoice", n) for n in (1, 2, 3))
    ]
    assert lines == [(1, "BACKWARD", None), (2, "FULL", 1), (3, "BACKWARD", None)]
    assert (INVOICE_V2.model, INVOICE_V3.model) == (InvoiceV2, InvoiceV3)


def test_v1_is_untouched() -> None:
    """v1's model and prompt are as they were: v2 and v3 build on copies."""
    assert get_contract("invoice", 1).model is InvoiceV1
    assert INVOICE_V1.prompt.version == "f76a88a301d6"
    assert "purchase_order" not in InvoiceV1.model_fields


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"version": 2, "compatible_with": 2}, "must name an earlier version"),
        ({"version": 2, "compatible_with": 0}, "must name an earlier version"),
        ({"version": 2, "compatible_with": 1, "compatibility": "NONE"}, "cannot be compatible"),
    ],
)
def test_compatible_with_must_name_an_earlier_version(kwargs: Any, message: str) -> None:
    """A version cannot be compatible with itself, a later one, or under level NONE."""
    with pytest.raises(ValueError, match=message):
        ContractVersion(name="probe", model=InvoiceV1, prompt=Prompt("p"), **kwargs)


# -- v2 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", INVOICE_ANSWERS, ids=lambda p: p.stem)
def test_v2_accepts_every_v1_answer(path: Path) -> None:
    """Every v1 sample is a valid v2 invoice, with no purchase order."""
    invoice = InvoiceV2.model_validate_json(path.read_text(encoding="utf-8"), strict=True)
    assert invoice.purchase_order is None


def test_v2_keeps_v1_rules_and_strips_the_purchase_order() -> None:
    """v2 is a v1 invoice: the same cross-field errors, plus a stripped purchase_order."""
    assert issubclass(InvoiceV2, InvoiceV1)
    assert _errors(InvoiceV2, _v1_answer() | {"total": 1.0}) == [("total_mismatch", ("total",))]
    data = _v1_answer() | {"purchase_order": " 4500-8812 "}
    assert InvoiceV2.model_validate_json(json.dumps(data), strict=True).purchase_order == (
        "4500-8812"
    )
    assert _errors(InvoiceV2, _v1_answer() | {"purchase_order": " "}) == [
        ("string_too_short", ("purchase_order",))
    ]


def test_v2_prompt_teaches_the_purchase_order() -> None:
    """The v2 instructions explain purchase_order; its examples show one set and one null."""
    assert "purchase_order" in INVOICE_V2.prompt.instructions
    assert INVOICE_V2.prompt.instructions.startswith(INVOICE_V1.prompt.instructions)
    records = [e.record for e in INVOICE_V2.prompt.examples]
    assert [r["purchase_order"] for r in records] == ["4500-8812", None]
    for example in INVOICE_V2.prompt.examples:
        invoice = InvoiceV2.model_validate_json(json.dumps(example.record), strict=True)
        assert ground(invoice, example.document).missing() == []


# -- v3 ------------------------------------------------------------------------------------


def test_v3_vendor_is_a_record() -> None:
    """v3 takes vendor as {name, tax_id}; v1's vendor string is a type error there."""
    invoice = InvoiceV3.model_validate_json(json.dumps(_v3_answer()), strict=True)
    assert invoice.vendor == Vendor(name="Acme Industrial Supply Co.", tax_id="US-94-1234567")
    assert _errors(InvoiceV3, _v1_answer()) == [("model_type", ("vendor",))]


def test_v3_keeps_v1_cross_field_rules_at_the_same_fields() -> None:
    """v3 reports v1's arithmetic and date errors, all together, at the same locations."""
    data = _v3_answer() | {"due_date": "2024-01-01", "subtotal": 1.0, "total": 2.0}
    data["line_items"][0]["amount"] = 1.0
    assert _errors(InvoiceV3, data) == [
        ("line_amount_mismatch", ("line_items", 0, "amount")),
        ("line_items_sum_mismatch", ("subtotal",)),
        ("total_mismatch", ("total",)),
        ("due_before_issue", ("due_date",)),
    ]


def test_v3_prompt_teaches_the_vendor_record() -> None:
    """The v3 instructions describe vendor.name and vendor.tax_id; examples are grounded."""
    assert "vendor.tax_id" in INVOICE_V3.prompt.instructions
    assert "vendor.tax_id" not in INVOICE_V2.prompt.instructions
    for example in INVOICE_V3.prompt.examples:
        invoice = InvoiceV3.model_validate_json(json.dumps(example.record), strict=True)
        assert ground(invoice, example.document).missing() == []


def test_v2_and_v3_examples_leave_earlier_prompts_alone() -> None:
    """Building v2 and v3 examples did not change the records of the versions before."""
    assert "purchase_order" not in INVOICE_V1.prompt.examples[0].record
    assert isinstance(INVOICE_V2.prompt.examples[1].record["vendor"], str)


def test_prompt_versions_are_pinned() -> None:
    """Changing a v2 or v3 prompt is deliberate: it changes cache keys and provenance."""
    assert (INVOICE_V2.prompt.version, INVOICE_V3.prompt.version) == (
        "c41960a5e811",
        "690b920ad399",
    )
