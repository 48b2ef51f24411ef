"""The result cache's entry: what a valid extraction stores, and how a hit is read back.

An entry is canonical JSON (sorted keys), so the same extraction always writes
the same bytes. A hit is validated strictly against the contract again: a stale
or corrupt entry is a miss, never a wrong record. Grounding spans index the exact
text, so they are reused only for byte-identical text and recomputed otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import orjson
from pydantic import BaseModel

from streams.attempts import Extraction
from streams.grounding import Grounding, ground

__all__ = ["decode_entry", "encode_entry"]

log = logging.getLogger("streams.extract")


def encode_entry(extraction: Extraction, text: str) -> bytes:
    """The cache entry of a valid ``extraction`` of ``text``."""
    return json.dumps(
        {
            "record": json.loads(extraction.record.model_dump_json()),
            "model_reported": extraction.model_reported,
            "input_tokens": extraction.input_tokens,
            "output_tokens": extraction.output_tokens,
            "cost_usd": extraction.cost_usd,
            "repairs": list(extraction.repairs),
            "attempts": len(extraction.attempts),
            "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "grounding": extraction.grounding.as_dict() if extraction.grounding else None,
        },
        sort_keys=True,
    ).encode()


def decode_entry(value: bytes, model: type[BaseModel], text: str | None) -> Extraction | None:
    """The extraction a cache hit stands for (no call, no cost), or None if unusable."""
    try:
        # orjson here: an entry is read, never hashed; the bytes it writes are still
        # json's canonical ones (encode_entry).
        data = orjson.loads(value)
        record = model.model_validate_json(orjson.dumps(data["record"]), strict=True)
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unusable cache entry: %s", exc)
        return None
    return Extraction(
        record=record,
        attempts=(),
        repairs=tuple(data.get("repairs", ())),
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
        latency_ms=0.0,
        model_reported=str(data.get("model_reported", "")),
        last_output="",
        cache_hit=True,
        grounding=_grounding(data, record, text),
    )


def _grounding(data: dict[str, Any], record: BaseModel, text: str | None) -> Grounding | None:
    if text is None:
        return None
    stored = data.get("grounding")
    if stored and data.get("text_sha256") == hashlib.sha256(text.encode()).hexdigest():
        try:
            return Grounding.from_dict(stored)
        except (KeyError, TypeError, ValueError):
            pass  # an older or odd entry: recompute below
    return ground(record, text)
