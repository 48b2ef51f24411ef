"""Every regex that sees input text runs in linear time (issue 12 item 5).

Each case times a function on an adversarial text of size n and 4n. Linear work
grows ~4x, quadratic ~16x; the bound is loose (12x) because CI shares the machine,
and the best of three runs is taken. No absolute time is asserted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from streams.budget import estimate_tokens
from streams.errors import MalformedOutput
from streams.grounding import _view
from streams.grounding._dates import date_tokens
from streams.grounding._numbers import number_index
from streams.grounding._view import build_view
from streams.repair import repair


def _best_of_three(fn: Callable[[str], object], text: str) -> float:
    """The least CPU time of three calls: the thread's own CPU clock, so time the
    process spends descheduled on a loaded machine does not count."""
    best = float("inf")
    for _ in range(3):
        started = time.thread_time()
        fn(text)
        best = min(best, time.thread_time() - started)
    return best


def _dates(text: str) -> object:
    return date_tokens(build_view(text))


def _numbers(text: str) -> object:
    return number_index(build_view(text), text)


def _repair(text: str) -> object:
    try:
        return repair(text, {"type": "object", "properties": {}})
    except MalformedOutput:
        return None


_BOMBS: dict[str, tuple[Callable[[str], object], Callable[[int], str]]] = {
    "unclosed comments": (build_view, lambda n: "<!--" * n + " " * n),
    "unclosed comments, spaced": (build_view, lambda n: "<!-- " * n),
    "unclosed comment bang tags": (build_view, lambda n: "<!x " * n + " " * n),
    "open tag attributes": (build_view, lambda n: "<div " * n + "a" * n),
    "unclosed script": (build_view, lambda n: "<script>" + "</script " * n),
    "entities": (build_view, lambda n: "&a" * n + "&#" * n),
    "digit run": (_numbers, lambda n: "1" * (4 * n)),
    "grouped digits": (_numbers, lambda n: "1,000" * n + "'1"),
    "digit separators": (_numbers, lambda n: "1." * (2 * n)),
    "month names": (_dates, lambda n: "January " * n),
    "glued month names": (_dates, lambda n: "january" * n + " 12"),
    "day then words": (_dates, lambda n: "1 " + "a" * (4 * n)),
    "date-like digits": (_dates, lambda n: "2024-01-" * n),
    "days after words": (_dates, lambda n: "ab 1 2024 x1 " * n + "january" * n + " 1 2024"),
    "code fence blank run": (_repair, lambda n: "```\n" + "\n" * (4 * n) + "x"),
    "code fence space run": (_repair, lambda n: "```" + " " * (4 * n) + "x"),
    "trailing commas": (_repair, lambda n: "{" + ", " * n + " " * n),
    "token estimate": (estimate_tokens, lambda n: " a" * n + " " * n + "1" * n),
}


@pytest.mark.parametrize("name", sorted(_BOMBS))
def test_regex_work_grows_linearly(name: str) -> None:
    """Four times the adversarial input costs well under sixteen times the time."""
    fn, make = _BOMBS[name]
    n = 4000
    fn(make(n))  # warm caches (lru_cache, compiled patterns)
    small, large = _best_of_three(fn, make(n)), _best_of_three(fn, make(4 * n))
    ratio = large / max(small, 1e-6)
    assert ratio < 12, f"{name}: 4x input took {ratio:.1f}x the time (quadratic is ~16x)"


# The pattern before comments were found with str.find; the extra group never matches,
# so build_view takes its old path for every comment the old pattern matched.
_OLD_MARKUP = re.compile(
    r"(?P<comment>(?!x)x)"
    r"|<!--.*?-->"
    r"|<![a-zA-Z][^<>]*>"
    r"|<(?P<close>/?)(?P<tag>[a-zA-Z][a-zA-Z0-9]*)(?:\s[^<>]*)?/?>"
    r"|(?P<entity>&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]*);)",
    re.DOTALL,
)


def test_comment_scan_matches_the_old_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the samples and on comment-laden variants, the view is exactly the old one."""
    from contracts import SAMPLES_DIR

    texts = [p.read_text(encoding="utf-8") for p in sorted(SAMPLES_DIR.rglob("*.txt"))]
    extras = [
        "a <!-- note --> b",
        "a<!---->b<!-- x -- y -->c",
        "<!-->x-->y",
        "<!--->z-->",
        "x <!-- unclosed <b>B</b> &amp; 1,234.50",
        "<!-- one --> <!-- two <script>1</script> --> <p>3</p> <!-- three",
        "<!--<!--<!-- nested --> after --> tail",
        "<script>var a = '<!--';</script> <!-- c --> d",
    ]
    variants = [f"<!-- head -->{t}<!-- mid -->{t[:40]}<!-- open" for t in texts[:5]]
    cases = texts + extras + variants
    new = [build_view(t) for t in cases]
    monkeypatch.setattr(_view, "_MARKUP", _OLD_MARKUP)
    old = [build_view(t) for t in cases]
    assert len(cases) > 20
    for text, a, b in zip(cases, new, old, strict=True):
        assert a == b, repr(text[:80])
