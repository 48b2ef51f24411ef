"""The result-cache key: everything that can change the answer, and nothing else."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

__all__ = ["CacheKeyParts", "cache_key"]


@dataclass(frozen=True)
class CacheKeyParts:
    """Inputs to the key. Adding a field here changes every key (a deliberate cache flush)."""

    contract: str
    contract_version: int
    prompt_version: str
    provider: str
    model: str
    temperature: float
    max_output_tokens: int
    input_sha256: str


def cache_key(parts: CacheKeyParts) -> str:
    """Hex sha256 over the canonical JSON of ``parts``."""
    canonical = json.dumps(
        {
            "contract": parts.contract,
            "contract_version": parts.contract_version,
            "prompt_version": parts.prompt_version,
            "provider": parts.provider,
            "model": parts.model,
            "temperature": round(parts.temperature, 6),
            "max_output_tokens": parts.max_output_tokens,
            "input_sha256": parts.input_sha256,
            # 2: the document is rendered inside a per-document boundary tag.
            "v": 2,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
