"""Number-like tokens of a view, each with every value it can mean.

A token is read under both decimal conventions, because a document rarely says
which one it uses: "1,234.50" and "1.234,50" are 1234.50, "1 234,50" and
"1'234.50" too, "12,480" is 12480 or 12.48, and "¥180,000" is 180000. A value is
grounded by Decimal equality, so 1200.00 matches "1200" and "1,200.00" alike.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from streams.grounding._view import TextView

__all__ = ["interpretations", "negative_at", "number_index"]

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
_DIGITS = re.compile(r"\d\d*")  # not "\d+": a class first lets the engine skip ahead
_NEGATIVE_BEFORE = re.compile(r"[-(] ?[^\w\s]{0,3} ?$")


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
        source[slice(*view.source_of(i))] in _THOUSANDS_SPACES
        for i in range(start, end)
        if view.text[i] == " "
    )


def number_index(view: TextView, source: str) -> dict[Decimal, list[tuple[int, int]]]:
    """Every value a number token of ``view`` can mean -> the view ranges of those tokens.

    Ranges are in text order. ``source`` is the original text behind ``view``.
    """
    text = view.text
    # Both patterns can only match where a run of digits starts: find those with one
    # fast scan, then try the patterns there (their look-behinds see the real text).
    starts = [m.start() for m in _DIGITS.finditer(text)]
    found: dict[tuple[int, int], frozenset[Decimal]] = {}
    spaced: list[tuple[int, int]] = []
    grouped, plain = _GROUPED.match, _PLAIN.match
    for pos in starts:
        m = grouped(text, pos)
        if m is None:
            continue
        start, end = m.span(1)
        token = m.group(1)
        if " " in token:
            if not _space_grouping_is_real(view, source, start, end):
                continue
            spaced.append((start, end))
        found[(start, end)] = interpretations(token)
    for pos in starts:
        m = plain(text, pos)
        if m is None:
            continue
        start, end = m.span(1)
        # "1 234,50" is one number, not a 1 followed by 234.50.
        if spaced and any(s <= start and end <= e for s, e in spaced):
            continue
        values = interpretations(m.group(1))
        known = found.get((start, end))
        found[(start, end)] = values if known is None else known | values
    index: dict[Decimal, list[tuple[int, int]]] = {}
    for span in sorted(found):
        for value in found[span]:
            index.setdefault(value, []).append(span)
    return index


def negative_at(text: str, start: int) -> bool:
    """Whether the number starting at ``start`` of a view's ``text`` is written negative.

    Reads only the eight characters before it ("-", "(", "- $", "(€ ").
    """
    return bool(_NEGATIVE_BEFORE.search(text[max(0, start - 8) : start]))
