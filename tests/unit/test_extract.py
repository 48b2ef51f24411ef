"""The retry budget: attempts, tokens, re-asks with field errors, transient backoff."""

from __future__ import annotations

import json
import random

import pytest
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.base import ContractVersion, Prompt
from streams.envelope import Document
from streams.errors import (
    AttemptsExhausted,
    ProviderRejected,
    ProviderTransient,
    ProviderUnavailable,
    RecordBudgetExceeded,
    RetryTokensExhausted,
)
from streams.extract import Extractor
from streams.settings import BudgetSettings, Price
from tests.fakes import NoSleep, ScriptedProvider, answer


class Pair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: int = Field(ge=0)
    b: int

    @model_validator(mode="after")
    def _order(self) -> Pair:
        if self.b < self.a:
            raise ValueError("b must not be below a")
        return self


CONTRACT = ContractVersion(name="pair", version=1, model=Pair, prompt=Prompt("Extract a and b."))
DOC = Document(id="d1", text="a is 1 and b is 2", sha256="x")
GOOD = json.dumps({"a": 1, "b": 2})


def _extractor(
    provider: ScriptedProvider, sleep: NoSleep | None = None, **budget: int
) -> Extractor:
    return Extractor(
        CONTRACT,
        provider,
        BudgetSettings(**budget),  # type: ignore[arg-type]
        price=Price(input_per_mtok=1.0, output_per_mtok=2.0),
        sleep=sleep or NoSleep(),
        rng=random.Random(0),
    )


async def test_first_answer_valid() -> None:
    """A valid first answer yields one attempt, its tokens and its cost."""
    provider = ScriptedProvider([answer(GOOD)])
    out = await _extractor(provider).extract(DOC)
    assert out.record == Pair(a=1, b=2)
    assert len(out.attempts) == 1
    assert (out.input_tokens, out.output_tokens) == (100, 20)
    assert out.cost_usd == pytest.approx((100 * 1.0 + 20 * 2.0) / 1e6)
    assert out.model_reported == "m-2026"
    request = provider.requests[0]
    assert request.json_schema["title"] == "Pair"
    assert request.messages[1].content == "<document>\na is 1 and b is 2\n</document>"


async def test_reask_carries_field_errors_without_mutating() -> None:
    """A contract violation is re-asked with field errors; earlier messages are untouched."""
    provider = ScriptedProvider([answer(json.dumps({"a": 3, "b": 1})), answer(GOOD)])
    out = await _extractor(provider).extract(DOC)
    assert [a.outcome for a in out.attempts] == ["contract_violation", "valid"]
    first, second = provider.requests
    assert len(first.messages) == 2
    assert len(second.messages) == 4
    assert second.messages[:2] == first.messages
    assert second.messages[2].role == "assistant"
    assert "b must not be below a" in second.messages[3].content


async def test_repairs_are_recorded() -> None:
    """A fenced answer with a numeric string is repaired without another call."""
    provider = ScriptedProvider([answer('```json\n{"a": "1", "b": 2}\n```')])
    out = await _extractor(provider).extract(DOC)
    assert len(provider.requests) == 1
    assert out.repairs == ("strip_code_fence", "number_from_string:a")


async def test_truncated_answer_is_never_valid() -> None:
    """finish_reason=length is re-asked even when the text happens to parse."""
    provider = ScriptedProvider([answer(GOOD, finish="length"), answer(GOOD)])
    out = await _extractor(provider).extract(DOC)
    assert [a.outcome for a in out.attempts] == ["truncated", "valid"]


async def test_attempts_exhausted_is_invalid_with_history() -> None:
    """After max_attempts bad answers, AttemptsExhausted carries errors and last output."""
    bad = json.dumps({"a": -1, "b": 0})
    provider = ScriptedProvider([answer("not json"), answer(bad)])
    with pytest.raises(AttemptsExhausted) as info:
        await _extractor(provider, max_attempts=3).extract(DOC)
    exc = info.value
    assert len(provider.requests) == 3
    assert exc.last_output == bad
    assert {e.path for e in exc.errors} == {"a"}
    assert [a.outcome for a in exc.context["attempts"]] == [
        "malformed",
        "contract_violation",
        "contract_violation",
    ]


async def test_token_budget_stops_retries() -> None:
    """Re-asks stop once cumulative tokens would pass the cap: over-budget, not invalid."""
    provider = ScriptedProvider([answer("nope", tokens=(400, 100))])
    with pytest.raises(RetryTokensExhausted) as info:
        await _extractor(provider, max_total_tokens=700, max_output_tokens=200).extract(DOC)
    assert len(provider.requests) == 1
    assert info.value.budget == "retry_tokens"


async def test_record_over_input_cap_makes_no_call() -> None:
    """A document over the per-record cap is rejected before any request."""
    provider = ScriptedProvider([answer(GOOD)])
    big = Document(id="big", text="word " * 5000, sha256="y")
    with pytest.raises(RecordBudgetExceeded):
        await _extractor(provider, max_input_tokens=500).extract(big)
    assert provider.requests == []


async def test_transient_errors_back_off_and_honour_retry_after() -> None:
    """429/5xx are retried with backoff >= Retry-After and do not use up attempts."""
    sleep = NoSleep()
    provider = ScriptedProvider(
        [
            ProviderTransient("busy", status=429, retry_after=3.0),
            ProviderTransient("5xx"),
            answer(GOOD),
        ]
    )
    out = await _extractor(provider, sleep).extract(DOC)
    assert len(out.attempts) == 1
    assert out.attempts[0].transient_retries == 2
    assert sleep.delays[0] >= 3.0
    assert len(sleep.delays) == 2


async def test_transient_exhaustion_pauses() -> None:
    """Transient errors past the retry count raise ProviderUnavailable (pause, not DLQ)."""
    provider = ScriptedProvider([ProviderTransient("down", status=503)])
    with pytest.raises(ProviderUnavailable):
        await _extractor(provider, transient_retries=2).extract(DOC)
    assert len(provider.requests) == 3


async def test_rejected_fails_fast() -> None:
    """A 401 is not retried."""
    provider = ScriptedProvider([ProviderRejected("bad key", status=401)])
    with pytest.raises(ProviderRejected):
        await _extractor(provider).extract(DOC)
    assert len(provider.requests) == 1


async def test_cache_hit_makes_no_call_and_reuses_grounding_for_identical_text() -> None:
    """A hit returns the same record without a call; spans are reused only for identical text."""
    from streams.textnorm import text_sha256
    from tests.fakes import MemoryCache

    cache = MemoryCache()
    provider = ScriptedProvider([answer(GOOD)])
    extractor = Extractor(
        CONTRACT, provider, BudgetSettings(), cache=cache, sleep=NoSleep(), rng=random.Random(0)
    )
    text = "a is 1 and b is 2"
    first = await extractor.extract(Document(id="1", text=text, sha256=text_sha256(text)))
    again = await extractor.extract(Document(id="2", text=text, sha256=text_sha256(text)))
    assert len(provider.requests) == 1
    assert (again.record, again.cache_hit, again.cost_usd) == (first.record, True, 0.0)
    assert again.grounding == first.grounding
    spaced = "  a is 1 and b is 2"  # same normalised text, so the same cache key
    moved = await extractor.extract(Document(id="3", text=spaced, sha256=text_sha256(spaced)))
    assert len(provider.requests) == 1
    assert moved.grounding is not None
    assert first.grounding is not None
    assert [f.span for f in moved.grounding.fields] != [f.span for f in first.grounding.fields]
