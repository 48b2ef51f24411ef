"""A normalised view of a text that maps every character back to the original.

Matching runs on the view: HTML markup stripped, entities decoded, case folded,
Latin accents and typographic punctuation folded, whitespace collapsed. Spans are
reported in the original text, so a consumer can highlight what the source said.

    >>> v = build_view("Fenwick &amp; Hart")
    >>> v.text
    'fenwick & hart'
    >>> v.original(8, 9)   # the "&" came from the five characters of "&amp;"
    (8, 13)
"""

from __future__ import annotations

import html
import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["LooseView", "TextView", "build_view", "fold", "loose_view"]

# Tags that only style text. Removing them must not split a word ("<b>INV</b>-7").
# A block of names reads like the HTML spec; a 90-item list literal would not.
_INLINE_TAGS = frozenset(
    """
    a abbr b bdi bdo cite code data del em font i ins kbd mark q s samp small span strike
    strong sub sup time tt u var wbr
    """.split()  # noqa: SIM905
)
# Tags that separate text. Any other <name> is kept as text: e-mail headers write
# addresses as <name@host>, and a made-up <document> wrapper is not HTML either.
_BLOCK_TAGS = frozenset(
    """
    address article aside base blockquote body br button caption center col colgroup dd
    details div dl dt fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 head header
    hr html iframe img input label legend li link main meta nav noscript ol option p pre
    script section select style summary table tbody td textarea tfoot th thead title tr ul
    """.split()  # noqa: SIM905
)
# Their content is code, not text; its numbers must not ground anything.
_DROP_CONTENT = frozenset({"script", "style"})

# A comment is matched by its opener alone and its end found with str.find: the regex
# "<!--.*?-->" rescans the rest of the text from every unclosed "<!--" (quadratic).
# Every branch starts with a literal "<" or "&", so the regex engine skips ahead to
# those two characters instead of trying each position of the text (an entity is the
# match that starts with "&").
_MARKUP = re.compile(
    r"<(?:(?P<comment>!--)"
    r"|![a-zA-Z][^<>]*>"
    r"|(?P<close>/?)(?P<tag>[a-zA-Z][a-zA-Z0-9]*)(?:\s[^<>]*)?/?>)"
    r"|&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);"
)

_PUNCTUATION = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2015": "-",
        "\u2212": "-",
    }
)

# ASCII whitespace (what str.isspace() is true for below 128) that the view does not
# copy one for one: a run of two or more, or one that is not a plain space. Between
# two of these an ASCII run maps to the view character for character.
# Written to start with a character class (two or more, or one that is not a space),
# so the engine skips to whitespace; "x{2,}|y" would be tried at every position.
_ASCII_GAP = re.compile(
    r"[\t\n\x0b\x0c\r\x1c-\x1f ](?:[\t\n\x0b\x0c\r\x1c-\x1f ]+|(?<=[\t\n\x0b\x0c\r\x1c-\x1f]))"
)

_NOT_ASCII = re.compile(r"[^\x00-\x7f][^\x00-\x7f]*")  # not "+": see _ASCII_GAP

# OCR confuses these glyphs; the loose view folds each group to one character.
_OCR_CONFUSIONS = str.maketrans({"0": "o", "1": "l", "i": "l"})
_ALNUM_RUN = re.compile(r"[^\W_]+")


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    ch = ch.translate(_PUNCTUATION)
    decomposed = unicodedata.normalize("NFKD", ch)
    # Accents are dropped from Latin letters only: on kana the combining marks
    # (dakuten) tell different syllables apart.
    latin = bool(decomposed) and ord(decomposed[0]) < 0x250
    base = decomposed if latin else unicodedata.normalize("NFKC", ch)
    out = []
    for c in base.casefold():
        category = unicodedata.category(c)
        if category == "Cf" or (latin and category == "Mn"):
            continue
        out.append(" " if c.isspace() else c)
    return "".join(out)


#: No fixed original range: view character ``v`` of a linear stretch that starts at
#: view index ``v0`` and original index ``o0`` comes from ``[o0 + v - v0, o0 + v - v0 + 1)``.
_LINEAR = -1


