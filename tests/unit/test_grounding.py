"""Source grounding finds each extracted value in its document, and only values that are there."""

from __future__ import annotations

import enum
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from contracts import SAMPLES_DIR
from contracts.invoice import Invoice
from streams.errors import FieldError
from streams.grounding import FieldGrounding, Grounding, Span, check_required, ground
from streams.grounding_report import main, measure

INVOICES = SAMPLES_DIR / "invoice"


class Colour(enum.Enum):
    RED = "red"


class Item(BaseModel):
    name: str
    amount: Decimal


class Order(BaseModel):
    customer: str
    placed: date
    items: list[Item]
    colour: Colour | None = None
    paid: bool = False
    note: str | None = None


def _field(grounding: Grounding, path: str) -> FieldGrounding:
    return next(f for f in grounding.fields if f.path == path)


def _one(value: Any, source: str) -> FieldGrounding:
    return ground({"v": value}, source).fields[0]


def _slice(source: str, span: Span | None) -> str:
    assert span is not None
    return source[span.start : span.end]


def _sample(stem: str) -> tuple[Invoice, str]:
    answer = (INVOICES / f"{stem}.json").read_text(encoding="utf-8")
    return Invoice.model_validate_json(answer), (INVOICES / f"{stem}.txt").read_text("utf-8")


# -- spans --------------------------------------------------------------------------------


def test_exact_string_span_is_the_original_slice() -> None:
    """An exact match reports method "exact" and a span slicing the value out of the source."""
    source = "Invoice from Acme Industrial Supply Co., Oakland"
    found = _one("Acme Industrial Supply Co.", source)
    assert (found.found, found.method) == (True, "exact")
    assert _slice(source, found.span) == "Acme Industrial Supply Co."


def test_normalised_match_span_covers_the_messy_original() -> None:
    """A case/whitespace-normalised match spans the original text, odd spacing included."""
    source = "Bill from:\n  ACME   Industrial\n   SUPPLY co.  today"
    found = _one("Acme Industrial Supply Co.", source)
    assert found.method == "normalized_text"
    assert _slice(source, found.span) == "ACME   Industrial\n   SUPPLY co."


def test_number_span_excludes_the_currency_symbol() -> None:
    """A number's span is exactly its digits and separators in the original text."""
    source = "Subtotal: 1.234,50 EUR\nTotal due: 1.469,06 EUR"
    assert _slice(source, _one(Decimal("1469.06"), source).span) == "1.469,06"


def test_line_item_numbers_point_into_their_own_row() -> None:
    """Of several equal numbers, the one nearest the previous grounded value is reported."""
    record, source = _sample("02-mueller-buero-eur")
    grounding = ground(record, source)
    for index in range(3):
        span = _field(grounding, f"line_items[{index}].quantity").span
        description = _field(grounding, f"line_items[{index}].description").span
        assert span is not None
        assert description is not None
        row_start = source.rfind("\n", 0, description.start)
        assert row_start < span.start < source.find("\n", description.end)


