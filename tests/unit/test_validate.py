"""Strict validation of a repaired answer: the JSON body it validates is built fast, and
values the fast encoder refuses still validate."""

from __future__ import annotations

import json

import pytest

from contracts import SAMPLES_DIR, get_contract
from streams.errors import ContractViolation
from streams.validate import validate

ANSWER = json.loads((SAMPLES_DIR / "invoice" / "01-acme-industrial-usd.json").read_text("utf-8"))


def test_a_sample_answer_validates() -> None:
    record = validate(get_contract("invoice", 1), ANSWER, raw_output="")
    assert record.model_dump(mode="json")["invoice_number"] == ANSWER["invoice_number"]


def test_an_integer_past_64_bits_is_a_field_error_not_a_crash() -> None:
    """orjson refuses ints past 64 bits; validation falls back to json and reports the field."""
    answer = {**ANSWER, "total": 2**70}
    with pytest.raises(ContractViolation) as caught:
        validate(get_contract("invoice", 1), answer, raw_output="")
    assert any(e.path == "total" for e in caught.value.errors)
