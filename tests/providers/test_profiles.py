"""Capability profiles: each table pinned, and what the transform keeps under each."""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal
from typing import Any

import llguidance
import pytest
from llguidance import LLMatcher

from contracts.invoice import Invoice
from streams.contract import discover, resolve
from streams.errors import ConfigError
from streams.providers import build_provider
from streams.providers.profiles import KEYWORDS, PROFILES, Treatment, profile_for, unenforced
from streams.providers.strict_schema import to_strict_schema
from streams.repair import repair
from streams.simulator import STRICT_UNSUPPORTED_KEYWORDS, check_strict_schema

E, H = Treatment.ENFORCE, Treatment.HINT
_BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
_LLAMA = {"minLength": E, "maxLength": E, "pattern": E, "format": E, **dict.fromkeys(_BOUNDS, E)}
_LLAMA |= {"minItems": E, "maxItems": E}

#: name -> (version, keywords, formats, bounds on integers only, decimals). A change
#: here is a change of what is sent: bump the profile's version with it.
PINNED: dict[str, tuple[int, dict[str, Treatment], set[str], bool, str]] = {
    "legacy": (1, {}, set(), False, "ignore"),
    "openai-strict": (
        1,
        {"pattern": E, "format": E, **dict.fromkeys(_BOUNDS, E), "multipleOf": E}
        | {"minItems": E, "maxItems": E},
        {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"},
        False,
        "number",
    ),
    "anthropic-tool": (
        1,
        dict.fromkeys(KEYWORDS, H),
        {"date", "date-time", "time", "duration", "email", "uri", "uuid", "ipv4", "ipv6"}
        | {"hostname"},
        False,
        "number",
    ),
    "llamacpp": (1, _LLAMA, {"date", "time", "date-time", "uuid"}, True, "pattern"),
    "ollama": (1, _LLAMA, {"date", "time", "date-time", "uuid"}, True, "pattern"),
    "vllm-guidance": (
        1,
        {k: E for k in KEYWORDS if k != "uniqueItems"},
        {"date", "date-time", "time", "duration", "email", "uri", "uuid", "ipv4", "ipv6"}
        | {"hostname"},
        False,
        "pattern",
    ),
    "vllm-xgrammar": (
        1,
        {"minLength": E, "maxLength": E, "pattern": E, **dict.fromkeys(_BOUNDS, E)}
        | {"minItems": E, "maxItems": E},
        set(),
        False,
        "pattern",
    ),
}

#: sha256 (first 16 hex) of the transform's output before profiles existed, per contract.
BEFORE_PROFILES = {
    "claim.v1": "590dde7f23351589",
    "invoice.v1": "1bcdd29815d91d3e",
    "invoice.v2": "277ed1a33eae742b",
    "invoice.v3": "95906d91840033be",
    "lead.v1": "6dca6c91586e9b58",
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_each_profile_is_pinned(name: str) -> None:
    """Every profile's version, keyword table, formats and decimal choice are as pinned."""
    version, keywords, formats, integer_only, decimals = PINNED[name]
    profile = PROFILES[name]
    assert (profile.version, dict(profile.keywords), set(profile.formats)) == (
        version,
        keywords,
        formats,
    )
    assert (profile.bounds_integer_only, profile.decimals) == (integer_only, decimals)
    assert profile.ident == f"{name}/v{version}"


def test_no_profile_is_left_unpinned() -> None:
    """A new profile needs a row in this test."""
    assert set(PROFILES) == set(PINNED)


@pytest.mark.parametrize("ref", sorted(BEFORE_PROFILES))
def test_legacy_is_the_transform_before_profiles(ref: str) -> None:
    """The legacy profile (and the default) sends byte-identical schemas to the old transform."""
    name, _, version = ref.partition(".v")
    schema = resolve(name, int(version)).json_schema()
    for sent in (to_strict_schema(schema), to_strict_schema(schema, PROFILES["legacy"])):
        digest = hashlib.sha256(json.dumps(sent, sort_keys=True).encode()).hexdigest()
        assert digest[:16] == BEFORE_PROFILES[ref]


def test_llamacpp_keeps_what_the_grammar_enforces() -> None:
    """pattern, format: date, minLength and minItems stay; money becomes a places regex."""
    sent = to_strict_schema(Invoice.model_json_schema(), profile_for("llamacpp"))
    props = sent["properties"]
    assert props["currency"]["pattern"] == "^[A-Z]{3}$"
    assert props["issue_date"]["format"] == "date"
    assert props["vendor"]["minLength"] == 1
    assert props["line_items"]["minItems"] == 1
    assert props["total"]["type"] == "string"
    tax = props["tax"]  # minimum 0: the regex is unsigned
    assert tax["pattern"] == r"^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$"
    assert "minimum" not in tax
    assert "Constraints" not in tax["description"]
    quantity = sent["$defs"]["LineItem"]["properties"]["quantity"]
    assert quantity["pattern"] == r"^(0|[1-9][0-9]*)(\.[0-9]{1,4})?$"
    assert "exclusiveMinimum=0" in quantity["description"]


def test_the_places_regex_matches_what_the_validator_accepts() -> None:
    """The two-places regex takes 12.50 and 0.5, refuses 12.505 and 1,000; validation agrees."""
    pattern = re.compile(
        to_strict_schema(Invoice.model_json_schema(), profile_for("llamacpp"))["properties"][
            "total"
        ]["pattern"]
    )
    for good in ("12.50", "0.5", "-3", "299200"):
        assert pattern.match(good), good
    for bad in ("12.505", "1,000", "01.5", "12.", "1e3"):
        assert not pattern.match(bad), bad
    assert Decimal("12.505").as_tuple().exponent == -3  # what decimal_max_places refuses


def test_a_string_decimal_passes_repair_unchanged() -> None:
    """ "12.50" sent for a places-marked number is kept exact, with no repair logged."""
    out = repair('{"total": "12.50"}', Invoice.model_json_schema())
    assert out.value["total"] == "12.50"
    assert out.repairs == ()


@pytest.mark.parametrize(
    ("answer", "expected", "repaired"),
    [
        ("12.4999999999", 12.5, True),  # 8e-12 relative: noise
        ("12.340000000000002", 12.34, True),
        ("12.345", 12.345, False),  # a third place is a value, for validation to refuse
        ("0.0049999", 0.0049999, False),  # rounding to 0.00 is not noise
    ],
)
def test_float_noise_is_rounded_only_within_1e9_relative(
    answer: str, expected: float, repaired: bool
) -> None:
    """round_float_noise rounds to the schema's places only when the change is 1e-9 relative."""
    out = repair(f'{{"total": {answer}}}', Invoice.model_json_schema())
    assert out.value["total"] == expected
    assert out.repairs == (("round_float_noise:total",) if repaired else ())


def test_openai_strict_output_passes_the_simulator_with_its_subset() -> None:
    """Every contract under openai-strict is accepted by strict mode minus what it enforces."""
    profile = profile_for("openai-strict")
    allowed = {k for k, t in profile.keywords.items() if t is E}
    for contract in discover():
        sent = to_strict_schema(contract.json_schema(), profile)
        assert check_strict_schema(sent, STRICT_UNSUPPORTED_KEYWORDS - allowed) == []


def _guidance(node: dict[str, Any]) -> tuple[bool, list[str]]:
    schema = {"type": "object", "properties": {"a": node}, "required": ["a"]}
    grammar = llguidance.grammar_from("json_schema", json.dumps(schema))
    is_error, warnings = LLMatcher.validate_grammar_with_warnings(grammar)
    return bool(is_error), list(warnings)


_PROBES: dict[str, dict[str, Any]] = {
    "minLength": {"type": "string", "minLength": 1},
    "maxLength": {"type": "string", "maxLength": 9},
    "pattern": {"type": "string", "pattern": "^[A-Z]{3}$"},
    "format": {"type": "string", "format": "date"},
    "minimum": {"type": "number", "minimum": 0},
    "exclusiveMinimum": {"type": "number", "exclusiveMinimum": 0},
    "maximum": {"type": "number", "maximum": 9},
    "exclusiveMaximum": {"type": "number", "exclusiveMaximum": 9},
    "multipleOf": {"type": "integer", "multipleOf": 5},
    "minItems": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    "maxItems": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    "uniqueItems": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    "minProperties": {
        "type": "object",
        "properties": {"x": {"type": "string"}},
        "required": ["x"],
        "minProperties": 1,
    },
    "maxProperties": {
        "type": "object",
        "properties": {"x": {"type": "string"}},
        "required": ["x"],
        "maxProperties": 1,
    },
}


@pytest.mark.parametrize("keyword", KEYWORDS)
def test_vllm_guidance_rows_are_what_llguidance_compiles(keyword: str) -> None:
    """llguidance (vLLM's guidance backend) compiles each ENFORCE keyword cleanly, no others."""
    profile = profile_for("vllm-guidance")
    is_error, warnings = _guidance(_PROBES[keyword])
    if profile.keywords.get(keyword) is E:
        assert (is_error, warnings) == (False, [])
    else:
        assert is_error or warnings


def test_vllm_guidance_formats_are_what_llguidance_knows() -> None:
    """Each format the guidance profile enforces compiles; an unknown one does not."""
    for fmt in sorted(profile_for("vllm-guidance").formats):
        assert _guidance({"type": "string", "format": fmt}) == (False, []), fmt
    assert _guidance({"type": "string", "format": "bogus"})[0]


def test_unenforced_lists_what_validation_alone_catches() -> None:
    """llama.cpp leaves the invoice's zero-quantity bound to validation; legacy leaves all."""
    schema = Invoice.model_json_schema()
    assert unenforced(schema, profile_for("llamacpp")) == [
        "#/$defs/LineItem/properties/quantity: exclusiveMinimum=0 (the regex allows 0)"
    ]
    legacy = unenforced(schema, profile_for("legacy"))
    assert "#/properties/currency: pattern=^[A-Z]{3}$" in legacy
    assert "#/properties/total: decimal places <= 2" in legacy


def test_a_profile_is_chosen_by_name_with_a_one_line_error() -> None:
    """An unknown profile name, or a profile for the wrong provider, is a ConfigError."""
    with pytest.raises(ConfigError, match="one of: legacy, openai-strict"):
        profile_for("llama")
    common: dict[str, Any] = {"api_key": None, "timeout_s": 1.0, "max_connections": 1}
    with pytest.raises(ConfigError, match="not for the anthropic provider"):
        build_provider(
            "anthropic", base_url="http://x", model="m", schema_profile="llamacpp", **common
        )
    with pytest.raises(ConfigError, match="is for the anthropic provider"):
        build_provider(
            "openai", base_url="http://x", model="m", schema_profile="anthropic-tool", **common
        )
    provider = build_provider(
        "openai", base_url="http://x", model="m", schema_profile="llamacpp", **common
    )
    assert getattr(provider, "profile", None) is PROFILES["llamacpp"]


def test_anthropic_gets_no_project_annotations() -> None:
    """x-decimal-places stays home; a field whose name starts with x- is still sent."""
    from streams.providers.strict_schema import to_tool_input_schema

    schema = Invoice.model_json_schema()
    assert "x-decimal-places" not in json.dumps(to_tool_input_schema(schema))
    odd = {"type": "object", "properties": {"x-id": {"type": "string", "x-note": 1}}}
    assert to_tool_input_schema(odd)["properties"] == {"x-id": {"type": "string"}}
