"""Decode a raw Kafka record into a :class:`Document`, or say exactly why not.

Accepted inputs:

* plain UTF-8 text (any value that is not a JSON object), or
* a JSON envelope ``{"id": str, "text": str, "source": {...}?, "tenant": str?}``.

A value that *looks* like a JSON envelope (starts with ``{``) but fails to parse
is rejected rather than treated as text: silently extracting from a broken
envelope's raw JSON would hide a producer bug.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from streams.errors import EnvelopeError, UndecodableInput
from streams.textnorm import normalize_text, normalized_sha256

__all__ = ["Document", "RawRecord", "decode"]

#: Raw inputs larger than this never reach a model (checked before decoding).
MAX_RAW_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class RawRecord:
    """A consumed Kafka record, independent of the client library that read it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    """As consumed; a header value may be null (Kafka allows it)."""
    timestamp_ms: int | None = None

    @property
    def key_str(self) -> str | None:
        if self.key is None:
            return None
        return self.key.decode("utf-8", errors="backslashreplace")

    @property
    def coordinates(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True)
class Document:
    """A decoded input: the text to extract from, and where it came from."""

    id: str
    text: str
    sha256: str
    source: dict[str, Any] = field(default_factory=dict)
    tenant: str | None = None
    envelope: bool = False


def decode(raw: RawRecord) -> Document:
    """Turn a raw record into a :class:`Document`.

    Raises :class:`UndecodableInput` or :class:`EnvelopeError` with the reason.
    """
    value = raw.value
    if value is None:
        raise UndecodableInput("record has no value (tombstone)", reason="tombstone")
    if len(value) > MAX_RAW_BYTES:
        raise UndecodableInput(
            f"record value is {len(value)} bytes; the limit is {MAX_RAW_BYTES}",
            reason="too_large",
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UndecodableInput(
            f"value is not UTF-8: {exc.reason} at byte {exc.start}", reason="not_utf8"
        ) from exc
    if "\x00" in text:
        raise UndecodableInput("value contains NUL bytes; binary data is not text", reason="binary")

    stripped = text.lstrip()
    if stripped.startswith("{"):
        return _decode_envelope(stripped, raw)
    normalized = normalize_text(text)  # once: it is both the emptiness check and the identity
    if not normalized:
        raise UndecodableInput("value is empty or only whitespace", reason="empty")
    default_id = raw.key_str or raw.coordinates
    return Document(id=default_id, text=text, sha256=normalized_sha256(normalized))


def _decode_envelope(text: str, raw: RawRecord) -> Document:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UndecodableInput(
            f"value starts with '{{' but is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}",
            reason="bad_json",
        ) from exc
    except RecursionError as exc:  # nesting deeper than the interpreter's stack
        raise UndecodableInput(
            "value starts with '{' but its JSON is nested too deeply to decode",
            reason="bad_json",
        ) from exc
    if not isinstance(obj, dict):
        raise EnvelopeError("JSON envelope must be an object", reason="bad_envelope")
    unknown = set(obj) - {"id", "text", "source", "tenant"}
    if unknown:
        raise EnvelopeError(
            f"JSON envelope has unknown fields {sorted(unknown)}; "
            "allowed: id, text, source, tenant",
            reason="bad_envelope",
        )
    body = obj.get("text")
    if not isinstance(body, str):
        raise EnvelopeError("JSON envelope needs a string field 'text'", reason="bad_envelope")
    normalized = normalize_text(body)
    if not normalized:
        raise UndecodableInput("envelope 'text' is empty", reason="empty")
    doc_id = obj.get("id", raw.key_str or raw.coordinates)
    if not isinstance(doc_id, str | int) or isinstance(doc_id, bool):
        raise EnvelopeError("envelope 'id' must be a string", reason="bad_envelope")
    source = obj.get("source", {})
    if source is None:
        source = {}
    if not isinstance(source, dict):
        raise EnvelopeError("envelope 'source' must be an object", reason="bad_envelope")
    tenant = obj.get("tenant")
    if tenant is not None and (not isinstance(tenant, str) or not tenant.strip()):
        raise EnvelopeError("envelope 'tenant' must be a non-empty string", reason="bad_envelope")
    return Document(
        id=str(doc_id),
        text=body,
        sha256=normalized_sha256(normalized),
        source=source,
        tenant=tenant,
        envelope=True,
    )
