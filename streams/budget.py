"""Offline token estimates and the per-record budget gate.

No tokenizer is downloaded at run time. The estimate is deliberately
conservative for English and code-like text (BPE tokenizers average 3.5-4.5
characters per token on prose, fewer on digits and punctuation), and it counts
whitespace, so a record that passes the gate is very unlikely to overrun the cap
for real.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streams.errors import RecordBudgetExceeded

__all__ = ["BudgetGate", "estimate_tokens"]

# Not "[A-Za-z]{1,4}": a pattern that starts with a repeat is tried at every position,
# one that starts with a character class skips ahead to the letters.
_LETTER_CHUNKS = re.compile(r"[A-Za-z][A-Za-z]{0,3}")
# A lone ASCII space between a non-space and a letter: every BPE tokenizer we target folds
# it into the word after it (" word" is one token in cl100k, "\u2581word" in llama's).
# Written space-first so the engine scans for the literal and checks around it (3x faster).
_MERGED_SPACE = re.compile(r" (?<=\S )(?=[A-Za-z])")
_THREE_BYTE = re.compile("[\u0800-\uffff]")
_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


def estimate_tokens(text: str) -> int:
    r"""Estimate BPE tokens offline, an upper bound: every character class costs.

    Letters go in ~4-char chunks; each digit, symbol and whitespace character is one
    token, except a lone space before a letter (merged into the word's token). A non-ASCII
    character costs 1.5 tokens when it is two UTF-8 bytes (Latin accents, Greek, Cyrillic,
    Arabic), 2 when three (CJK, Thai, Devanagari), and one per byte where a byte-level BPE
    falls back to bytes: private-use characters (3) and characters outside the BMP (4:
    rare CJK, emoji, math letters). Whitespace is never free, so a megabyte of spaces
    estimates a million tokens and meets ``max_input_tokens``. Checked against the local
    model's real tokenizer by ``tests/localmodel/test_token_estimate.py``.

    Counted with C-level string methods and regexes (it runs on every record): ``str.split``
    drops exactly the characters regex ``\s`` matches, so this equals a per-token scan with
    ``[A-Za-z]+|\d|\s|[^\sA-Za-z\d]`` that skips the merged spaces.
    """
    # Matching at most four letters at a time cuts a run of n letters into ceil(n / 4)
    # chunks: one list from the regex engine, no Python loop over the runs.
    chunks = _LETTER_CHUNKS.findall(text)
    letters = sum(map(len, chunks))
    nonspace = sum(map(len, text.split()))
    spaces = len(text) - nonspace - len(_MERGED_SPACE.findall(text))
    # Each non-ASCII character is one token above already; what it may cost beyond that:
    non_ascii = len(text) - len(text.encode("ascii", "ignore"))
    astral = len(text.encode("utf-16-le", "surrogatepass")) // 2 - len(text)
    three_byte = len(_THREE_BYTE.findall(text))
    private = len(_PRIVATE_USE.findall(text))
    two_byte = non_ascii - three_byte - astral
    extra = two_byte // 2 + three_byte + private + 3 * astral
    return len(chunks) + (nonspace - letters) + spaces + extra + 4


@dataclass(frozen=True)
class BudgetGate:
    """Rejects a record whose prompt is estimated over ``max_input_tokens``."""

    max_input_tokens: int
    max_output_tokens: int

    def __post_init__(self) -> None:
        if self.max_input_tokens <= 0 or self.max_output_tokens <= 0:
            raise ValueError("token budgets must be positive")

    def check(self, prompt_tokens: int) -> int:
        """Return the estimated worst-case tokens of one attempt, or raise."""
        if prompt_tokens > self.max_input_tokens:
            raise RecordBudgetExceeded(
                f"estimated {prompt_tokens} input tokens exceed the per-record cap of "
                f"{self.max_input_tokens}",
                budget="record_input_tokens",
                limit=self.max_input_tokens,
                used=prompt_tokens,
            )
        return prompt_tokens + self.max_output_tokens
