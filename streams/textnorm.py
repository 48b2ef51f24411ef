"""Text normalisation shared by the pipeline, the cache key and the simulator.

One function, so that the hash a worker computes for an input and the key the
simulator looks its fixtures up by can never drift apart.
"""

from __future__ import annotations

import hashlib
import unicodedata

__all__ = ["normalize_text", "normalized_sha256", "text_sha256"]


def normalize_text(text: str) -> str:
    """NFC-normalise, unify line endings, strip trailing spaces per line and the ends."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def text_sha256(text: str) -> str:
    """Hex sha256 of the normalised text: the identity of a document."""
    return normalized_sha256(normalize_text(text))


def normalized_sha256(normalized: str) -> str:
    """:func:`text_sha256` for text that :func:`normalize_text` already produced."""
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()
