"""The result-cache key: everything that can change the answer, and nothing else."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["CacheKeyParts", "cache_key", "wire_schema_sha256"]


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
    #: sha256 of the schema bytes the provider sends (:func:`wire_schema_sha256`): the
    #: strict transform, a capability profile or a tool wrapper changes the answer too.
    wire_schema_sha256: str
    #: :data:`streams.repair.REPAIR_VERSION`: the stored record is the repaired answer.
    repair_version: int


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
            "wire_schema_sha256": parts.wire_schema_sha256,
            "repair_version": parts.repair_version,
            # 2: the document is rendered inside a per-document boundary tag.
            # 3: the schema sent and the repair version are part of the key.
            "v": 3,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def wire_schema_sha256(provider: object, schema_name: str, json_schema: dict[str, Any]) -> str:
    """Hex sha256 of what ``provider`` sends for the schema (its optional ``wire_schema``).

    A provider without ``wire_schema`` (a test fake) is keyed on the plain schema's
    canonical JSON.
    """
    wire = getattr(provider, "wire_schema", None)
    if wire is not None:
        sent: bytes = wire(schema_name, json_schema)
    else:
        sent = json.dumps(json_schema, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(sent).hexdigest()
