"""The faster scans of grounding and the token estimate give exactly what the plain
forms they replaced give (on every sample and on random texts built to hit edge cases)."""

from __future__ import annotations

import random
import re

import pytest

from contracts import SAMPLES_DIR
from streams import budget
from streams.grounding import _dates, _numbers, _view
from streams.grounding._view import LooseView, build_view, loose_view

_WS = r"[\t\n\x0b\x0c\r\x1c-\x1f ]"
_WS_NOT_SPACE = r"[\t\n\x0b\x0c\r\x1c-\x1f]"
#: Each rewritten pattern and the plain one it replaced: same matches, same groups.
_PLAIN_FORMS = {
    "ascii gap": (_view._ASCII_GAP, rf"{_WS}{{2,}}|{_WS_NOT_SPACE}"),
    "not ascii": (_view._NOT_ASCII, r"[^\x00-\x7f]+"),
    "digit runs": (_numbers._DIGITS, r"\d+"),
    "letter chunks": (budget._LETTER_CHUNKS, r"[A-Za-z]{1,4}"),
}
_OLD_MARKUP = re.compile(
    r"(?P<comment><!--)"
    r"|<![a-zA-Z][^<>]*>"
    r"|<(?P<close>/?)(?P<tag>[a-zA-Z][a-zA-Z0-9]*)(?:\s[^<>]*)?/?>"
    r"|(?P<entity>&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);)",
    re.DOTALL,
)


def _texts(pieces: list[str], count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = [p.read_text(encoding="utf-8") for p in sorted(SAMPLES_DIR.rglob("*.txt"))]
    texts += [build_view(t).text for t in texts]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 60))) for _ in range(count)]
    return texts


_PIECES = [
    *"aZ09 .,-/'(\t\n\r\x0b\x0c\x1c\x1f\x7f\x01é²\u0661\u2013\u2019ﬁ\u00a0\u200b漢İ",
    *["<b>", "</p>", "<br/>", "<!x y>", "&amp;", "&#160;", "&x", "<!--", "-->", "<a@b>"],
    *["march", "mar", "sept", "mai", "may", "de", "st", "th", "julyx", "  ", "\n\n", "2024"],
]


@pytest.mark.parametrize("name", sorted(_PLAIN_FORMS))
def test_rewritten_patterns_match_their_plain_forms(name: str) -> None:
    fast, plain = _PLAIN_FORMS[name]
    for text in _texts(_PIECES, 3000, seed=1):
        got = [(m.span(), m.groups()) for m in fast.finditer(text)]
        assert got == [(m.span(), m.groups()) for m in re.finditer(plain, text)], repr(text)


def test_markup_pattern_matches_the_plain_one() -> None:
    """Same spans; the comment and tag groups say the same; entities start with "&"."""
    for text in _texts(_PIECES, 3000, seed=2):
        fast = list(_view._MARKUP.finditer(text))
        plain = list(_OLD_MARKUP.finditer(text))
        assert [m.span() for m in fast] == [m.span() for m in plain], repr(text)
        for a, b in zip(fast, plain, strict=True):
            assert bool(a["comment"]) == bool(b["comment"])
            assert (a["close"], a["tag"]) == (b["close"], b["tag"])
            assert (a.group() if text[a.start()] == "&" else None) == b["entity"]


def test_month_day_year_scan_equals_the_plain_scan() -> None:
    for text in _texts(_PIECES, 20000, seed=3):
        plain = [
            (m.span(), m.groups())
            for m in _dates._MONTH_DAY_YEAR.finditer(text)
            if _dates.MONTHS.get(m[1])
        ]
        fast = [
            (m.span(), m.groups()) for m in _dates._month_day_year(text) if _dates.MONTHS.get(m[1])
        ]
        assert fast == plain, repr(text)


def _plain_loose_view(text: str) -> LooseView:
    chars, index = [], []
    for i, c in enumerate(text):
        if c.isalnum():
            chars.append(c.translate(_view._OCR_CONFUSIONS))
            index.append(i)
    return LooseView("".join(chars), tuple(index))


def test_loose_view_equals_the_per_character_one() -> None:
    for text in _texts(_PIECES, 3000, seed=4):
        assert loose_view(text) == _plain_loose_view(text), repr(text)
        view = build_view(text)
        assert loose_view(view) == _plain_loose_view(view.text), repr(text)
