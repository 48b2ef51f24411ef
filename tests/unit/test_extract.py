"""The retry budget: attempts, tokens, re-asks with field errors, transient backoff."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.base import ContractVersion, Prompt
from streams.attempts import document_boundary
from streams.envelope import Document
from streams.errors import (
    AttemptsExhausted,
    ProviderDeploymentFault,
    ProviderRejected,
    ProviderRequestTooLarge,
    ProviderTransient,
    ProviderTransientExhausted,
    RecordBudgetExceeded,
    RetryTokensExhausted,
)
from streams.extract import Extractor
from streams.guard import ProviderGuard
from streams.providers.base import Completion, CompletionRequest
from streams.settings import BudgetSettings, Price
from tests.fakes import FakeClock, NoSleep, ScriptedProvider, answer


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
    provider: ScriptedProvider,
    sleep: NoSleep | None = None,
    *,
    clock: FakeClock | None = None,
    guard: ProviderGuard | None = None,
    **budget: int,
) -> Extractor:
    clock = clock or (sleep.clock if sleep is not None else None) or FakeClock()
    sleep = sleep or NoSleep(clock)
    return Extractor(
        CONTRACT,
        provider,
        BudgetSettings(**budget),  # type: ignore[arg-type]
        price=Price(input_per_mtok=1.0, output_per_mtok=2.0),
        sleep=sleep,
        rng=random.Random(0),
        clock=clock,
        guard=guard,
    )


class OthersSucceed(ScriptedProvider):
    """Scripted, and another record succeeds during every request: failures are this one's."""

    guard: ProviderGuard | None = None

    async def complete(self, request: CompletionRequest) -> Completion:
        if self.guard is not None:
            self.guard.success(object())
        return await super().complete(request)


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
    tag = document_boundary("a is 1 and b is 2")
    assert request.messages[1].content.endswith(
        f"\n<document-{tag}>\na is 1 and b is 2\n</document-{tag}>"
    )


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


async def test_record_fault_exhausts_its_transient_retries_to_the_dlq() -> None:
    """A record failing while others succeed gets transient_retries retries, then the DLQ."""
    clock = FakeClock()
    provider = OthersSucceed([ProviderTransient("boom", status=500)])
    extractor = _extractor(provider, clock=clock, transient_retries=2)
    provider.guard = extractor.guard
    with pytest.raises(ProviderTransientExhausted) as info:
        await extractor.extract(DOC)
    assert len(provider.requests) == 3
    assert info.value.context["reason"] == "provider_transient_exhausted"
    assert info.value.context["statuses"] == ("500", "500", "500")


async def test_lonely_failures_are_bounded_by_age_not_count() -> None:
    """Failures nobody else disproves do not count, but max_record_seconds still ends them."""
    clock = FakeClock()
    provider = ScriptedProvider([ProviderTransient("down", status=503)])
    extractor = _extractor(provider, clock=clock, transient_retries=1, max_record_seconds=30)
    with pytest.raises(ProviderTransientExhausted) as info:
        await extractor.extract(DOC)
    assert len(provider.requests) > 2  # more than transient_retries: they were not counted
    assert "max_record_seconds" in info.value.message
    assert info.value.context["age_s"] >= 30


async def test_open_breaker_costs_no_retries_and_no_age() -> None:
    """During an outage (breaker open) a record waits without spending budget or aging."""
    clock = FakeClock()
    sleep = NoSleep(clock)
    guard = ProviderGuard(cool_off_s=100.0, min_records=3, clock=clock, sleep=sleep)
    for other in ("a", "b", "c"):  # an outage: three other records failing at once
        guard.failure(other, guard.successes)
    assert guard.is_open
    provider = ScriptedProvider([answer(GOOD)])
    extractor = _extractor(provider, sleep, guard=guard, max_record_seconds=30)
    out = await extractor.extract(DOC)
    assert out.record == Pair(a=1, b=2)
    assert sleep.delays == [pytest.approx(100.0)]  # waited out the cool-off, then called once


async def test_failures_just_before_a_trip_are_forgiven() -> None:
    """The failures that were an outage's first signs do not count against a record."""
    clock = FakeClock()
    guard = ProviderGuard(window_s=10.0, min_records=3, clock=clock)
    guard.success("x")
    assert guard.failure("r", 0)  # counted: someone else succeeded since the try began
    for other in ("a", "b", "c"):
        guard.failure(other, 0)
    assert guard.is_open
    assert guard.counted([clock.now]) == 0
    assert guard.counted([clock.now - 11.0]) == 1


async def test_request_too_large_is_never_retried() -> None:
    """A 429 saying the request itself is too large goes to over-budget after one request."""
    provider = ScriptedProvider([ProviderRequestTooLarge("too large", status=429, limit=30000)])
    with pytest.raises(ProviderRequestTooLarge) as info:
        await _extractor(provider).extract(DOC)
    assert len(provider.requests) == 1
    assert info.value.context["reason"] == "provider_request_too_large"


async def test_deployment_fault_holds_then_resumes_without_spending_attempts() -> None:
    """A 401 holds the pipeline; after the probe clears, the same record is retried and valid."""
    probes: list[int] = []

    async def probe() -> None:
        probes.append(1)

    clock = FakeClock()
    sleep = NoSleep(clock)
    guard = ProviderGuard(probe=probe, clock=clock, sleep=sleep)
    provider = ScriptedProvider([ProviderDeploymentFault("revoked", status=401), answer(GOOD)])
    out = await _extractor(provider, sleep, guard=guard).extract(DOC)
    assert out.record == Pair(a=1, b=2)
    assert len(out.attempts) == 1
    assert probes == [1]
    assert guard.held_reason is None


async def test_rejected_fails_fast() -> None:
    """A 400 is not retried."""
    provider = ScriptedProvider([ProviderRejected("bad request", status=400)])
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


async def test_exhausted_on_a_cut_off_answer_names_it() -> None:
    """Attempts ending in a truncated answer give reason "truncated", not an empty list."""
    provider = ScriptedProvider([answer(GOOD[:5], finish="length")])
    with pytest.raises(AttemptsExhausted) as info:
        await _extractor(provider, max_attempts=2).extract(DOC)
    assert info.value.context["reason"] == "truncated"
    assert info.value.errors == ()


async def test_a_cache_hit_builds_and_estimates_no_prompt() -> None:
    """Replay is cheap: a hit is looked up before the prompt is built or its tokens estimated."""
    from streams.textnorm import text_sha256
    from tests.fakes import MemoryCache

    class Counting(Extractor):
        estimates = 0

        def estimate(self, messages: tuple[Any, ...]) -> int:
            Counting.estimates += 1
            return super().estimate(messages)

    provider = ScriptedProvider([answer(GOOD)])
    extractor = Counting(CONTRACT, provider, BudgetSettings(), cache=MemoryCache(), sleep=NoSleep())
    doc = Document(id="1", text=DOC.text, sha256=text_sha256(DOC.text))
    await extractor.extract(doc)
    before = Counting.estimates
    again = await extractor.extract(doc)
    assert again.cache_hit
    assert Counting.estimates == before
