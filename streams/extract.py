"""The model-facing stages: budget gate, constrained call, repair, validate, re-ask.

:class:`Extractor` owns the retry budget of one record:

* attempts: at most ``max_attempts`` model answers (first call plus re-asks);
* tokens: the cumulative input+output tokens across attempts stay under
  ``max_total_tokens`` (checked with the offline estimate *before* each call);
* transient provider errors are retried with full-jitter exponential backoff
  that honours ``Retry-After``, and do not use up attempts. Whose fault each
  failure is decides the :class:`~streams.guard.ProviderGuard`: a record that
  keeps failing while others succeed gets ``transient_retries`` of them, or
  ``max_record_seconds`` of age, and then goes to the DLQ
  (:class:`~streams.errors.ProviderTransientExhausted`); during an outage it
  waits without spending either;
* a "request too large" answer is never retried (over-budget), and a
  deployment fault (401/403/404) holds the pipeline until a probe clears it.

Messages are immutable tuples, and every re-ask builds a new tuple, so the
prompt that keyed a cache entry is never modified afterwards.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from streams.attempts import Attempt, Extraction, build_messages, reask
from streams.budget import BudgetGate, estimate_tokens
from streams.cache_entry import decode_entry, encode_entry
from streams.cache_key import CacheKeyParts, cache_key, wire_schema_sha256
from streams.contract import ContractVersion
from streams.envelope import Document
from streams.errors import (
    AttemptsExhausted,
    ContractViolation,
    MalformedOutput,
    OutputError,
    ProviderDeploymentFault,
    ProviderRejected,
    ProviderRequestTooLarge,
    ProviderTransient,
    ProviderTransientExhausted,
    RetryTokensExhausted,
    SpendCapExceeded,
    StateStoreError,
    TruncatedOutput,
)
from streams.grounding import Grounding, check_required, ground
from streams.guard import ProviderGuard, RecordClock
from streams.protocols import ResultCache, SpendGuard
from streams.providers.base import ChatMessage, Completion, CompletionRequest, Provider
from streams.repair import REPAIR_VERSION, repair
from streams.settings import BudgetSettings, Price
from streams.validate import validate

__all__ = ["Attempt", "Extraction", "Extractor", "build_messages"]  # the first two re-exported

log = logging.getLogger("streams.extract")

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class _Ledger:
    clock: RecordClock
    record: object  # identity of this record for the guard's window
    attempts: list[Attempt] = field(default_factory=list)
    failure_times: list[float] = field(default_factory=list)  # failures that were its fault
    held_at: int | None = None  # guard.successes at this record's last deployment fault
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    statuses: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Extractor:
    """Runs the model-facing stages for one contract against one provider."""

    def __init__(
        self,
        contract: ContractVersion,
        provider: Provider,
        budgets: BudgetSettings,
        *,
        price: Price | None = None,
        cache: ResultCache | None = None,
        spend: SpendGuard | None = None,
        temperature: float = 0.0,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        guard: ProviderGuard | None = None,
        clock: Callable[[], float] = time.monotonic,
        cache_signing_key: bytes | None = None,
    ) -> None:
        self.contract = contract
        self.provider = provider
        self.budgets = budgets
        self.price = price
        self.gate = BudgetGate(budgets.max_input_tokens, budgets.max_output_tokens)
        self.schema = contract.json_schema()
        self.schema_name = f"{contract.name}_v{contract.version}"
        # Built once: the provider's transform of the schema is fixed for its lifetime.
        self._wire_schema_sha256 = wire_schema_sha256(provider, self.schema_name, self.schema)
        self._system_text = contract.prompt.system_message()
        self._system_tokens = estimate_tokens(self._system_text) + 4
        self.cache = cache
        self.spend = spend
        #: Called with True/False on every cache lookup (hit/miss); the worker counts them.
        self.on_cache_lookup: Callable[[bool], None] | None = None
        #: Called with the reason when an entry is found but not used (a miss).
        self.on_cache_rejected: Callable[[str], None] | None = None
        self._cache_signing_key = cache_signing_key
        self.temperature = temperature
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        #: Shared by every record of the pipeline; the worker reads its state.
        self.guard = guard or ProviderGuard(
            probe=getattr(provider, "probe", None), clock=clock, sleep=sleep
        )

    def cache_key(self, document: Document) -> str:
        return cache_key(
            CacheKeyParts(
                contract=self.contract.name,
                contract_version=self.contract.version,
                prompt_version=self.contract.prompt.version,
                provider=self.provider.name,
                model=self.provider.model,
                temperature=self.temperature,
                max_output_tokens=self.budgets.max_output_tokens,
                input_sha256=document.sha256,
                wire_schema_sha256=self._wire_schema_sha256,
                repair_version=REPAIR_VERSION,
            )
        )

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        if self.price is None:
            return 0.0
        return (
            input_tokens * self.price.input_per_mtok + output_tokens * self.price.output_per_mtok
        ) / 1_000_000

    def estimate(self, messages: tuple[ChatMessage, ...]) -> int:
        total = 0
        for m in messages:
            if m.role == "system" and m.content == self._system_text:
                total += self._system_tokens  # the fixed prompt: estimated once
            else:
                total += estimate_tokens(m.content) + 4
        return total

    async def extract(self, document: Document) -> Extraction:
        """Return a validated record, or raise a routed error from :mod:`streams.errors`."""
        key = self.cache_key(document)
        if self.cache is not None:
            # First, so a replayed hit costs a re-validation and nothing else: no prompt is
            # built or estimated for a record that makes no call (and spends nothing).
            hit = self.cache.get(key)
            if self.on_cache_lookup is not None:
                self.on_cache_lookup(hit is not None)
            if hit is not None:
                cached = decode_entry(
                    hit,
                    self.contract.model,
                    document.text,
                    key=self._cache_signing_key,
                    required=self.contract.grounding_required,
                    rejected=self.on_cache_rejected,
                )
                if cached is not None:
                    return cached
        messages = build_messages(self.contract, document)
        prompt_tokens = self.estimate(messages)
        worst_case = self.gate.check(prompt_tokens)
        scopes = ("pipeline",) + ((f"tenant:{document.tenant}",) if document.tenant else ())
        ledger = _Ledger(clock=RecordClock(self._clock), record=object())
        last_error: OutputError | None = None
        for number in range(1, self.budgets.max_attempts + 1):
            if number > 1:
                prompt_tokens = self.estimate(messages)
                worst_case = prompt_tokens + self.budgets.max_output_tokens
            if ledger.tokens + worst_case > self.budgets.max_total_tokens:
                raise RetryTokensExhausted(
                    f"attempt {number} could bring the record to {ledger.tokens + worst_case} "
                    f"tokens, over its cap of {self.budgets.max_total_tokens}",
                    budget="retry_tokens",
                    limit=self.budgets.max_total_tokens,
                    used=ledger.tokens,
                    **self._history(ledger, last_error),
                )
            completion, retries = await self._paid_call(
                messages, prompt_tokens, scopes, ledger, last_error
            )
            ledger.input_tokens += completion.input_tokens
            ledger.output_tokens += completion.output_tokens
            ledger.latency_ms += completion.latency_s * 1000
            try:
                record, repairs, grounding = self._accept(completion, document)
            except OutputError as exc:
                ledger.attempts.append(self._attempt(number, completion, exc, retries))
                last_error = exc
                messages = reask(messages, completion.text, exc)
                continue
            ledger.attempts.append(self._attempt(number, completion, None, retries))
            extraction = Extraction(
                record=record,
                attempts=tuple(ledger.attempts),
                repairs=repairs,
                input_tokens=ledger.input_tokens,
                output_tokens=ledger.output_tokens,
                cost_usd=self.cost(ledger.input_tokens, ledger.output_tokens),
                latency_ms=ledger.latency_ms,
                model_reported=completion.model_reported,
                last_output=completion.text,
                statuses=tuple(ledger.statuses),
                grounding=grounding,
            )
            await self._store(key, extraction, document.text)
            return extraction
        assert last_error is not None
        # A last answer that was cut off or unparseable has no field errors to name, so
        # its kind is the reason (else the reason would read "contract:" and nothing).
        history = self._history(ledger, last_error)
        if not isinstance(last_error, ContractViolation):
            history["reason"] = _kind(last_error)
        raise AttemptsExhausted(
            f"no valid answer after {self.budgets.max_attempts} attempt(s): {last_error.message}",
            **history,
        )

    def _history(self, ledger: _Ledger, last_error: OutputError | None) -> dict[str, Any]:
        return {
            "attempts": tuple(ledger.attempts),
            "errors": getattr(last_error, "errors", ()),
            "last_output": last_error.last_output if last_error else None,
            "input_tokens": ledger.input_tokens,
            "output_tokens": ledger.output_tokens,
            "cost_usd": self.cost(ledger.input_tokens, ledger.output_tokens),
            "statuses": tuple(ledger.statuses),
        }

    async def _paid_call(
        self,
        messages: tuple[ChatMessage, ...],
        prompt_tokens: int,
        scopes: tuple[str, ...],
        ledger: _Ledger,
        last_error: OutputError | None,
    ) -> tuple[Completion, int]:
        """Reserve the worst-case cost of one call against the spend caps, call, settle.

        ``prompt_tokens`` is the estimate of ``messages`` the budget gate already made.
        The reservation is the worst case: that estimate (an upper bound of the real
        tokenizer's count) plus ``max_output_tokens``. A call that raised is settled by
        :meth:`_failed_call_cost`. Settling charges the actual cost even when it is over the
        reservation (an estimate that fell short); the ledger then carries the overrun as a
        debt that the scope's next reservation must also claim, so the cap is passed by at
        most the overruns of the calls in flight, and the next call is refused.
        """
        worst = self.cost(prompt_tokens, self.budgets.max_output_tokens)
        reservation = None
        if self.spend is not None:
            reservation = await self._reserve(scopes, worst, ledger)
            if reservation.denied is not None:
                raise SpendCapExceeded(
                    f"spend cap for {reservation.denied} reached in this window; no call made",
                    budget=f"spend_cap:{reservation.denied}",
                    limit=reservation.limit or 0.0,
                    used=worst,
                    **self._history(ledger, last_error),
                )
        try:
            completion, retries = await self._call(messages, ledger, last_error)
        except BaseException as exc:
            if self.spend is not None and reservation is not None:
                self.spend.settle(reservation, self._failed_call_cost(exc, worst))
            raise
        if self.spend is not None and reservation is not None:
            self.spend.settle(
                reservation, self.cost(completion.input_tokens, completion.output_tokens)
            )
        return completion, retries

    def _failed_call_cost(self, exc: BaseException, worst: float) -> float:
        """What a call that raised is settled at: never $0 unless nothing was run.

        A refusal is an answer (a :class:`MalformedOutput` from the provider) and carries
        the usage the provider reported and billed. A request the API turned away (a 4xx:
        rejected, too large) was not run. Anything else (a cancellation, a timeout, transient
        errors given up on) may have been billed with no usage reported: it is settled at the
        reservation, the stated upper estimate.
        """
        if isinstance(exc, ProviderRejected):
            return 0.0
        if isinstance(exc, OutputError):
            tokens_in, tokens_out = (
                exc.context.get("input_tokens"),
                exc.context.get("output_tokens"),
            )
            if isinstance(tokens_in, int) and isinstance(tokens_out, int):
                return self.cost(max(tokens_in, 0), max(tokens_out, 0))
        return worst

    async def _reserve(self, scopes: tuple[str, ...], worst: float, ledger: _Ledger) -> Any:
        """Claim spend; a spend-log failure holds the pipeline and retries, never routes.

        Unbounded on purpose (a deployment fault, see :mod:`streams.guard`): the record is
        not at fault, fetching is paused meanwhile, and a drain can still cancel it.
        """
        assert self.spend is not None
        delay = self.budgets.backoff_base_s
        while True:
            try:
                reservation = await self.spend.reserve(scopes, worst)
            except StateStoreError as exc:
                self.guard.state_failed(f"spend log unavailable: {exc}")
                started = self._clock()
                await self._sleep(self._rng.uniform(delay / 2, delay))
                ledger.clock.pause(self._clock() - started)
                delay = min(delay * 2, self.budgets.backoff_max_s)
                continue
            self.guard.state_ok()
            return reservation

    async def _store(self, key: str, extraction: Extraction, text: str) -> None:
        if self.cache is None:
            return
        try:
            await self.cache.put(key, encode_entry(extraction, text, self._cache_signing_key))
        except StateStoreError as exc:
            log.warning("result cache write failed; continuing without it: %s", exc)

    def _accept(
        self, completion: Completion, document: Document
    ) -> tuple[BaseModel, tuple[str, ...], Grounding]:
        if completion.truncated:
            raise TruncatedOutput(
                f"answer cut off (finish_reason={completion.finish_reason})",
                last_output=completion.text,
            )
        repaired = repair(completion.text, self.schema)
        record = validate(self.contract, repaired.value, raw_output=completion.text)
        grounding = ground(record, document.text)
        missing = check_required(grounding, self.contract.grounding_required)
        if missing:
            # A required value that is nowhere in the source is treated like any other
            # field error: re-asked, and invalid if it persists.
            raise ContractViolation(
                f"{len(missing)} required field(s) not found in the source text",
                errors=missing,
                last_output=completion.text,
            )
        return record, repaired.repairs, grounding

    @staticmethod
    def _attempt(
        number: int, completion: Completion, error: OutputError | None, retries: int
    ) -> Attempt:
        if error is None:
            outcome = "valid"
        elif isinstance(error, TruncatedOutput):
            outcome = "truncated"
        elif isinstance(error, MalformedOutput):
            outcome = "malformed"
        else:
            outcome = "contract_violation"
        return Attempt(
            number=number,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            finish_reason=completion.finish_reason,
            model_reported=completion.model_reported,
            latency_ms=completion.latency_s * 1000,
            outcome=outcome,
            errors=error.errors if isinstance(error, ContractViolation) else (),
            transient_retries=retries,
        )

    async def _call(
        self, messages: tuple[ChatMessage, ...], ledger: _Ledger, last_error: OutputError | None
    ) -> tuple[Completion, int]:
        """One attempt: call, retrying transient errors. Appends each request's status.

        Whose fault a transient failure is, the guard decides (see
        :mod:`streams.guard`). Time spent waiting on an open breaker or a held
        pipeline is left out of the record's age.
        """
        request = CompletionRequest(
            messages=messages,
            schema_name=self.schema_name,
            json_schema=self.schema,
            max_output_tokens=self.budgets.max_output_tokens,
            temperature=self.temperature,
        )
        guard, statuses, retries = self.guard, ledger.statuses, 0
        while True:
            ledger.clock.pause(await guard.admit())
            successes_before = guard.successes
            started = time.perf_counter()
            try:
                completion = await self.provider.complete(request)
            except ProviderDeploymentFault as exc:
                statuses.append(str(exc.status or "deployment"))
                if ledger.held_at is not None and guard.successes > ledger.held_at:
                    # Others succeeded since this record's last 401/403/404: not the
                    # deployment after all, but this request. Rejected, never retried.
                    raise ProviderRejected(
                        exc.message, status=exc.status, **self._history(ledger, last_error)
                    ) from exc
                ledger.held_at = guard.successes
                guard.hold(f"provider returned {exc.status}: {exc.message}")
                continue  # admit() waits for the probe; the record's clock is stopped
            except ProviderRequestTooLarge as exc:
                statuses.append(str(exc.status or "too_large"))
                raise ProviderRequestTooLarge(
                    exc.message,
                    status=exc.status,
                    limit=exc.limit,
                    requested=exc.requested,
                    reason="provider_request_too_large",
                    **self._history(ledger, last_error),
                ) from exc
            except ProviderRejected as exc:
                statuses.append(str(exc.status or "rejected"))
                exc.context.update(self._history(ledger, last_error))
                raise
            except ProviderTransient as exc:
                statuses.append(str(exc.status or "transport"))
                suspect = guard.counted(ledger.failure_times) > 0
                if guard.failure(ledger.record, successes_before, suspect=suspect):
                    ledger.failure_times.append(self._clock())
                retries += 1
                if not guard.paused:  # when paused, admit() waits out the cool-off instead
                    await self._sleep(self._backoff(min(retries - 1, 8), exc.retry_after))
                # The verdict waits for the backoff: an outage trips the breaker meanwhile
                # and forgives the failures that were its first signs.
                self._give_up_if_exhausted(ledger, last_error, exc)
                continue
            guard.success(ledger.record)
            statuses.append("200")
            if completion.latency_s <= 0:
                elapsed = time.perf_counter() - started
                completion = Completion(
                    text=completion.text,
                    finish_reason=completion.finish_reason,
                    model_reported=completion.model_reported,
                    input_tokens=completion.input_tokens,
                    output_tokens=completion.output_tokens,
                    latency_s=elapsed,
                )
            return completion, retries

    def _give_up_if_exhausted(
        self, ledger: _Ledger, last_error: OutputError | None, exc: ProviderTransient
    ) -> None:
        """DLQ a record whose own transient failures or age ran out (not an outage's)."""
        if self.guard.paused:
            return  # an outage or a hold began: no verdict now, the record waits unaged
        failures = self.guard.counted(ledger.failure_times)
        over_count = failures > self.budgets.transient_retries
        age = ledger.clock.age()
        over_age = age >= self.budgets.max_record_seconds
        if not (over_count or over_age):
            return
        why = (
            f"{failures} transient failures while other records succeeded"
            if over_count
            else f"still failing after {age:.0f}s (max_record_seconds)"
        )
        raise ProviderTransientExhausted(
            f"provider kept failing for this record: {why}; last: {exc.message}",
            status=exc.status,
            reason="provider_transient_exhausted",
            age_s=round(age, 3),
            **self._history(ledger, last_error),
        ) from exc

    def _backoff(self, retry: int, retry_after: float | None) -> float:
        ceiling = min(self.budgets.backoff_max_s, self.budgets.backoff_base_s * (2**retry))
        delay = self._rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.budgets.backoff_max_s))
        return delay


def _kind(error: OutputError) -> str:
    """``truncated`` or ``malformed``: the outcome names an attempt log uses too."""
    return "truncated" if isinstance(error, TruncatedOutput) else "malformed"


def answer_json(record: BaseModel) -> dict[str, Any]:
    """The record as plain JSON data (for envelopes and logs)."""
    data: dict[str, Any] = json.loads(record.model_dump_json())
    return data