# -- numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "value", "printed"),
    [
        ("Total 1.234,50 EUR", Decimal("1234.50"), "1.234,50"),
        ("Total $1,234.50", Decimal("1234.50"), "1,234.50"),
        ("Total 1 234,50 €", Decimal("1234.50"), "1 234,50"),
        ("Total 1\u00a0234,50 €", Decimal("1234.5"), "1\u00a0234,50"),
        ("Total CHF 1'234.50", Decimal("1234.50"), "1'234.50"),
        ("Total CHF 1\u2019234.50", Decimal("1234.50"), "1\u2019234.50"),
        ("Total 1234.50", Decimal("1234.5"), "1234.50"),
        ("Total 1200", Decimal("1200.00"), "1200"),
        ("Total ¥299,200", 299200, "299,200"),
        ("Total ¥299,200", Decimal("299200"), "299,200"),
        ("12,480 words", 12480, "12,480"),
        ("0,95 € each", Decimal("0.95"), "0,95"),
        ("rate 0.1", 0.1, "0.1"),
        ("<td>&pound;12.00</td>", Decimal("12"), "12.00"),
        ("Deposit received -1,500.00", Decimal("-1500"), "1,500.00"),
    ],
)
def test_number_formats_match_by_decimal_equality(source: str, value: Any, printed: str) -> None:
    """Grouped, localised, symbol-prefixed and integer forms all match the same Decimal."""
    found = _one(value, source)
    assert (found.found, found.method) == (True, "number")
    assert _slice(source, found.span) == printed


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("Total 1,234.50", Decimal("234.50")),  # a tail of a larger number
        ("Total 1,234.50", Decimal("1234.5001")),
        ("Total 1.234,50", Decimal("1.2345")),  # not a decimal reading of the grouping
        ("Qty 3      129,90", Decimal("3129.90")),  # table columns are not a grouped number
        ("Date 05.03.2024", Decimal("3.2024")),  # dates are not numbers
        ("Paid 1,500.00", Decimal("-1500")),  # a negative value needs its sign
        ("Total 622.42 USD", Decimal("622.24")),
    ],
)
def test_numbers_not_in_the_text_are_not_found(source: str, value: Decimal) -> None:
    """Numbers are never matched inside longer numbers, across columns or without a sign."""
    assert _one(value, source).method == "not_found"


def test_columns_still_ground_their_own_numbers() -> None:
    """A quantity and price in adjacent columns each ground on their own."""
    source = "Rollcontainer      3      129,90 €"
    assert _slice(source, _one(3, source).span) == "3"
    assert _slice(source, _one(Decimal("129.9"), source).span) == "129,90"


# -- dates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "printed"),
    [
        ("Invoice Date: March 5, 2024", "March 5, 2024"),
        ("Datum: 05.03.2024", "05.03.2024"),
        ("Date: 5 Mar 2024", "5 Mar 2024"),
        ("<td>2024-03-05</td>", "2024-03-05"),
        ("Issued Mar. 5th, 2024.", "Mar. 5th, 2024"),
        ("Date: 03/05/2024", "03/05/2024"),  # US month first
        ("Date: 05/03/2024", "05/03/2024"),  # day first
        ("Datum: 5. März 2024", "5. März 2024"),
        ("Fecha: 5 de marzo de 2024", "5 de marzo de 2024"),
        ("Date : 5 mars 2024", "5 mars 2024"),
        ("発行日: 2024年3月5日", "2024年3月5日"),
        ("Date: Tue, 5 Mar 2024 10:14:52 +0100", "5 Mar 2024"),
        ("Date: 2024/03/05", "2024/03/05"),
        ("Date: 05-03-24", "05-03-24"),
    ],
)
def test_date_formats_match_by_date_equality(source: str, printed: str) -> None:
    """ISO, numeric (either order), month-name and CJK dates all match the same date."""
    found = _one(date(2024, 3, 5), source)
    assert (found.found, found.method) == (True, "date")
    assert _slice(source, found.span) == printed


def test_iso_date_string_is_grounded_as_a_date() -> None:
    """A record given as parsed JSON grounds its ISO date strings as dates."""
    found = _one("2024-03-05", "Invoice date: March 5, 2024")
    assert found.method == "date"


@pytest.mark.parametrize(
    "source", ["March 5, 2024", "05.03.2024", "2024-03-05", "5 Mar 2025", "15.03.2024"]
)
def test_wrong_date_is_not_found(source: str) -> None:
    """A date one day, one year or one digit off is reported ungrounded."""
    assert _one(date(2024, 3, 6), f"Date: {source}").method == "not_found"


# -- text ---------------------------------------------------------------------------------


