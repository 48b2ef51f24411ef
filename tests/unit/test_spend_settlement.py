"""What each call is settled at against the spend caps (issue 12 item 5).

The spend guard here is a small recording implementation of the SpendGuard
protocol: no broker is involved, so none is mocked.
"""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from streams.attempts import build_messages
from streams.envelope import Document
from streams.errors import (
    AttemptsExhausted,
    MalformedOutput,
    ProviderRejected,
    ProviderTransient,
    ProviderTransientExhausted,
    RecordBudgetExceeded,
)
from streams.extract import Extractor
from streams.protocols import Reservation, SpendGuard
from streams.providers.base import Completion, CompletionRequest
from streams.settings import BudgetSettings, Price
from tests.fakes import FakeClock, NoSleep, ScriptedProvider, answer
from tests.unit.test_extract import CONTRACT, GOOD

PRICE = Price(input_per_mtok=1.0, output_per_mtok=2.0)
DOC = Document(id="d1", text="a is 1 and b is 2", sha256="x")


class RecordingSpend:
    """Grants every reservation and records what each one is settled at."""

    def __init__(self) -> None:
        self.reserved: list[float] = []
        self.settled: list[tuple[float, float]] = []

    async def reserve(self, scopes: tuple[str, ...], amount_usd: float) -> Reservation:
        self.reserved.append(amount_usd)
        return Reservation(scopes=scopes, amount_usd=amount_usd, window=0)

    def settle(self, reservation: Reservation, actual_usd: float) -> None:
        self.settled.append((reservation.amount_usd, actual_usd))

    def remaining(self, scope: str) -> float | None:
        return None


def _extractor(provider: ScriptedProvider, spend: RecordingSpend, **budget: int) -> Extractor:
    clock = FakeClock()
    return Extractor(
        CONTRACT,
        provider,
        BudgetSettings(**budget),  # type: ignore[arg-type]
        price=PRICE,
        spend=spend,
        sleep=NoSleep(clock),
        rng=random.Random(0),
        clock=clock,
    )


def _cost(tokens_in: int, tokens_out: int) -> float:
    return (tokens_in * 1.0 + tokens_out * 2.0) / 1_000_000


def test_the_recording_guard_is_a_spend_guard() -> None:
    """The fake satisfies the protocol the worker's ledger implements."""
    assert isinstance(RecordingSpend(), SpendGuard)


def test_reservation_is_the_worst_case_and_a_success_settles_at_usage() -> None:
    """Reserved: estimated input plus max_output_tokens; settled: the reported usage."""
    spend = RecordingSpend()
    extractor = _extractor(ScriptedProvider([answer(GOOD, tokens=(70, 9))]), spend)
    asyncio.run(extractor.extract(DOC))
    estimate = extractor.estimate(build_messages(CONTRACT, DOC))
    worst = _cost(estimate, extractor.budgets.max_output_tokens)
    assert spend.reserved == [pytest.approx(worst)]
    assert spend.settled == [(pytest.approx(worst), pytest.approx(_cost(70, 9)))]


def test_a_refusal_is_settled_at_the_reported_usage_not_zero() -> None:
    """A refused answer was billed: its reported tokens are charged."""
    refusal = MalformedOutput(
        "model refused to answer: no",
        last_output="no",
        input_tokens=120,
        output_tokens=15,
    )
    spend = RecordingSpend()
    extractor = _extractor(ScriptedProvider([refusal]), spend, max_attempts=1)
    with pytest.raises(MalformedOutput):
        asyncio.run(extractor.extract(DOC))
    assert [actual for _, actual in spend.settled] == [pytest.approx(_cost(120, 15))]
    assert spend.settled[0][1] > 0


def test_a_refusal_without_usage_is_settled_at_the_reservation() -> None:
    """No usage reported: the stated upper estimate (the reservation) is charged."""
    spend = RecordingSpend()
    refusal = MalformedOutput("model refused to answer", last_output="")
    extractor = _extractor(ScriptedProvider([refusal]), spend, max_attempts=1)
    with pytest.raises(MalformedOutput):
        asyncio.run(extractor.extract(DOC))
    ((reserved, actual),) = spend.settled
    assert actual == reserved > 0


def test_a_truncated_answer_is_settled_at_its_usage() -> None:
    """Cut off at max_output_tokens: billed in full, and every attempt is charged."""
    cut = answer('{"a": 1', finish="length", tokens=(80, 40))
    spend = RecordingSpend()
    extractor = _extractor(ScriptedProvider([cut]), spend, max_attempts=2)
    with pytest.raises(AttemptsExhausted):
        asyncio.run(extractor.extract(DOC))
    assert [actual for _, actual in spend.settled] == [pytest.approx(_cost(80, 40))] * 2


class Hangs(ScriptedProvider):
    """A provider whose call never returns: the record is cancelled mid-call."""

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def test_a_cancelled_call_is_settled_at_the_reservation() -> None:
    """Cancelled in flight, the provider may still bill it: the upper estimate is charged."""
    spend = RecordingSpend()
    provider = Hangs([answer(GOOD)])
    extractor = _extractor(provider, spend)

    async def run() -> None:
        task = asyncio.create_task(extractor.extract(DOC))
        while not provider.requests:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    ((reserved, actual),) = spend.settled
    assert actual == reserved > 0


def test_transient_failures_given_up_on_are_settled_at_the_reservation() -> None:
    """Timeouts may have run on the provider's side; none reported usage."""
    spend = RecordingSpend()
    provider = ScriptedProvider([ProviderTransient("timed out")])
    extractor = _extractor(provider, spend, transient_retries=1)
    with pytest.raises(ProviderTransientExhausted):
        asyncio.run(extractor.extract(DOC))
    ((reserved, actual),) = spend.settled
    assert actual == reserved > 0


def test_a_request_the_api_turned_away_costs_nothing() -> None:
    """A 400 was never run, so it is settled at $0."""
    spend = RecordingSpend()
    provider = ScriptedProvider([ProviderRejected("bad request", status=400)])
    extractor = _extractor(provider, spend)
    with pytest.raises(ProviderRejected):
        asyncio.run(extractor.extract(DOC))
    assert [actual for _, actual in spend.settled] == [0.0]


def test_a_call_dearer_than_its_reservation_is_charged_in_full() -> None:
    """Settle charges the actual cost, over the reservation: the overrun is not dropped."""
    spend = RecordingSpend()
    dear = answer(json.dumps({"a": 1, "b": 2}), tokens=(50_000, 900))
    extractor = _extractor(ScriptedProvider([dear]), spend)
    asyncio.run(extractor.extract(DOC))
    ((reserved, actual),) = spend.settled
    assert actual == pytest.approx(_cost(50_000, 900))
    assert actual > reserved


def test_huge_whitespace_is_refused_before_any_reservation() -> None:
    """A megabyte of blanks meets max_input_tokens: no reservation, no call."""
    spend = RecordingSpend()
    provider = ScriptedProvider([answer(GOOD)])
    extractor = _extractor(provider, spend, max_input_tokens=100_000)
    blank = Document(id="w", text="a" + " " * 1_000_000 + "b", sha256="w")
    with pytest.raises(RecordBudgetExceeded):
        asyncio.run(extractor.extract(blank))
    assert spend.reserved == []
    assert provider.requests == []
