"""Result-cache integrity: signed entries, rejected forgeries, the grounding policy
re-applied to a stored grounding, and a bounded in-memory table."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from types import SimpleNamespace

from contracts import SAMPLES_DIR, get_contract
from streams.attempts import Extraction
from streams.avro_schema import grounding_datum
from streams.cache_entry import decode_entry, encode_entry
from streams.grounding import Grounding, ground
from streams.state.table import KafkaTable

CONTRACT = get_contract("invoice", 1)
SAMPLE = SAMPLES_DIR / "invoice" / "01-acme-industrial-usd"
TEXT = SAMPLE.with_suffix(".txt").read_text(encoding="utf-8")
RECORD = CONTRACT.model.model_validate_json(SAMPLE.with_suffix(".json").read_text("utf-8"))
KEY = b"a key the group's workers share"


def _extraction() -> Extraction:
    return Extraction(
        record=RECORD,
        attempts=(),
        repairs=(),
        input_tokens=100,
        output_tokens=50,
        cost_usd=0.001,
        latency_ms=5.0,
        model_reported="m-1",
        last_output="",
        grounding=ground(RECORD, TEXT),
    )


def _read(value: bytes, key: bytes | None, **kw: object) -> tuple[Extraction | None, list[str]]:
    reasons: list[str] = []
    hit = decode_entry(value, CONTRACT.model, TEXT, key=key, rejected=reasons.append, **kw)  # type: ignore[arg-type]
    return hit, reasons


def test_a_signed_entry_is_read_back_and_its_signature_covers_the_stored_body() -> None:
    signed = encode_entry(_extraction(), TEXT, KEY)
    head, _, body = signed.partition(b"\n")
    assert body == encode_entry(_extraction(), TEXT)  # the unsigned entry, verbatim
    assert head == b"hmac-sha256:" + hmac.new(KEY, body, hashlib.sha256).hexdigest().encode()
    hit, reasons = _read(signed, KEY)
    assert hit is not None
    assert hit.cache_hit
    assert hit.record == RECORD
    assert reasons == []


def test_a_forged_or_unsigned_entry_is_a_counted_miss_when_a_key_is_set() -> None:
    signed = encode_entry(_extraction(), TEXT, KEY)
    forged = signed.replace(b'"total": "', b'"total": "1')  # a changed value, old signature
    assert forged != signed
    assert _read(forged, KEY) == (None, ["forged"])
    assert _read(encode_entry(_extraction(), TEXT, b"another key"), KEY) == (None, ["forged"])
    assert _read(encode_entry(_extraction(), TEXT), KEY) == (None, ["unsigned"])
    assert _read(b"not json at all", None) == (None, ["unusable"])


def test_without_a_key_entries_are_trusted_signed_or_not() -> None:
    for value in (encode_entry(_extraction(), TEXT), encode_entry(_extraction(), TEXT, KEY)):
        hit, reasons = _read(value, None)
        assert hit is not None
        assert reasons == []


def test_the_grounding_policy_is_applied_to_the_stored_grounding() -> None:
    """An entry whose stored grounding misses a value the contract now requires is a miss;
    the document is not grounded again to decide it (here it would be found)."""
    extraction = _extraction()
    assert extraction.grounding is not None
    first = extraction.grounding.fields[0]
    unfound = dataclasses.replace(first, found=False, span=None, method="not_found")
    stored = dataclasses.replace(
        extraction.grounding, fields=(unfound, *extraction.grounding.fields[1:])
    )
    entry = encode_entry(dataclasses.replace(extraction, grounding=stored), TEXT, KEY)
    hit, reasons = _read(entry, KEY)
    assert hit is not None
    assert reasons == []
    assert _read(entry, KEY, required=(first.path,)) == (None, ["grounding_policy"])


def test_the_table_keeps_at_most_max_entries_newest_first() -> None:
    table = KafkaTable("127.0.0.1:9", "t.cache", max_entries=3)
    records = [SimpleNamespace(key=f"k{i}".encode(), value=b"v%d" % i) for i in range(5)]
    records.append(SimpleNamespace(key=b"k2", value=b"again"))  # rewritten: newest again
    assert table._apply_batch({"tp": records}) == 6  # type: ignore[dict-item]
    assert len(table) == 3
    assert [table.get(k) for k in ("k0", "k1", "k2", "k3", "k4")] == [
        None,
        None,
        b"again",
        b"v3",
        b"v4",
    ]


def test_a_stored_grounding_equals_the_computed_one_and_writes_the_same_datum() -> None:
    """A hit keeps the stored grounding dicts, yet equals, prints and encodes as the original;
    an entry in any other shape is still coerced field by field."""
    computed = ground(RECORD, TEXT)
    stored = Grounding.from_dict(json.loads(json.dumps(computed.as_dict())))
    assert stored == computed
    assert computed == stored
    assert hash(stored) == hash(computed)
    assert repr(stored) == repr(computed)
    assert stored.fields == computed.fields
    assert stored.missing() == computed.missing()
    assert grounding_datum(stored) == grounding_datum(computed)
    odd = computed.as_dict()
    odd["fields"][0] = {**odd["fields"][0], "found": 1}
    coerced = Grounding.from_dict(odd)
    assert type(coerced) is Grounding
    assert coerced == computed
