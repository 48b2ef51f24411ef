"""Pure logic of the Kafka-backed state: cache keys and the spend-claim decision rule."""

from __future__ import annotations

import dataclasses
import json

import pytest

from streams.cache_key import CacheKeyParts, cache_key, wire_schema_sha256
from streams.providers.base import ChatMessage, CompletionRequest
from streams.state.spend import SpendCaps, SpendLedger

PARTS = CacheKeyParts(
    contract="invoice",
    contract_version=1,
    prompt_version="abc",
    provider="openai",
    model="m",
    temperature=0.0,
    max_output_tokens=1024,
    input_sha256="f" * 64,
    wire_schema_sha256="a" * 64,
    repair_version=1,
)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("contract", "claim"),
        ("contract_version", 2),
        ("prompt_version", "abd"),
        ("provider", "anthropic"),
        ("model", "m2"),
        ("temperature", 0.2),
        ("max_output_tokens", 512),
        ("input_sha256", "e" * 64),
        ("wire_schema_sha256", "b" * 64),
        ("repair_version", 2),
    ],
)
def test_every_input_of_the_answer_changes_the_cache_key(field: str, value: object) -> None:
    """Changing anything that can change the answer gives a different key."""
    assert cache_key(dataclasses.replace(PARTS, **{field: value})) != cache_key(PARTS)


def test_cache_key_is_stable() -> None:
    """The same parts always give the same key (replays hit the cache)."""
    assert cache_key(PARTS) == cache_key(dataclasses.replace(PARTS))


def test_the_key_covers_the_schema_each_provider_sends() -> None:
    """Two providers that send the same contract schema differently get different keys,
    and the hash is of the bytes the request body carries."""
    import orjson

    from streams.providers.anthropic import AnthropicProvider
    from streams.providers.openai_compat import OpenAICompatProvider
    from streams.providers.profiles import profile_for

    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}}
    openai = OpenAICompatProvider("http://127.0.0.1:9/v1", "m", None)
    anthropic = AnthropicProvider("http://127.0.0.1:9/v1", "m", None)
    sent = openai._body(_request(schema))["response_format"]
    assert openai.wire_schema("s", schema) == orjson.dumps(sent) + b"\nprofile=legacy/v1"
    llamacpp = OpenAICompatProvider(
        "http://127.0.0.1:9/v1", "m", None, profile=profile_for("llamacpp")
    )
    keys = {
        wire_schema_sha256(openai, "s", schema),
        wire_schema_sha256(anthropic, "s", schema),
        wire_schema_sha256(object(), "s", schema),
        wire_schema_sha256(openai, "s", {**schema, "required": ["a"]}),
        wire_schema_sha256(llamacpp, "s", schema),
    }
    assert len(keys) == 5


def _request(schema: dict[str, object]) -> CompletionRequest:
    return CompletionRequest(
        messages=(ChatMessage("user", "x"),),
        schema_name="s",
        json_schema=schema,
        max_output_tokens=8,
    )


def test_caps_per_scope() -> None:
    """Pipeline, default tenant and per-tenant caps resolve as configured."""
    caps = SpendCaps(pipeline_usd=10, tenant_default_usd=2, tenants=(("acme", 5),))
    assert caps.cap_for("pipeline") == 10
    assert caps.cap_for("tenant:acme") == 5
    assert caps.cap_for("tenant:other") == 2
    assert SpendCaps().cap_for("pipeline") is None
    assert caps.chunk(10) == pytest.approx(0.2)


def _claim(ledger: SpendLedger, claim_id: str, amount: float, cap: float = 1.0) -> None:
    body = {"id": claim_id, "window": 0, "scope": "pipeline", "amount": amount, "cap": cap}
    ledger._apply(json.dumps(body).encode())


def test_claims_are_granted_in_log_order_up_to_the_cap() -> None:
    """Every reader of the claim log grants the same claims: the ones that fit, in order."""
    readers = [SpendLedger("unused:9092", "t", SpendCaps(pipeline_usd=1.0)) for _ in range(2)]
    for ledger in readers:
        for i, amount in enumerate([0.4, 0.4, 0.4, 0.2, 0.1]):
            _claim(ledger, f"c{i}", amount)
    for ledger in readers:
        assert ledger.granted("pipeline", 0) == pytest.approx(1.0)  # 0.4 + 0.4 + 0.2


def test_malformed_claims_are_ignored() -> None:
    """A garbage record in the claim log neither crashes a worker nor grants budget."""
    ledger = SpendLedger("unused:9092", "t", SpendCaps(pipeline_usd=1.0))
    ledger._apply(b"not json")
    ledger._apply(b'{"window": "x"}')
    assert ledger.granted("pipeline", 0) == 0


def test_cache_key_bytes_are_pinned() -> None:
    """The key's canonical JSON never changes with a codec swap (orjson is not used here).
    A deliberate change bumps the key's ``v`` and this value together (v3: schema sent and
    repair version)."""
    assert cache_key(PARTS) == "2e05d6207958d285a455d8d832d2e4fbc28de4b23426b0c624ff29275580668d"


def test_cache_entry_bytes_are_pinned() -> None:
    """A cache entry is canonical JSON: the same extraction always writes the same bytes."""
    import hashlib

    from pydantic import BaseModel

    from streams.attempts import Extraction
    from streams.cache_entry import encode_entry

    class Record(BaseModel):
        a: int
        b: str

    extraction = Extraction(
        record=Record(a=1, b="é"),
        attempts=(),
        repairs=("fence",),
        input_tokens=10,
        output_tokens=5,
        cost_usd=0.25,
        latency_ms=1.0,
        model_reported="m-1",
        last_output="",
    )
    digest = hashlib.sha256(encode_entry(extraction, "text é")).hexdigest()
    assert digest == "4c85ee23810c10011f0777d623a78e8f54bd6d95510e76cfc6469706db0771bb"
