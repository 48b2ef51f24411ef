"""The sales-lead contract: samples, field constraints, cross-field rules and the prompt."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import SAMPLES_DIR, get_contract
from contracts.lead import ISO_3166_ALPHA2, LEAD_V1, Lead
from streams.grounding import ground
from streams.grounding_report import measure

LEAD_SAMPLES = SAMPLES_DIR / "lead"
SAMPLE_ANSWERS = sorted(LEAD_SAMPLES.glob("*.json"))

#: Sample values the grounding matcher cannot find yet, each for a known reason: a
#: country code whose document names only the country or a city ("Chicago, Illinois");
#: the matcher has alias tables for currencies but none for countries.
KNOWN_GROUNDING_GAPS = {("18-clearpath-dental-prnewswire-us", "headquarters_country")}


def _answer(name: str = "01-brightloop-about-html-us.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((LEAD_SAMPLES / name).read_text(encoding="utf-8"))
    return data


def _errors(data: dict[str, Any]) -> list[tuple[str, tuple[str | int, ...]]]:
    with pytest.raises(ValidationError) as info:
        Lead.model_validate_json(json.dumps(data), strict=True)
    return [(e["type"], e["loc"]) for e in info.value.errors()]


def _valid(data: dict[str, Any]) -> Lead:
    return Lead.model_validate_json(json.dumps(data), strict=True)


# -- samples -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLE_ANSWERS, ids=lambda p: p.stem)
def test_sample_answer_validates_strictly(path: Path) -> None:
    """Every sample answer is a valid Lead under strict JSON validation."""
    Lead.model_validate_json(path.read_text(encoding="utf-8"), strict=True)


def test_samples_come_in_document_answer_pairs() -> None:
    """Each sample document has an answer and each answer a document, 20 pairs at least."""
    documents = {p.stem for p in LEAD_SAMPLES.glob("*.txt")}
    assert documents == {p.stem for p in SAMPLE_ANSWERS}
    assert len(documents) >= 20


def test_samples_span_countries_sizes_and_stages() -> None:
    """The samples cover at least 15 countries, 6 size buckets and every funding stage."""
    answers = [_answer(p.name) for p in SAMPLE_ANSWERS]
    assert len({a["headquarters_country"] for a in answers}) >= 15
    assert len({a["employee_count_range"] for a in answers}) >= 6
    assert {a["funding_stage"] for a in answers} - {None} == {
        "bootstrapped",
        "pre-seed",
        "seed",
        "series-a",
        "series-b",
        "series-c+",
        "private-equity",
        "public",
    }


def test_sample_values_are_grounded_in_their_documents() -> None:
    """Every sample value is found in its document, except the known matcher gaps."""
    report = measure(SAMPLES_DIR)["contracts"]["lead"]
    assert report["invalid_samples"] == []
    assert report["documents"] == len(SAMPLE_ANSWERS)
    misses = {(m["file"], m["path"]) for m in report["false_negatives"]}
    assert misses <= KNOWN_GROUNDING_GAPS
    assert report["control_coverage"] < 0.25


def test_bad_fixture_fails_only_on_the_contact_domain() -> None:
    """_bad/agency-press-contact is well formed but its e-mail is at a PR agency's domain."""
    assert (LEAD_SAMPLES / "_bad" / "agency-press-contact.txt").is_file()
    assert _errors(_answer("_bad/agency-press-contact.json")) == [
        ("contact_email_domain_mismatch", ("contact_email",))
    ]


# -- field constraints --------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain",
    [
        "https://brightloop.io",
        "www.brightloop.io",
        "Brightloop.io",
        "brightloop.io/about",
        "brightloop.io:443",
        "brightloop",
        "-brightloop.io",
        "bright loop.io",
    ],
)
def test_website_domain_must_be_a_bare_host(domain: str) -> None:
    """Schemes, www., paths, ports, capitals and dot-less names fail invalid_domain."""
    assert _errors(_answer() | {"website_domain": domain}) == [
        ("invalid_domain", ("website_domain",))
    ]