def test_html_tags_and_entities_are_tolerated() -> None:
    """Entities decode and inline tags vanish; the span covers the original markup."""
    source = "<p>Customer: Fenwick &amp; Hart <b>Solicitors</b> LLP, 3 Castle Mews</p>"
    found = _one("Fenwick & Hart Solicitors LLP", source)
    assert found.method == "normalized_text"
    assert _slice(source, found.span) == "Fenwick &amp; Hart <b>Solicitors</b> LLP"


def test_block_tags_separate_words() -> None:
    """Table cells do not run together: "<td>Net</td><td>5</td>" is "net 5", not "net5"."""
    assert _one("Net 5", "<tr><td>Net</td><td>5</td></tr>").found
    assert not _one("Net5", "<tr><td>Net</td><td>5</td></tr>").found


def test_script_and_style_content_grounds_nothing() -> None:
    """Numbers inside <style> or <script> are code, not document text."""
    source = "<style>td{width:640px}</style><script>var total = 999;</script><p>Hi</p>"
    assert not _one(640, source).found
    assert not _one(999, source).found


def test_email_addresses_in_angle_brackets_are_text() -> None:
    """<name@host> in e-mail headers is not mistaken for a tag and stripped."""
    source = "From: Accounts <accounts@hollybrook-print.example>"
    assert _one("accounts@hollybrook-print.example", source).found


def test_accents_and_typographic_quotes_are_folded() -> None:
    """Accents, curly quotes and dashes do not stop a match."""
    source = "Müller & Söhne \u2013 Bürodrehstuhl \u201cErgo Plus\u201d"  # en dash, curly quotes
    assert _one('Muller & Sohne - Burodrehstuhl "Ergo Plus"', source).method == "normalized_text"


def test_ocr_look_alikes_ground_longer_strings() -> None:
    """OCR zeros for O's and split words still ground a long enough string."""
    source = " N0RTHWIND   TRAD ING  C0MPANY        .\n45 Lakeview Pkwy"
    found = _one("Northwind Trading Company", source)
    assert found.method == "normalized_text"
    assert _slice(source, found.span) == "N0RTHWIND   TRAD ING  C0MPANY"


@pytest.mark.parametrize(
    ("value", "source"),
    [
        ("EUR", "Bouquet de fleurs"),  # inside a word
        ("Ltd", "Comercial Ltda."),
        ("123", "Ref A1234"),
        ("INV-1", "Invoice INV-12"),
        ("AB1", "AB-1"),  # too short for the punctuation-blind comparison
        ("Riverside Fabrication", "Bill to: Riverside Fabrications Inc"),
    ],
)
def test_strings_do_not_match_inside_longer_words(value: str, source: str) -> None:
    """A match never starts or ends in the middle of a word or number."""
    assert _one(value, source).method == "not_found"


# -- currency -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "source", "printed"),
    [
        ("EUR", "Total 1.234,50 €", "€"),
        ("EUR", "Total: 1234 euros", "euros"),
        ("USD", "Total $1,234.50", "$"),
        ("GBP", "Total £600.00", "£"),
        ("GBP", "<td>&pound;600.00</td>", "&pound;"),
        ("JPY", "合計 ¥299,200", "¥"),
        ("CHF", "Total Fr. 1'200.00", "Fr."),
        ("CHF", "Total CHF 1'200.00", "CHF"),
    ],
)
def test_currency_codes_match_symbols_and_names(code: str, source: str, printed: str) -> None:
    """An ISO 4217 code is grounded by its code, symbol or name."""
    found = _one(code, source)
    assert found.found
    assert _slice(source, found.span) == printed


def test_currency_symbol_of_another_currency_is_not_found() -> None:
    """EUR is not grounded by a text that only shows dollars and pounds."""
    assert _one("EUR", "Total $5, shipping £2").method == "not_found"


# -- walking, coverage, skip ----------------------------------------------------------------


def _order() -> Order:
    return Order(
        customer="Bluebird Cafe",
        placed=date(2024, 1, 15),
        items=[Item(name="Paper cups", amount=Decimal("195.00"))],
        colour=Colour.RED,
        paid=True,
    )


