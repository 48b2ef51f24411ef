"""Offline token estimation and the per-record gate."""

from __future__ import annotations

import pytest

from streams.budget import BudgetGate, estimate_tokens
from streams.errors import RecordBudgetExceeded


def test_estimate_grows_with_text() -> None:
    """Longer text estimates more tokens; digits cost one token each."""
    assert estimate_tokens("hello world") < estimate_tokens("hello world " * 10)
    assert estimate_tokens("1234567890") >= 10


def test_estimate_is_conservative_for_prose() -> None:
    """English prose estimates at least one token per five characters."""
    text = "The quick brown fox jumps over the lazy dog. " * 20
    assert estimate_tokens(text) >= len(text) / 5


def test_whitespace_is_not_free() -> None:
    """Every whitespace character costs a token, so a huge blank input meets the cap."""
    assert estimate_tokens(" " * 1_000_000) >= 1_000_000
    assert estimate_tokens("\n\t" * 1000) >= 2000
    assert estimate_tokens("a" + " " * 100 + "b") >= 100
    # A lone space before a word is folded into the word's token: prose stays cheap.
    assert estimate_tokens("hello world") == estimate_tokens("hello") + estimate_tokens("world") - 4


def test_gate_rejects_over_cap_without_a_call() -> None:
    """A prompt estimated over the cap raises RecordBudgetExceeded naming the budget."""
    gate = BudgetGate(max_input_tokens=100, max_output_tokens=50)
    assert gate.check(100) == 150
    with pytest.raises(RecordBudgetExceeded) as info:
        gate.check(101)
    assert info.value.budget == "record_input_tokens"
    assert info.value.limit == 100
    assert info.value.used == 101


def test_gate_rejects_nonsense_limits() -> None:
    """Zero or negative budgets are a configuration error at construction."""
    with pytest.raises(ValueError, match="positive"):
        BudgetGate(max_input_tokens=0, max_output_tokens=1)


def _reference_estimate(text: str) -> int:
    """The estimate as first written: one regex match per token (slow, obviously right)."""
    import math
    import re
    import string

    count = 0
    for match in re.finditer(r"[A-Za-z]+|\d|\s|[^\sA-Za-z\d]", text):
        piece, at = match.group(), match.start()
        if piece[0].isalpha():
            count += math.ceil(len(piece) / 4)
        elif (
            piece == " "
            and 0 < at < len(text) - 1
            and not text[at - 1].isspace()
            and text[at + 1] in string.ascii_letters
        ):
            continue  # a lone space folded into the word after it
        else:
            count += 1
    extra = 0.0
    for ch in text:
        size = len(ch.encode("utf-8", "surrogatepass"))
        extra += {1: 0, 2: 0.5, 3: 1, 4: 3}[size] + (1 if "\ue000" <= ch <= "\uf8ff" else 0)
    two_byte_halves = sum(1 for ch in text if 0x80 <= ord(ch) < 0x800) % 2 * 0.5
    return count + int(extra - two_byte_halves) + 4


def test_fast_estimate_equals_the_per_token_scan() -> None:
    """The C-level count gives exactly the per-token scan's figure on odd and real text."""
    import random

    from contracts import SAMPLES_DIR

    rng = random.Random(1)
    alphabet = (
        "abcXYZ 019\t\n\u00a0\u2003\u3000é漢字٣\u200b!€-_.\x1c\x1d\x1e\x1f\x85"
        "\ue000\uf8ff\U0001f600\U00020000\ud7ff\U0010ffff"
    )
    texts = [p.read_text(encoding="utf-8") for p in SAMPLES_DIR.rglob("*.txt")]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))) for _ in range(500)]
    for text in texts:
        assert estimate_tokens(text) == _reference_estimate(text), repr(text[:80])
