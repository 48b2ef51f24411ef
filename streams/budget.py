"""Offline token estimates and the per-record budget gate.

No tokenizer is downloaded at run time. The estimate is deliberately
conservative for English and code-like text (BPE tokenizers average 3.5-4.5
characters per token on prose, fewer on digits and punctuation), so a record
that passes the gate is very unlikely to overrun the cap for real.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from streams.errors import RecordBudgetExceeded

__all__ = ["BudgetGate", "estimate_tokens"]

_WORD = re.compile(r"[A-Za-z]+|\d|[^\sA-Za-z\d]")


def estimate_tokens(text: str) -> int:
    """Estimate BPE tokens offline: letters in ~4-char chunks, each digit and symbol one token."""
    count = 0
    for match in _WORD.finditer(text):
        piece = match.group()
        count += math.ceil(len(piece) / 4) if piece[0].isalpha() else 1
    # Whitespace runs and non-ASCII scripts cost extra tokens in most vocabularies.
    non_ascii = sum(1 for ch in text if ord(ch) > 127)
    return count + non_ascii // 2 + 4


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
