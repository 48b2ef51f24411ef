"""Source grounding: whether, and where, each extracted value appears in its document.

Usage::

    from streams.grounding import check_required, ground

    grounding = ground(invoice, text, skip=["line_items[*].amount"])
    grounding.coverage            # 0.96: found / considered
    grounding.missing()           # ["tax"]
    total = next(f for f in grounding.fields if f.path == "total")
    text[total.span.start : total.span.end]   # "4.346,12" for total Decimal("4346.12")
    errors = check_required(grounding, contract.grounding_required)

Every leaf of the record (str, int, Decimal, float, date, enum; nested models,
mappings and lists are walked; None is left out) gets a :class:`FieldGrounding`
whose ``method`` says which comparison found it, tried in this order:

=============== =================================================================
method          found by
=============== =================================================================
exact           the value verbatim (strings)
normalized_text case, Latin accents, quotes and dashes, whitespace, HTML tags and
                entities folded; for strings of 5+ letters and digits, also with
                punctuation ignored and OCR look-alikes (0/o, 1/l/i) folded
currency        an ISO 4217 code written as a symbol or name (€, "euros", "Fr.")
number          a number token equal as a Decimal under either decimal convention
                ("1.234,50", "$1,234.50", "1 234,50", "CHF 1'234.50", "¥180,000")
date            a date token equal as a date (ISO, d.m.y, d/m/y, m/d/y, "March 5,
                2024", "5 Mar 2024", "Mar. 5th, 2024", 2024年3月5日)
not_found       none of the above
skipped         not considered: a ``skip`` glob selects it, it is a bool, or empty
=============== =================================================================

Strings holding an ISO date or a plain number also try ``date``/``number``. A
match never starts or ends inside a longer word or number. Spans are offsets
into the original text; of several occurrences, the one nearest the previous
grounded value is reported, so a line's numbers point into its own row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any, Final

from pydantic import BaseModel

from streams.errors import FieldError
from streams.grounding._match import Document, OriginalRange
from streams.grounding._paths import PathGlob, leaves

__all__ = ["METHODS", "FieldGrounding", "Grounding", "Span", "check_required", "ground"]

#: Every value ``FieldGrounding.method`` can take.
METHODS: Final = frozenset(
    {"exact", "normalized_text", "currency", "number", "date", "not_found", "skipped"}
)


@dataclass(frozen=True)
class Span:
    """A ``[start, end)`` range of the original source text."""

    start: int
    end: int


@dataclass(frozen=True)
class FieldGrounding:
    """One leaf value: where it was found (``span``) and how (``method``)."""

    path: str
    value: str
    found: bool
    span: Span | None
    method: str

    @property
    def considered(self) -> bool:
        return self.method != "skipped"

    def as_dict(self) -> dict[str, Any]:
        span = None if self.span is None else {"start": self.span.start, "end": self.span.end}
        return {
            "path": self.path,
            "value": self.value,
            "found": self.found,
            "span": span,
            "method": self.method,
        }


@dataclass(frozen=True)
class Grounding:
    """The grounding of every leaf of one record, and the share that was found."""

    fields: tuple[FieldGrounding, ...]
    coverage: float

    def __eq__(self, other: object) -> bool:
        # By value, so a grounding read back from the cache (a _StoredGrounding) equals
        # the one computed when the entry was written.
        if not isinstance(other, Grounding):
            return NotImplemented
        return (self.fields, self.coverage) == (other.fields, other.coverage)

    def missing(self) -> list[str]:
        """Paths of the considered values that do not appear in the source."""
        return [f.path for f in self.fields if f.considered and not f.found]

    def as_dict(self) -> dict[str, Any]:
        return {"coverage": self.coverage, "fields": [f.as_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Grounding:
        """Inverse of :meth:`as_dict` (the result cache stores groundings this way).

        Data in exactly the shape :meth:`as_dict` writes is kept as it is, and its
        fields are built only if asked for: a replayed cache hit needs its coverage
        and its Avro datum (:attr:`_StoredGrounding.stored`), not a dataclass per leaf.
        """
        coverage, stored = data["coverage"], data["fields"]
        if type(coverage) is float and type(stored) is list and all(map(_canonical, stored)):
            return _StoredGrounding(coverage, stored)
        return cls(fields=_fields_from(stored), coverage=float(coverage))


class _StoredGrounding(Grounding):
    """A :class:`Grounding` kept as the dicts :meth:`Grounding.as_dict` wrote.

    ``fields`` is built on first access and is then equal to what
    :meth:`Grounding.from_dict` builds eagerly.
    """

    stored: list[dict[str, Any]]

    def __init__(self, coverage: float, stored: list[dict[str, Any]]) -> None:
        object.__setattr__(self, "coverage", coverage)
        object.__setattr__(self, "stored", stored)

    def __getattr__(self, name: str) -> Any:
        if name != "fields":
            raise AttributeError(name)
        fields = _fields_from(self.stored)
        object.__setattr__(self, "fields", fields)
        return fields

    def __repr__(self) -> str:
        return f"Grounding(fields={self.fields!r}, coverage={self.coverage!r})"


def _canonical(f: Any) -> bool:
    """Whether ``f`` is a field dict exactly as :meth:`FieldGrounding.as_dict` writes it."""
    if type(f) is not dict or len(f) != 5:
        return False
    span = f.get("span")
    return (
        type(f.get("path")) is str
        and type(f.get("value")) is str
        and type(f.get("found")) is bool
        and type(f.get("method")) is str
        and (
            span is None
            or (
                type(span) is dict
                and len(span) == 2
                and type(span.get("start")) is int
                and type(span.get("end")) is int
            )
        )
    )


def _fields_from(stored: Any) -> tuple[FieldGrounding, ...]:
    return tuple(
        FieldGrounding(
            path=str(f["path"]),
            value=str(f["value"]),
            found=bool(f["found"]),
            span=None
            if f["span"] is None
            else Span(int(f["span"]["start"]), int(f["span"]["end"])),
            method=str(f["method"]),
        )
        for f in stored
    )


def ground(
    record: BaseModel | Mapping[str, Any], source: str, *, skip: Collection[str] = ()
) -> Grounding:
    """Ground every leaf value of ``record`` in ``source``; ``skip`` globs exclude paths."""
    document = Document(source)
    skipped = PathGlob(skip)
    fields: list[FieldGrounding] = []
    anchor: OriginalRange | None = None
    for path, value in leaves(record):
        if value is None:
            continue
        rendered = _render(value)
        if isinstance(value, bool) or not rendered.strip() or skipped.matches(path):
            fields.append(FieldGrounding(path, rendered, False, None, "skipped"))
            continue
        hit = document.find(value)
        if hit is None:
            fields.append(FieldGrounding(path, rendered, False, None, "not_found"))
            continue
        method, ranges = hit
        anchor = _nearest(ranges, anchor)
        fields.append(FieldGrounding(path, rendered, True, Span(*anchor), method))
    considered = [f for f in fields if f.considered]
    coverage = sum(f.found for f in considered) / len(considered) if considered else 1.0
    return Grounding(tuple(fields), coverage)


def check_required(grounding: Grounding, required: Collection[str]) -> list[FieldError]:
    """An ``ungrounded`` error for each value selected by a ``required`` glob but not found.

    Skipped values are not errors: skipping is the caller's explicit decision.
    """
    globs = PathGlob(required)
    return [
        FieldError(
            path=f.path,
            type="ungrounded",
            message=f"{f.path} value {f.value!r} does not appear in the source text; "
            "copy it as the document prints it",
            value=f.value,
        )
        for f in grounding.fields
        if f.considered and not f.found and globs.matches(f.path)
    ]


def _render(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date | datetime | time):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _nearest(ranges: list[OriginalRange], anchor: OriginalRange | None) -> OriginalRange:
    """The occurrence nearest ``anchor`` (not inside it), else the first one."""
    if anchor is None:
        return ranges[0]
    a_start, a_end = anchor
    outside = [r for r in ranges if r[1] <= a_start or r[0] >= a_end] or ranges

    def distance(r: OriginalRange) -> tuple[int, int]:
        gap = r[0] - a_end if r[0] >= a_end else a_start - r[1]
        return (abs(gap), -r[0])  # on a tie, prefer the later one: documents read forwards

    return min(outside, key=distance)
