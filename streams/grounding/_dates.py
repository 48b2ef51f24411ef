"""Date-like tokens of a view, each with every date it can mean.

Numeric day-month orders are ambiguous without knowing the document's locale, so
"05/03/2024" stands for both 5 March and 3 May; grounding asks whether a date
appears, not which convention the document uses. Month names come from a small
table of languages the samples and their neighbours use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date

from streams.grounding._view import TextView, fold

__all__ = ["MONTHS", "DateToken", "date_tokens"]

# One row per month: English, German, French, Spanish, Italian, Dutch, Portuguese.
_MONTH_NAMES: tuple[tuple[str, ...], ...] = (
    ("january", "januar", "jänner", "janvier", "enero", "gennaio", "januari", "janeiro"),
    ("february", "februar", "février", "febrero", "febbraio", "februari", "fevereiro"),
    ("march", "märz", "mars", "marzo", "maart", "março"),
    ("april", "avril", "abril", "aprile"),
    ("may", "mai", "mayo", "maggio", "mei", "maio"),
    ("june", "juni", "juin", "junio", "giugno", "junho"),
    ("july", "juli", "juillet", "julio", "luglio", "julho"),
    ("august", "août", "agosto", "augustus"),
    ("september", "septembre", "septiembre", "settembre", "setembro"),
    ("october", "oktober", "octobre", "octubre", "ottobre", "outubro"),
    ("november", "novembre", "noviembre", "novembro"),
    ("december", "dezember", "décembre", "diciembre", "dicembre", "dezembro"),
)
# Abbreviations that are not prefixes of a name above.
_EXTRA_ABBREVIATIONS: Mapping[str, int] = {"mrt": 3, "mär": 3}


def _month_table() -> dict[str, int]:
    """Full names and every unambiguous prefix of three letters or more ("sept", "juil")."""
    table: dict[str, int] = {}
    clashes: set[str] = set()
    for month, names in enumerate(_MONTH_NAMES, 1):
        for name in map(fold, names):
            for length in range(3, len(name) + 1):
                prefix = name[:length]
                if table.setdefault(prefix, month) != month:
                    clashes.add(prefix)  # "jui" is juin or juillet
    for prefix in clashes:
        del table[prefix]
    table.update({fold(k): v for k, v in _EXTRA_ABBREVIATIONS.items()})
    return table


#: Folded month name or abbreviation -> month number.
MONTHS: Mapping[str, int] = _month_table()
_LONGEST_MONTH = max(map(len, MONTHS))

# Each pattern starts by consuming a digit or a letter and checks what precedes it
# with a look-behind after that first character: a pattern that starts with a
# look-behind makes the regex engine try every position of the text, one that starts
# with a character class lets it skip ahead to the candidates.
_LETTER = r"[^\W\d_]"
_YMD = re.compile(r"(\d(?<![\d.,/-]\d)\d{3}) ?([-/.]) ?(\d{1,2}) ?\2 ?(\d{1,2})(?!\d)")
_CJK = re.compile(r"(\d{4}) ?[年년] ?(\d{1,2}) ?[月월] ?(\d{1,2}) ?[日일]")
_CJK_MARKS = ("年", "년")
_DMY = re.compile(r"(\d(?<![\d.,/-]\d)\d?) ?([-/.]) ?(\d{1,2}) ?\2 ?(\d{4}|\d{2})(?!\d)(?![-/.]\d)")
_MONTH_DAY_YEAR = re.compile(
    rf"({_LETTER}(?<!{_LETTER}{_LETTER}){_LETTER}*)\.? ?(\d{{1,2}})(?:st|nd|rd|th)?\.?,? ?"
    r"(\d{4})(?!\d)"
)
# What follows the month of a _MONTH_DAY_YEAR match, found from the day's first digit
# (a letter, then "." and/or " " or nothing, before it). Far fewer places start with a
# digit after a word than with a word, so the month pattern runs only before these.
_MONTH_DAY_YEAR_TAIL = re.compile(
    rf"\d(?:(?<={_LETTER}\d)|(?<={_LETTER} \d)|(?<={_LETTER}\.\d)|(?<={_LETTER}\. \d))"
    r"\d?(?:st|nd|rd|th)?\.?,? ?\d{4}(?!\d)"
)
_IS_LETTER = re.compile(_LETTER).match
_DAY_MONTH_YEAR = re.compile(
    rf"(\d(?<!\d\d)\d?)(?:st|nd|rd|th|er|\.)? ?(?:de )?({_LETTER}+)\.?,? ?(?:de )?(\d{{4}})(?!\d)"
)


@dataclass(frozen=True)
class DateToken:
    """A date in the view: its view range and the dates it can be read as."""

    start: int
    end: int
    values: frozenset[date]


def _year(text: str) -> int:
    year = int(text)
    if len(text) == 2:
        year += 2000 if year < 70 else 1900
    return year


def _dates(candidates: Iterable[tuple[int, int, int]]) -> frozenset[date]:
    valid = set()
    for year, month, day in candidates:
        try:
            valid.add(date(year, month, day))
        except ValueError:
            continue
    return frozenset(valid)


def _scan(text: str) -> Iterator[tuple[int, int, frozenset[date]]]:
    for m in _YMD.finditer(text):
        yield m.start(), m.end(), _dates([(int(m[1]), int(m[3]), int(m[4]))])
    for m in _CJK.finditer(text) if any(mark in text for mark in _CJK_MARKS) else ():
        yield m.start(), m.end(), _dates([(int(m[1]), int(m[2]), int(m[3]))])
    for m in _DMY.finditer(text):
        a, b, year = int(m[1]), int(m[3]), _year(m[4])
        yield m.start(), m.end(), _dates([(year, b, a), (year, a, b)])
    for m in _month_day_year(text):
        if month := MONTHS.get(m[1]):
            yield m.start(), m.end(), _dates([(int(m[3]), month, int(m[2]))])
    for m in _DAY_MONTH_YEAR.finditer(text):
        if month := MONTHS.get(m[2]):
            yield m.start(), m.end(), _dates([(int(m[3]), month, int(m[1]))])


def _month_day_year(text: str) -> Iterator[re.Match[str]]:
    """The matches of ``_MONTH_DAY_YEAR.finditer(text)`` whose word can be a month.

    A match starts at a word and ends after a year; the only letters inside it after its
    word are a day's "st"/"nd"/"rd"/"th", too short for a month, so no month match starts
    inside another match, and each is ``_MONTH_DAY_YEAR.match`` at its word's start.
    Every match's day starts a ``_MONTH_DAY_YEAR_TAIL`` match, and those never swallow
    one another's (a tail holds no three-letter word). A test pins the equality.
    """
    for tail in _MONTH_DAY_YEAR_TAIL.finditer(text):
        end = tail.start()  # the look-behind saw a letter before it: end > 0
        if text[end - 1] == " ":
            end -= 1
        if text[end - 1] == ".":
            end -= 1
        start = end - 1  # a letter
        while start > 0 and _IS_LETTER(text, start - 1):
            start -= 1
            if end - start > _LONGEST_MONTH:
                break
        else:
            if m := _MONTH_DAY_YEAR.match(text, start):
                yield m


def date_tokens(view: TextView) -> list[DateToken]:
    """All date tokens of ``view``, in text order."""
    found: dict[tuple[int, int], frozenset[date]] = {}
    for start, end, values in _scan(view.text):
        if values:
            found[(start, end)] = found.get((start, end), frozenset()) | values
    return [DateToken(s, e, v) for (s, e), v in sorted(found.items())]
