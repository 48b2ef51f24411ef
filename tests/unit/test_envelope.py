"""Decoding raw Kafka values into documents, and rejecting everything else."""

from __future__ import annotations

import json

import pytest

from streams.envelope import MAX_RAW_BYTES, RawRecord, decode
from streams.errors import EnvelopeError, UndecodableInput
from streams.textnorm import text_sha256


def _raw(value: bytes | None, key: bytes | None = b"k1") -> RawRecord:
    return RawRecord(topic="t", partition=0, offset=7, key=key, value=value)


def test_plain_text_uses_key_as_id() -> None:
    """Plain UTF-8 text becomes a document whose id is the record key."""
    doc = decode(_raw("Invoice 42\r\nTotal: 10 €".encode()))
    assert doc.id == "k1"
    assert doc.text.startswith("Invoice 42")
    assert doc.sha256 == text_sha256("Invoice 42\nTotal: 10 €")
    assert not doc.envelope


def test_keyless_text_uses_coordinates() -> None:
    """Without a key, the id is topic[partition]@offset so it is still unique."""
    assert decode(_raw(b"hello", key=None)).id == "t[0]@7"


def test_json_envelope_fields() -> None:
    """A JSON envelope gives id, text, source and tenant."""
    value = json.dumps({"id": "inv-1", "text": "Invoice", "source": {"f": 1}, "tenant": "acme"})
    doc = decode(_raw(value.encode()))
    assert (doc.id, doc.text, doc.source, doc.tenant, doc.envelope) == (
        "inv-1",
        "Invoice",
        {"f": 1},
        "acme",
        True,
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "tombstone"),
        (b"\xff\xfe\x00bad", "not_utf8"),
        (b"   \n\t ", "empty"),
        (b"abc\x00def", "binary"),
        (b'{"id": "x", "text": ', "bad_json"),
        (b'{"text": "x", "source": ' + b'{"a": ' * 50_000, "bad_json"),  # RecursionError
        (b'{"text": "x", "s": ' + b'{"a": ' * 20_000 + b"1" + b"}" * 20_001, "bad_json"),
        (b"x" * (MAX_RAW_BYTES + 1), "too_large"),
    ],
)
def test_undecodable_values(value: bytes | None, reason: str) -> None:
    """Each kind of undecodable value is rejected with its own reason."""
    with pytest.raises(UndecodableInput) as info:
        decode(_raw(value))
    assert info.value.context["reason"] == reason


@pytest.mark.parametrize(
    "envelope",
    [
        {"id": "x"},
        {"id": "x", "text": 5},
        {"id": "x", "text": "t", "source": []},
        {"id": "x", "text": "t", "tenant": ""},
        {"id": "x", "text": "t", "surprise": 1},
        {"id": True, "text": "t"},
    ],
)
def test_bad_envelopes(envelope: dict[str, object]) -> None:
    """Envelopes with missing, mistyped or unknown fields are rejected, not guessed at."""
    with pytest.raises(EnvelopeError):
        decode(_raw(json.dumps(envelope).encode()))


def test_json_array_is_not_an_envelope() -> None:
    """A JSON array is not an envelope object, and is text only if it does not start with '{'."""
    doc = decode(_raw(b"[1, 2]"))
    assert doc.text == "[1, 2]"
