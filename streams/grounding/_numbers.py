"""Number-like tokens of a view, each with every value it can mean.

A token is read under both decimal conventions, because a document rarely says
which one it uses: "1,234.50" and "1.234,50" are 1234.50, "1 234,50" and
"1'234.50" too, "12,480" is 12480 or 12.48, and "¥180,000" is 180000. A value is
grounded by Decimal equality, so 1200.00 matches "1200" and "1,200.00" alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from streams.grounding._view import TextView

__all__ = ["NumberToken", "interpretations", "number_tokens"]

# Both patterns match at every start position (a capture inside a lookahead), and
# refuse to start or end inside a longer number: "234" is not a token of "1,234.50".
_NOT_INSIDE_BEFORE = r"(?<!\d)(?<!\d[.,'])"
_NOT_INSIDE_AFTER = r"(?!\d)(?![.,']\d)"
_GROUPED = re.compile(
    _NOT_INSIDE_BEFORE
    + r"(?=(\d{1,3}(?P<sep>[,.' ])\d{3}(?:(?P=sep)\d{3})*(?:[.,]\d+)?)"
    + _NOT_INSIDE_AFTER
    + ")"
)
_PLAIN = re.compile(_NOT_INSIDE_BEFORE + r"(?=(\d+(?:[.,]\d+)?)" + _NOT_INSIDE_AFTER + ")")
# What a view space may stand for when it separates thousands ("1 234,50"): one
# space in the original, not a collapsed gap between two table columns.
_THOUSANDS_SPACES = frozenset({" ", "\u00a0", "\u202f", "\u2009", "&nbsp;", "&#160;", "&thinsp;"})
_NEGATIVE_BEFORE = re.compile(r"[-(] ?[^\w\s]{0,3} ?$")


@dataclass(frozen=True)
class NumberToken:
    """A number in the view: its view range and the values it can be read as."""

    start: int
    end: int
    values: frozenset[Decimal]
    negative: bool


@lru_cache(maxsize=4096)
def interpretations(token: str) -> frozenset[Decimal]:
    """Every value ``token`` means under the 1,234.50 and the 1.234,50 conventions.

    Cached: the same digits recur across a document and across documents.
    """
    body = token.replace(" ", "").replace("'", "")
    values: set[Decimal] = set()
    for thousands, decimal in ((",", "."), (".", ",")):
        if body.count(decimal) > 1:
            continue
        whole, _, fraction = body.partition(decimal)
        groups = whole.split(thousands)
        if thousands in fraction or (
            len(groups) > 1 and (len(groups[0]) > 3 or any(len(g) != 3 for g in groups[1:]))
        ):
            continue
        try:
            values.add(Decimal("".join(groups) + ("." + fraction if fraction else "")))
        except InvalidOperation:  # pragma: no cover - the patterns only let digits through
            continue
    return frozenset(values)


def _space_grouping_is_real(view: TextView, source: str, start: int, end: int) -> bool:
    return all(
        source[view.starts[i] : view.ends[i]] in _THOUSANDS_SPACES
        for i in range(start, end)
        if view.text[i] == " "
    )


def _matches(pattern: re.Pattern[str], text: str) -> Iterator[tuple[int, int, str]]:
    for m in pattern.finditer(text):
        yield m.start(1), m.end(1), m.group(1)


def number_tokens(view: TextView, source: str) -> list[NumberToken]:
    """All number tokens of ``view`` (whose original text is ``source``), in text order."""
    found: dict[tuple[int, int], frozenset[Decimal]] = {}
    spaced: list[tuple[int, int]] = []
    for start, end, text in _matches(_GROUPED, view.text):
        if " " in text:
            if not _space_grouping_is_real(view, source, start, end):
                continue
            spaced.append((start, end))
        found[(start, end)] = interpretations(text)
    for start, end, text in _matches(_PLAIN, view.text):
        # "1 234,50" is one number, not a 1 followed by 234.50.
        if any(s <= start and end <= e for s, e in spaced):
            continue
        found[(start, end)] = found.get((start, end), frozenset()) | interpretations(text)
    return [
        # The eight characters before the token (not a copy of the whole prefix per token).
        NumberToken(
            start, end, values, bool(_NEGATIVE_BEFORE.search(view.text[max(0, start - 8) : start]))
        )
        for (start, end), values in sorted(found.items())
        if values
    ]
