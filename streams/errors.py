"""The one exception tree of the project, and the one table that routes it.

Every stage raises a subclass of :class:`StreamsError`. The worker never
inspects error messages: it looks the error's type up in :data:`ROUTES` and
sends the record to that outcome. ``tests/test_errors.py`` asserts that every
concrete class below has a route, so nothing can be swallowed.

    StreamsError
    ├── ConfigError                      bad settings; raised at start-up, never per record
    ├── InputError                       -> dlq
    │   ├── UndecodableInput             not UTF-8, empty, or a malformed JSON envelope
    │   └── EnvelopeError                a JSON envelope missing/typing its fields wrongly
    ├── BudgetExceeded                   -> over-budget
    │   ├── RecordBudgetExceeded         estimated tokens over the per-record cap (no call made)
    │   ├── RetryTokensExhausted         cumulative tokens across attempts over the cap
    │   └── SpendCapExceeded             the pipeline's or tenant's spend cap for the window
    ├── ProviderError
    │   ├── ProviderRejected             400/401/403/404/422: cannot succeed -> dlq
    │   ├── ProviderTransient            429, 5xx, timeouts, connection errors (retried)
    │   └── ProviderUnavailable          transient errors outlasted the retry budget -> pause
    ├── OutputError                      the model answered, but not usefully (re-asked)
    │   ├── TruncatedOutput              finish_reason=length: never valid
    │   ├── MalformedOutput              no JSON object could be recovered
    │   └── ContractViolation            JSON that fails the contract (field errors attached)
    │       └── AttemptsExhausted        last violation after the final attempt -> invalid
    ├── EncodingError                    the valid record could not be encoded -> dlq
    └── StateStoreError                  Kafka-backed state (cache, spend log) failed; logged

``ProviderUnavailable`` does not route a record anywhere: the worker keeps the
record uncommitted and retries it later, because a provider outage is not the
record's fault and must not fill a dead-letter topic.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class Route(enum.StrEnum):
    """Where a record ends. The four output topics, plus "retry later"."""

    VALID = "valid"
    INVALID = "invalid"
    OVER_BUDGET = "over-budget"
    DLQ = "dlq"
    PAUSE = "pause"


@dataclass(frozen=True)
class FieldError:
    """One field-level validation error, in a shape that survives serialisation."""

    path: str
    type: str
    message: str
    value: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"path": self.path, "type": self.type, "message": self.message, "value": self.value}


class StreamsError(Exception):
    """Root of every error the project raises on purpose."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = dict(context)

    def __str__(self) -> str:
        return self.message


class ConfigError(StreamsError):
    """A setting is wrong. The message says how to fix it, in one line."""


class InputError(StreamsError):
    """The raw input cannot be turned into a document."""


class UndecodableInput(InputError):
    """The bytes are not UTF-8 text, are empty, or are a broken JSON envelope."""


class EnvelopeError(InputError):
    """A JSON envelope whose fields are missing or of the wrong type."""


class BudgetExceeded(StreamsError):
    """A token or spend budget was tripped. ``budget`` names which one."""

    def __init__(self, message: str, *, budget: str, limit: float, used: float, **ctx: Any):
        super().__init__(message, budget=budget, limit=limit, used=used, **ctx)
        self.budget = budget
        self.limit = limit
        self.used = used


class RecordBudgetExceeded(BudgetExceeded):
    """The estimated input tokens exceed the per-record cap; no call was made."""


class RetryTokensExhausted(BudgetExceeded):
    """The tokens spent across attempts reached the record's retry token cap."""


class SpendCapExceeded(BudgetExceeded):
    """The call would take the pipeline's or a tenant's spend past its cap for the window."""


class ProviderError(StreamsError):
    """The model provider failed. ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None, **ctx: Any) -> None:
        super().__init__(message, status=status, **ctx)
        self.status = status


class ProviderRejected(ProviderError):
    """The provider refused the request in a way a retry cannot fix (400/401/403/404/422)."""


class ProviderTransient(ProviderError):
    """A failure worth retrying: 429, 5xx, a timeout or a connection error."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        **ctx: Any,
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after, **ctx)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """Transient failures outlasted the record's retries: pause, don't dead-letter."""


class OutputError(StreamsError):
    """The model answered, but the answer is not a valid record yet."""

    def __init__(self, message: str, *, last_output: str | None = None, **ctx: Any) -> None:
        super().__init__(message, last_output=last_output, **ctx)
        self.last_output = last_output


class TruncatedOutput(OutputError):
    """The answer was cut off (finish_reason=length); a cut-off answer is never valid."""


class MalformedOutput(OutputError):
    """No JSON object could be recovered from the answer, even after repair."""


class ContractViolation(OutputError):
    """The answer parsed but fails the contract. ``errors`` holds the field errors."""

    def __init__(
        self,
        message: str,
        *,
        errors: Sequence[FieldError],
        last_output: str | None = None,
        **ctx: Any,
    ) -> None:
        super().__init__(message, last_output=last_output, **ctx)
        self.errors: tuple[FieldError, ...] = tuple(errors)


class AttemptsExhausted(ContractViolation):
    """The final attempt still failed the contract (or produced no usable output)."""


class EncodingError(StreamsError):
    """A validated record could not be encoded to Avro or registered."""


class StateStoreError(StreamsError):
    """Kafka-backed state failed. The cache treats it as a miss; never routes a record."""


#: The one routing table. Looked up along the MRO, most specific class first.
ROUTES: Mapping[type[StreamsError], Route] = {
    InputError: Route.DLQ,
    UndecodableInput: Route.DLQ,
    EnvelopeError: Route.DLQ,
    BudgetExceeded: Route.OVER_BUDGET,
    RecordBudgetExceeded: Route.OVER_BUDGET,
    RetryTokensExhausted: Route.OVER_BUDGET,
    SpendCapExceeded: Route.OVER_BUDGET,
    ProviderRejected: Route.DLQ,
    ProviderUnavailable: Route.PAUSE,
    AttemptsExhausted: Route.INVALID,
    EncodingError: Route.DLQ,
}

#: Errors that are handled inside the pipeline and must never reach the router.
INTERNAL: frozenset[type[StreamsError]] = frozenset(
    {
        ConfigError,
        StateStoreError,
        ProviderError,
        ProviderTransient,
        OutputError,
        TruncatedOutput,
        MalformedOutput,
        ContractViolation,
        StreamsError,
    }
)


def route_for(error: BaseException) -> Route:
    """Route for ``error``: its most specific entry in :data:`ROUTES`.

    Anything that is not a routed :class:`StreamsError` is a bug in a stage; it
    goes to the dead-letter topic with its type and message rather than crashing
    the worker or being dropped.
    """
    for cls in type(error).__mro__:
        if cls in ROUTES:
            return ROUTES[cls]
    return Route.DLQ