@dataclass(frozen=True)
class TextView:
    """Folded text plus, for each of its characters, the original range it came from.

    The map is kept by stretch, not by character: mark ``k`` says that from view index
    ``at[k]`` up to the next mark the view copies the original one for one from
    ``start[k]`` (``end[k]`` is ``_LINEAR``), or that every view character there came
    from the original range ``[start[k], end[k])`` (a collapsed space, an entity, a
    character that folds to several).
    """

    text: str
    at: tuple[int, ...]
    start: tuple[int, ...]
    end: tuple[int, ...]

    def original(self, start: int, end: int) -> tuple[int, int]:
        """The original ``[start, end)`` range behind view range ``[start, end)``."""
        return self.source_of(start)[0], self.source_of(end - 1)[1]

    def source_of(self, i: int) -> tuple[int, int]:
        """The original range behind view character ``i``."""
        k = bisect_right(self.at, i) - 1
        first, last = self.start[k], self.end[k]
        if last == _LINEAR:
            first += i - self.at[k]
            return first, first + 1
        return first, last

    @property
    def starts(self) -> tuple[int, ...]:
        """The original start of every view character (for tests and tools)."""
        return tuple(self.source_of(i)[0] for i in range(len(self.text)))

    @property
    def ends(self) -> tuple[int, ...]:
        """The original end of every view character (for tests and tools)."""
        return tuple(self.source_of(i)[1] for i in range(len(self.text)))


@dataclass(frozen=True)
class LooseView:
    """Only the letters and digits of a view, OCR confusions folded; ``index`` maps back."""

    text: str
    index: tuple[int, ...]


class _Builder:
    def __init__(self) -> None:
        self.chars: list[str] = []
        self.at: list[int] = []
        self.start: list[int] = []
        self.end: list[int] = []

    def emit(self, text: str, start: int, end: int) -> None:
        for c in "".join(map(_fold_char, text)):
            if c == " ":
                self.space(start, end)
            else:
                self._block(c, start, end)

    def _block(self, c: str, start: int, end: int) -> None:
        """Append view character ``c`` that stands for original ``[start, end)``."""
        if not (self.end and self.end[-1] == end and self.start[-1] == start):
            self.at.append(len(self.chars))
            self.start.append(start)
            self.end.append(end)
        self.chars.append(c)

    def emit_run(self, source: str, start: int, end: int) -> None:
        """Emit ``source[start:end]`` character by character, as :meth:`emit` would.

        An ASCII run (most of any document) folds to its lower case with whitespace
        collapsed, so it is emitted a stretch between two whitespace gaps at a time
        (a line, a table cell); other characters go through :func:`_fold_char` one at
        a time.
        """
        if source.isascii() or source[start:end].isascii():
            self._ascii(source[start:end].lower(), start)
            return
        # Mostly ASCII with a few "€" or "—": fast ASCII pieces, the rest one by one.
        pos = start
        for m in _NOT_ASCII.finditer(source, start, end):
            a, b = m.span()
            if pos < a:
                self._ascii(source[pos:a].lower(), pos)
            for i in range(a, b):
                folded = _fold_char(source[i])
                if folded == " ":
                    self.space(i, i + 1)
                elif len(folded) == 1:
                    self._block(folded, i, i + 1)
                else:
                    self.emit(source[i], i, i + 1)
            pos = b
        if pos < end:
            self._ascii(source[pos:end].lower(), pos)

    def _ascii(self, lowered: str, offset: int) -> None:
        """Append ASCII text already lowered that starts at original ``offset``."""
        chars, at, starts, ends = self.chars, self.at, self.start, self.end
        pos = 0
        for m in _ASCII_GAP.finditer(lowered):
            a, b = m.span()
            if pos < a:
                if lowered[pos] == " " and (not chars or chars[-1] == " "):
                    # A lone space right after a collapsed one (or at the very start)
                    # joins it.
                    self.space(pos + offset, pos + offset + 1)
                    pos += 1
                if pos < a:
                    at.append(len(chars))
                    starts.append(pos + offset)
                    ends.append(_LINEAR)
                    chars.extend(lowered[pos:a])
            if chars and chars[-1] != " ":  # the common case of space(): a new mark
                at.append(len(chars))
                starts.append(a + offset)
                ends.append(b + offset)
                chars.append(" ")
            else:
                self.space(a + offset, b + offset)
            pos = b
        self._copy(lowered, pos, len(lowered), offset)

    def _copy(self, lowered: str, a: int, b: int, offset: int) -> None:
        """Append ``lowered[a:b]``, one view character per original one (no gaps inside)."""
        if a >= b:
            return
        if lowered[a] == " " and (not self.chars or self.chars[-1] == " "):
            # A lone space right after a collapsed one (or at the very start) joins it.
            self.space(a + offset, a + offset + 1)
            a += 1
            if a == b:
                return
        self.at.append(len(self.chars))
        self.start.append(a + offset)
        self.end.append(_LINEAR)
        self.chars.extend(lowered[a:b])

    def space(self, start: int, end: int) -> None:
        chars = self.chars
        if not chars:
            return
        if chars[-1] == " ":
            # A collapsed run keeps its whole extent, so a number parser can tell one
            # thousands-separating space from a gap between table columns.
            last = len(chars) - 1
            if self.at[-1] == last:  # the space has its own mark: widen it
                self.end[-1] = end
            else:  # the space ends a linear stretch: give it its own mark
                first = self.start[-1] + last - self.at[-1]
                self.at.append(last)
                self.start.append(first)
                self.end.append(end)
            return
        self.at.append(len(chars))
        self.start.append(start)
        self.end.append(end)
        chars.append(" ")

    def view(self) -> TextView:
        if self.chars and self.chars[-1] == " ":
            del self.chars[-1]
            if self.at[-1] == len(self.chars):
                del self.at[-1], self.start[-1], self.end[-1]
        return TextView("".join(self.chars), tuple(self.at), tuple(self.start), tuple(self.end))