def test_nested_models_lists_and_enums_are_walked_with_paths() -> None:
    """Paths name nested fields and list indices; None is left out; bools are skipped."""
    grounding = ground(_order(), "Bluebird Cafe, 01/15/2024, Paper cups 195.00, colour: Red")
    assert [(f.path, f.method) for f in grounding.fields] == [
        ("customer", "exact"),
        ("placed", "date"),
        ("items[0].name", "exact"),
        ("items[0].amount", "number"),
        ("colour", "normalized_text"),
        ("paid", "skipped"),
    ]
    assert _field(grounding, "items[0].amount").value == "195.00"


def test_mapping_and_model_records_ground_alike() -> None:
    """A plain dict (parsed JSON) grounds the same values as the validated model."""
    record, source = _sample("07-alpenblick-treuhand-chf")
    as_json = json.loads(record.model_dump_json())
    by_model = [(f.path, f.found) for f in ground(record, source).fields]
    by_dict = [(f.path, f.found) for f in ground(as_json, source).fields]
    assert by_model == by_dict
    assert all(found for _, found in by_dict)


def test_coverage_is_found_over_considered() -> None:
    """Coverage counts found values over considered ones; skipped values are in neither."""
    record = {"a": "alpha", "b": "beta", "c": "gamma", "d": "delta", "e": True}
    grounding = ground(record, "alpha beta gamma")
    assert grounding.coverage == 0.75
    assert grounding.missing() == ["d"]


def test_coverage_is_one_when_nothing_is_considered() -> None:
    """A record whose values are all skipped or None has coverage 1.0."""
    assert ground({"flag": True, "none": None, "x": "1"}, "", skip=["x"]).coverage == 1.0


@pytest.mark.parametrize(
    "glob",
    ["items[*].amount", "items.*.amount", "items.amount", "**.amount", "items[0].amount"],
)
def test_skip_globs_select_list_fields(glob: str) -> None:
    """Indices may be written [*], .* or left out, and ** spans any depth."""
    grounding = ground(_order(), "nothing here", skip=[glob])
    assert _field(grounding, "items[0].amount").method == "skipped"
    assert _field(grounding, "items[0].name").method == "not_found"


def test_skip_glob_selects_a_subtree_and_fnmatch_parts() -> None:
    """A glob naming a list skips all its fields, and parts may be fnmatch patterns."""
    grounding = ground(_order(), "nothing here", skip=["items", "pla*"])
    assert [f.path for f in grounding.fields if f.method == "skipped"] == [
        "placed",
        "items[0].name",
        "items[0].amount",
        "paid",
    ]


def test_skip_needs_a_collection_not_a_string() -> None:
    """skip="total" would silently skip single letters; it is rejected instead."""
    with pytest.raises(TypeError):
        ground({"total": 5}, "5", skip="total")


def test_as_dict_is_json_serialisable() -> None:
    """as_dict gives plain data with the coverage, fields and spans."""
    data = ground({"v": "alpha", "w": "omega"}, "alpha").as_dict()
    assert json.loads(json.dumps(data)) == {
        "coverage": 0.5,
        "fields": [
            {
                "path": "v",
                "value": "alpha",
                "found": True,
                "span": {"start": 0, "end": 5},
                "method": "exact",
            },
            {"path": "w", "value": "omega", "found": False, "span": None, "method": "not_found"},
        ],
    }


# -- negative control and required fields ---------------------------------------------------


def test_wrong_values_in_a_real_sample_are_reported_ungrounded() -> None:
    """A wrong total, date, number and vendor on a real invoice are not found."""
    record, source = _sample("01-acme-industrial-usd")
    wrong = record.model_copy(
        update={
            "vendor": "Acme Industrial Supplies Inc.",
            "invoice_number": "AIS-2024-00418",
            "issue_date": date(2024, 3, 6),
            "total": Decimal("622.24"),
        }
    )
    assert ground(record, source).missing() == []
    assert ground(wrong, source).missing() == ["vendor", "invoice_number", "issue_date", "total"]