@pytest.mark.parametrize("domain", ["acme.co.uk", "kumo-robotics.co.jp", "xn--bcher-kva.de"])
def test_multi_label_and_punycode_domains_pass(domain: str) -> None:
    """Country second-level domains and punycode hosts are valid website domains."""
    assert _valid(_answer() | {"website_domain": domain, "contact_email": None}).website_domain == (
        domain
    )


@pytest.mark.parametrize("code", ["UK", "XK", "EU", "ZZ"])
def test_unknown_country_is_rejected(code: str) -> None:
    """Two capitals that are no ISO 3166-1 alpha-2 code (UK is GB) fail unknown_country."""
    assert _errors(_answer() | {"headquarters_country": code}) == [
        ("unknown_country", ("headquarters_country",))
    ]


@pytest.mark.parametrize("code", ["us", "USA", "United States"])
def test_malformed_country_fails_the_pattern(code: str) -> None:
    """A country that is not two capital letters fails before the ISO lookup."""
    assert _errors(_answer() | {"headquarters_country": code}) == [
        ("string_pattern_mismatch", ("headquarters_country",))
    ]


def test_iso_3166_table_holds_the_249_assigned_codes() -> None:
    """The embedded table has 249 well-formed codes, GB but not UK, and no XK."""
    assert len(ISO_3166_ALPHA2) == 249
    assert all(len(c) == 2 and c.isascii() and c.isupper() for c in ISO_3166_ALPHA2)
    assert {"DE", "US", "GB", "JP", "CH", "SE"} <= ISO_3166_ALPHA2
    assert not {"UK", "XK", "EU"} & ISO_3166_ALPHA2


def test_founded_year_in_the_future_is_rejected() -> None:
    """A founding year after this year fails founded_in_future; this year is fine."""
    this_year = date.today().year
    assert _errors(_answer() | {"founded_year": this_year + 1}) == [
        ("founded_in_future", ("founded_year",))
    ]
    assert _valid(_answer() | {"founded_year": this_year}).founded_year == this_year


def test_founded_year_before_1800_is_rejected() -> None:
    """Founding years start at 1800; 1799 fails the lower bound."""
    assert _errors(_answer() | {"founded_year": 1799}) == [
        ("greater_than_equal", ("founded_year",))
    ]


@pytest.mark.parametrize(
    "phone", ["call us", "12345", "+1 (512) 555-0148 ext. 12", "+1 555 0148 9999 1234 5"]
)
def test_malformed_phone_is_rejected(phone: str) -> None:
    """Labels, extensions, too few or too many digits fail invalid_phone."""
    assert _errors(_answer() | {"contact_phone": phone}) == [("invalid_phone", ("contact_phone",))]


@pytest.mark.parametrize("phone", ["+49 7121 9384-0", "(0)30 2084 5510", "03-6825-4410"])
def test_printed_phone_formats_pass(phone: str) -> None:
    """Phone numbers as companies print them are accepted unchanged."""
    assert _valid(_answer() | {"contact_phone": phone}).contact_phone == phone


@pytest.mark.parametrize(
    ("field", "value"),
    [("employee_count_range", "50-200"), ("funding_stage", "Series B"), ("funding_stage", "ipo")],
)
def test_buckets_are_closed_enums(field: str, value: str) -> None:
    """Size and funding stage accept only their listed buckets."""
    assert _errors(_answer() | {field: value}) == [("literal_error", (field,))]


def test_optional_fields_may_be_null_or_left_out() -> None:
    """Size, founding year, contacts, stage may be null and products left out."""
    data = _answer() | {
        "employee_count_range": None,
        "founded_year": None,
        "contact_email": None,
        "contact_phone": None,
        "funding_stage": None,
    }
    del data["products"]
    assert _valid(data).products == []


def test_unknown_fields_are_forbidden() -> None:
    """An answer with a field the contract does not define is rejected, not ignored."""
    assert _errors(_answer() | {"revenue": "10M"}) == [("extra_forbidden", ("revenue",))]