def build_view(source: str, *, markup: bool = True) -> TextView:
    """Fold ``source``; with ``markup``, strip known HTML tags and decode entities."""
    out = _Builder()
    pos = 0
    unclosed = False  # once a "<!--" has no "-->" after it, no later one has either
    resume = 0  # a comment spans up to here, even one inside a dropped body
    matches = _MARKUP.finditer(source) if markup else iter(())
    for m in matches:
        if m.group("comment"):
            if m.start() < resume:
                continue
            close = -1 if unclosed else source.find("-->", m.end())
            if close < 0:  # not a comment: its text stays in the run
                unclosed = True
                continue
            resume = close + 3
            if m.start() < pos:
                continue
            out.emit_run(source, pos, m.start())
            pos = resume
            out.space(m.start(), pos)
            continue
        if m.start() < pos or m.start() < resume:  # inside a dropped body or a comment
            continue
        out.emit_run(source, pos, m.start())
        pos = m.end()
        entity = m.group() if source[m.start()] == "&" else None
        tag = (m.group("tag") or "").lower()
        if entity:
            decoded = html.unescape(entity)
            out.emit(decoded if decoded != entity else entity, m.start(), m.end())
        elif tag in _INLINE_TAGS:
            continue
        elif tag and tag not in _BLOCK_TAGS:
            out.emit_run(source, m.start(), m.end())
        else:
            end = m.end()
            if tag in _DROP_CONTENT and not m.group("close"):
                closing = re.compile(rf"</{tag}\s*>", re.IGNORECASE).search(source, end)
                end = closing.end() if closing else len(source)
                pos = end
            out.space(m.start(), end)
    out.emit_run(source, pos, len(source))
    return out.view()


def fold(text: str) -> str:
    """The view text of a plain value (no markup handling), for comparing with a view."""
    return build_view(text, markup=False).text


def loose_view(view: TextView | str) -> LooseView:
    """Letters and digits only, OCR look-alikes folded: "N0RTHWIND TRAD ING" ~ "northwinding"."""
    text = view.text if isinstance(view, TextView) else view
    # A run at a time, not a character at a time: "[^\W_]" is exactly str.isalnum()
    # (the regex engine and str share Py_UNICODE_ISALNUM), and the OCR folding maps
    # single characters to single characters, so it can run on the joined text.
    runs: list[str] = []
    index: list[int] = []
    for m in _ALNUM_RUN.finditer(text):
        runs.append(m.group())
        index.extend(range(*m.span()))
    return LooseView("".join(runs).translate(_OCR_CONFUSIONS), tuple(index))
