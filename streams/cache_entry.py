"""The result cache's entry: what a valid extraction stores, and how a hit is read back.

An entry is canonical JSON (sorted keys), so the same extraction always writes
the same bytes; with a signing key it is prefixed by an HMAC-SHA256 of those bytes,
and an unsigned or forged entry is a miss. A hit is validated strictly against the
contract again, and its stored grounding checked against the contract's grounding
policy: a stale, corrupt or forged entry is a miss, never a wrong record. Grounding
spans index the exact text, so they are reused only for byte-identical text and
recomputed otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Collection
from typing import Any

import orjson
from pydantic import BaseModel

from streams.attempts import Extraction
from streams.grounding import Grounding, check_required, ground

__all__ = ["decode_entry", "encode_entry"]

log = logging.getLogger("streams.extract")


#: A signed entry: this prefix, the hex HMAC-SHA256 of the body, a newline, the body.
#: The signature covers the stored bytes themselves, so no JSON library's output (or
#: its version) can change what verifies.
_SIGNED = b"hmac-sha256:"
_logged: set[str] = set()


def encode_entry(extraction: Extraction, text: str, key: bytes | None = None) -> bytes:
    """The cache entry of a valid ``extraction`` of ``text``, signed when ``key`` is set."""
    body = json.dumps(
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
    return body if key is None else _SIGNED + _mac(key, body) + b"\n" + body


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).hexdigest().encode()


def decode_entry(
    value: bytes,
    model: type[BaseModel],
    text: str | None,
    *,
    key: bytes | None = None,
    required: Collection[str] = (),
    rejected: Callable[[str], None] | None = None,
) -> Extraction | None:
    """The extraction a cache hit stands for (no call, no cost), or None if unusable.

    With ``key``, only an entry signed with it is used. The stored grounding is checked
    against ``required`` (the contract's grounding policy, which may have changed since
    the entry was written) without grounding the document again.
    """

    def reject(reason: str, detail: str) -> None:
        if reason not in _logged:  # once per reason and process; the metric counts all
            _logged.add(reason)
            log.warning("ignoring a result-cache entry (%s): %s", reason, detail)
        if rejected is not None:
            rejected(reason)

    body = value
    if value.startswith(_SIGNED):
        head, _, body = value.partition(b"\n")
        if key is not None and not hmac.compare_digest(head[len(_SIGNED) :], _mac(key, body)):
            reject("forged", "its signature does not match worker.cache_signing_key")
            return None
    elif key is not None:
        reject("unsigned", "written without a signature (before signing was enabled?)")
        return None
    try:
        # orjson here: an entry is read, never hashed; what is signed is its stored bytes.
        data = orjson.loads(body)
        record = model.model_validate_json(orjson.dumps(data["record"]), strict=True)
    except (ValueError, KeyError, TypeError) as exc:
        reject("unusable", str(exc))
        return None
    grounding = _grounding(data, record, text)
    if grounding is not None and required and check_required(grounding, required):
        reject("grounding_policy", "a value the contract requires in the source is not there")
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
        grounding=grounding,
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