def test_check_required_reports_ungrounded_fields() -> None:
    """Each required value that is not found becomes an "ungrounded" FieldError."""
    grounding = ground(_order(), "Bluebird Cafe ordered Paper cups")
    errors = check_required(grounding, ["customer", "items[*].amount", "placed"])
    assert errors == [
        FieldError(
            path="placed",
            type="ungrounded",
            message="placed value '2024-01-15' does not appear in the source text; "
            "copy it as the document prints it",
            value="2024-01-15",
        ),
        FieldError(
            path="items[0].amount",
            type="ungrounded",
            message="items[0].amount value '195.00' does not appear in the source text; "
            "copy it as the document prints it",
            value="195.00",
        ),
    ]


def test_check_required_ignores_found_skipped_and_unrequired_fields() -> None:
    """Found, skipped and not-required values produce no errors."""
    grounding = ground(_order(), "Bluebird Cafe", skip=["placed"])
    assert check_required(grounding, ["customer", "placed", "paid"]) == []
    assert check_required(grounding, []) == []


# -- the sample corpus ----------------------------------------------------------------------


def test_invoice_samples_ground_with_few_false_negatives() -> None:
    """Every sample value is in its document: under 5% may be missed, and a control stays low."""
    report = measure(SAMPLES_DIR)["contracts"]["invoice"]
    assert report["documents"] == len(list(INVOICES.glob("*.json")))
    assert report["invalid_samples"] == []
    assert report["false_negative_rate"] < 0.05, report["false_negatives"]
    # Grounding a record against another invoice's text must mostly fail; otherwise the
    # matcher is matching anything.
    assert report["control_coverage"] < 0.25


def test_measure_lists_each_false_negative(tmp_path: Path) -> None:
    """A value missing from its document is listed with file, path and value."""
    folder = tmp_path / "invoice"
    folder.mkdir()
    (tmp_path / "_scratch").mkdir()
    (tmp_path / "nocontract").mkdir()
    for path in INVOICES.glob("01-*"):
        (folder / path.name).write_text(path.read_text("utf-8"), "utf-8")
    document = folder / "01-acme-industrial-usd.txt"
    document.write_text(document.read_text("utf-8").replace("AIS-2024-00417", "AIS-?"), "utf-8")
    report = measure(tmp_path)
    assert report["unknown"] == ["nocontract"]
    invoice = report["contracts"]["invoice"]
    assert invoice["false_negatives"] == [
        {"file": "01-acme-industrial-usd", "path": "invoice_number", "value": "AIS-2024-00417"}
    ]
    assert invoice["values_grounded"] == invoice["values_considered"] - 1


def test_report_command_prints_a_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """python -m streams.grounding_report prints one row per contract and writes --json."""
    out = tmp_path / "report.json"
    assert main(["--json", str(out)]) == 0
    assert "invoice" in capsys.readouterr().out
    assert json.loads(out.read_text("utf-8"))["contracts"]["invoice"]["documents"] >= 20


def test_run_emission_equals_character_emission() -> None:
    """Emitting a run a word at a time gives exactly the per-character view (spans included)."""
    import random

    from contracts import SAMPLES_DIR
    from streams.grounding._view import _Builder

    rng = random.Random(3)
    alphabet = "aZ09 .,-\t\n\r\x0b\x0c\x1c\x1f\x7f\x01é\u2013\u2019ﬁ\u00a0\u200b漢"
    texts = [p.read_text(encoding="utf-8") for p in SAMPLES_DIR.rglob("*.txt")]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200))) for _ in range(500)]
    texts += [" a", "  a", " ", "a ", "a \n b", "\t", " \x1c"]
    # What came before the run matters to its first space: nothing, a word, a space.
    for prefix in ("", "x", "x ", "x\n"):
        for text in texts:
            source = prefix + text
            fast, slow = _Builder(), _Builder()
            for b in (fast, slow):
                for i, ch in enumerate(prefix):
                    b.emit(ch, i, i + 1)
            fast.emit_run(source, len(prefix), len(source))
            for i in range(len(prefix), len(source)):
                slow.emit(source[i], i, i + 1)
            assert _per_character(fast) == _per_character(slow)
            ours, theirs = fast.view(), slow.view()  # a trailing space dropped from both
            assert (ours.text, ours.starts, ours.ends) == (theirs.text, theirs.starts, theirs.ends)