# -- cross-field rules --------------------------------------------------------------------


@pytest.mark.parametrize("email", ["brightloop.team@gmail.com", "hello@brightloop.com"])
def test_contact_email_off_the_website_domain_is_flagged(email: str) -> None:
    """A free-mail or other-domain address fails contact_email_domain_mismatch."""
    assert _errors(_answer() | {"contact_email": email}) == [
        ("contact_email_domain_mismatch", ("contact_email",))
    ]


@pytest.mark.parametrize(
    ("website", "email"),
    [
        ("brightloop.io", "sales@eu.brightloop.io"),
        ("shop.brightloop.io", "hello@brightloop.io"),
        ("brightloop.io", "Hello@BrightLoop.IO"),
    ],
)
def test_subdomains_either_way_and_case_are_accepted(website: str, email: str) -> None:
    """The e-mail may be at a subdomain of the site, the site at one of the mail domain."""
    _valid(_answer() | {"website_domain": website, "contact_email": email})


def test_a_product_listed_twice_is_rejected_at_the_repeat() -> None:
    """The same product again (ignoring case) fails duplicate_product at its index."""
    data = _answer()
    data["products"].append("pipeline health")
    assert _errors(data) == [("duplicate_product", ("products", 3))]


def test_all_cross_field_problems_are_reported_together() -> None:
    """An answer breaking both cross-field rules gets both errors at once."""
    data = _answer() | {"contact_email": "x@example.com"}
    data["products"].append(data["products"][0])
    assert _errors(data) == [
        ("contact_email_domain_mismatch", ("contact_email",)),
        ("duplicate_product", ("products", 3)),
    ]


def test_cross_field_messages_name_the_values() -> None:
    """The mismatch message names the address and the domain, and stays serialisable."""
    with pytest.raises(ValidationError) as info:
        _valid(_answer() | {"contact_email": "ceo@gmail.com"})
    (error,) = info.value.errors()
    assert error["msg"].startswith("contact_email ceo@gmail.com is not at the company's domain")
    assert error["ctx"] == {"email": "ceo@gmail.com", "domain": "brightloop.io"}
    json.dumps(info.value.errors(include_url=False, include_input=False))


# -- schema, prompt and registration ------------------------------------------------------


def test_every_field_has_a_description() -> None:
    """Every field carries a description, since that is what the model is told."""
    assert [n for n, info in Lead.model_fields.items() if not info.description] == []


def test_json_schema_lists_the_buckets() -> None:
    """The schema sent to the model enumerates the size buckets and funding stages."""
    schema = LEAD_V1.json_schema()
    size = schema["properties"]["employee_count_range"]["anyOf"][0]
    assert size["enum"][0] == "1-10"
    assert size["enum"][-1] == "10001+"
    assert schema["properties"]["founded_year"]["anyOf"][0]["minimum"] == 1800
    assert schema["additionalProperties"] is False


def test_contract_is_registered_as_a_new_line() -> None:
    """lead v1 is registered on import, BACKWARD, starting its own compatibility line."""
    assert get_contract("lead", 1) is LEAD_V1
    assert LEAD_V1.compatibility == "BACKWARD"
    assert LEAD_V1.compatible_with is None
    assert set(LEAD_V1.grounding_required) <= set(Lead.model_fields)


@pytest.mark.parametrize("index", [0, 1])
def test_prompt_examples_are_valid_and_grounded(index: int) -> None:
    """Each worked example is a valid lead whose values all appear in its document."""
    example = LEAD_V1.prompt.examples[index]
    lead = Lead.model_validate_json(json.dumps(example.record), strict=True)
    assert ground(lead, example.document).missing() == []


def test_prompt_version_is_pinned() -> None:
    """Changing the lead prompt is deliberate: it changes cache keys and provenance."""
    assert LEAD_V1.prompt.version == "36eb505a29db"
