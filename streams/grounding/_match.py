"""Find every place a value appears in one document, by the first method that works.

A :class:`Document` folds its text and scans its numbers and dates once, lazily,
then answers :meth:`Document.find` for each value of a record.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from functools import cached_property
from typing import Any, Final

from streams.grounding._currency import CURRENCY_ALIASES
from streams.grounding._dates import date_tokens
from streams.grounding._numbers import negative_at, number_index
from streams.grounding._view import LooseView, TextView, build_view, fold, loose_view

__all__ = ["Document", "Found", "OriginalRange"]

OriginalRange = tuple[int, int]
#: The method that found a value, and every original range where it appears.
Found = tuple[str, list[OriginalRange]]

# Below this many letters and digits, a punctuation- and OCR-blind match is too
# likely to be a coincidence ("Ltd" inside "Ltda.", "10" ~ "IO").
_LOOSE_MIN_CHARS: Final = 5
_NUMERIC_STRING = re.compile(r"[-+]?\d+(?:\.\d+)?")
_ISO_DATE_STRING = re.compile(r"\d{4}-\d{2}-\d{2}")


def _occurrences(haystack: str, needle: str) -> Iterator[int]:
    start = haystack.find(needle)
    while start >= 0:
        yield start
        start = haystack.find(needle, start + 1)


def _bounded(text: str, start: int, end: int) -> bool:
    """Not cut out of a longer word or number: "EUR" is not in "fleur", "123" not in "A1234"."""
    before_ok = start == 0 or not (text[start - 1].isalnum() and text[start].isalnum())
    after_ok = end == len(text) or not (text[end].isalnum() and text[end - 1].isalnum())
    return before_ok and after_ok


class Document:
    """One source text, with its folded views and number/date tokens built on first use."""

    def __init__(self, source: str) -> None:
        self.source = source

    @cached_property
    def view(self) -> TextView:
        return build_view(self.source)

    @cached_property
    def loose(self) -> LooseView:
        return loose_view(self.view)

    @cached_property
    def numbers(self) -> dict[Decimal, list[tuple[int, int]]]:
        return number_index(self.view, self.source)

    @cached_property
    def dates(self) -> dict[date, list[tuple[int, int]]]:
        index: dict[date, list[tuple[int, int]]] = defaultdict(list)
        for token in date_tokens(self.view):
            for value in token.values:
                index[value].append((token.start, token.end))
        return index

    # -- dispatch ---------------------------------------------------------------------

    def find(self, value: Any) -> Found | None:
        """How and where ``value`` appears, or None. Bools and None are the caller's job."""
        if isinstance(value, Enum):
            value = value.value
        for kind, finder in _FINDERS:
            if isinstance(value, kind):
                return finder(self, value)
        return self.find_text(str(value))

    def find_text(self, value: str) -> Found | None:
        for method, finder in (
            ("exact", Document._exact),
            ("normalized_text", Document._normalized),
            ("normalized_text", Document._loose),
            ("currency", Document._currency),
        ):
            ranges = finder(self, value)
            if ranges:
                return method, ranges
        # Strings that hold a date or a number (a contract typed loosely, or a record
        # given as parsed JSON) are grounded as what they hold.
        stripped = value.strip()
        if _ISO_DATE_STRING.fullmatch(stripped):
            try:
                return self.find_date(date.fromisoformat(stripped))
            except ValueError:
                return None
        if _NUMERIC_STRING.fullmatch(stripped):
            return self.find_number(Decimal(stripped))
        return None

    def find_number(self, value: Decimal | int | float) -> Found | None:
        try:
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:
            return None
        if not number.is_finite():
            return None
        hits = self.numbers.get(abs(number), [])
        if number < 0:
            text = self.view.text
            hits = [hit for hit in hits if negative_at(text, hit[0])]
        return self._found("number", hits)

    def find_date(self, value: date) -> Found | None:
        day = value.date() if isinstance(value, datetime) else value
        return self._found("date", self.dates.get(day, []))

    # -- text tiers -------------------------------------------------------------------

    def _exact(self, value: str) -> list[OriginalRange]:
        n = len(value)
        return [
            (s, s + n) for s in _occurrences(self.source, value) if _bounded(self.source, s, s + n)
        ]

    def _normalized(self, value: str) -> list[OriginalRange]:
        needle = fold(value)
        return self._in_view(needle) if needle else []

    def _loose(self, value: str) -> list[OriginalRange]:
        needle = loose_view(fold(value)).text
        if len(needle) < _LOOSE_MIN_CHARS:
            return []
        ranges = []
        for s in _occurrences(self.loose.text, needle):
            start, end = self.loose.index[s], self.loose.index[s + len(needle) - 1] + 1
            if _bounded(self.view.text, start, end):
                ranges.append(self.view.original(start, end))
        return ranges

    def _currency(self, value: str) -> list[OriginalRange]:
        ranges: list[OriginalRange] = []
        for alias in CURRENCY_ALIASES.get(value.strip().upper(), ()):
            ranges.extend(self._in_view(fold(alias)))
        return sorted(set(ranges))

    def _in_view(self, needle: str) -> list[OriginalRange]:
        text, n = self.view.text, len(needle)
        return [
            self.view.original(s, s + n)
            for s in _occurrences(text, needle)
            if _bounded(text, s, s + n)
        ]

    def _found(self, method: str, view_ranges: list[tuple[int, int]]) -> Found | None:
        if not view_ranges:
            return None
        return method, sorted({self.view.original(s, e) for s, e in view_ranges})


# First isinstance match wins. Bools (ints too) never get here: ground() skips them,
# because a yes/no is rarely printed as such. Anything else is grounded as its str().
_FINDERS: Final[
    tuple[tuple[type | tuple[type, ...], Callable[[Document, Any], Found | None]], ...]
] = (
    (date, Document.find_date),
    ((Decimal, int, float), Document.find_number),
    (str, Document.find_text),
)