def _per_character(builder: Any) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
    """A builder's view so far, with each character's original range."""
    from streams.grounding._view import TextView

    view = TextView(
        "".join(builder.chars), tuple(builder.at), tuple(builder.start), tuple(builder.end)
    )
    return view.text, view.starts, view.ends


def test_fast_scans_find_what_the_plain_scans_find() -> None:
    """The date patterns (first character consumed, then the look-behind) and the
    digit-run-anchored number scan give exactly the matches of their plain forms."""
    import random
    import re

    from contracts import SAMPLES_DIR
    from streams.grounding import _dates, _numbers
    from streams.grounding._view import build_view

    word = r"[^\W\d_]+"
    plain_dates = {
        _dates._YMD: r"(?<![\d.,/-])(\d{4}) ?([-/.]) ?(\d{1,2}) ?\2 ?(\d{1,2})(?!\d)",
        _dates._DMY: r"(?<![\d.,/-])(\d{1,2}) ?([-/.]) ?(\d{1,2}) ?\2 ?(\d{4}|\d{2})(?!\d)"
        r"(?![-/.]\d)",
        _dates._MONTH_DAY_YEAR: rf"(?<![^\W\d_])({word})\.? ?(\d{{1,2}})(?:st|nd|rd|th)?\.?,? ?"
        r"(\d{4})(?!\d)",
        _dates._DAY_MONTH_YEAR: rf"(?<!\d)(\d{{1,2}})(?:st|nd|rd|th|er|\.)? ?(?:de )?({word})"
        r"\.?,? ?(?:de )?(\d{4})(?!\d)",
    }

    def plain_numbers(text: str) -> dict[Decimal, list[tuple[int, int]]]:
        view = build_view(text)
        found: dict[tuple[int, int], frozenset[Decimal]] = {}
        spaced: list[tuple[int, int]] = []
        for m in _numbers._GROUPED.finditer(view.text):
            if " " in m.group(1):
                if not _numbers._space_grouping_is_real(view, text, *m.span(1)):
                    continue
                spaced.append(m.span(1))
            found[m.span(1)] = _numbers.interpretations(m.group(1))
        for m in _numbers._PLAIN.finditer(view.text):
            s, e = m.span(1)
            if not any(a <= s and e <= b for a, b in spaced):
                found[(s, e)] = found.get((s, e), frozenset()) | _numbers.interpretations(m[1])
        index: dict[Decimal, list[tuple[int, int]]] = {}
        for span in sorted(found):
            for value in found[span]:
                index.setdefault(value, []).append(span)
        return index

    rng = random.Random(5)
    pieces = [
        *"0123456789" * 3,
        *" -/.,'(\n" * 2,
        "march",
        "de",
        "mai",
        "st",
        "x",
        "é",
        "\u0661",
        "&nbsp;",
    ]
    texts = [p.read_text(encoding="utf-8") for p in SAMPLES_DIR.rglob("*.txt")]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 50))) for _ in range(3000)]
    for text in texts:
        for fast, plain in plain_dates.items():
            spans = [(m.span(), m.groups()) for m in fast.finditer(text)]
            assert spans == [(m.span(), m.groups()) for m in re.finditer(plain, text)], text
        assert _numbers.number_index(build_view(text), text) == plain_numbers(text), text
