"""The one exception tree of the project, and the one table that routes it.

Every stage raises a subclass of :class:`StreamsError`. The worker never
inspects error messages: it looks the error's type up in :data:`ROUTES` and
sends the record to that outcome. ``tests/unit/test_errors.py`` asserts that
every concrete class below is either routed or handled inside the pipeline
(:data:`INTERNAL`), so nothing can be swallowed.

    StreamsError
    ├── ConfigError                      bad settings; raised at start-up, never per record
    │   └── KafkaAccessError             the cluster refused this client (checked at start-up)
    │       ├── KafkaAuthenticationFailed  wrong SASL credentials for the mechanism
    │       ├── KafkaTLSFailed           a certificate did not verify (CA, hostname, client cert)
    │       └── KafkaAuthorizationFailed an ACL the pipeline needs is missing
    ├── InputError                       -> dlq
    │   ├── UndecodableInput             not UTF-8, empty, a tombstone, a malformed envelope
    │   ├── EnvelopeError                a JSON envelope missing/typing its fields wrongly
    │   └── PoisonRecord                 a legal but unusable Kafka record (headers too large)
    ├── BudgetExceeded                   -> over-budget
    │   ├── RecordBudgetExceeded         estimated tokens over the per-record cap (no call made)
    │   ├── RetryTokensExhausted         cumulative tokens across attempts over the cap
    │   └── SpendCapExceeded             the pipeline's or tenant's spend cap for the window
    ├── ProviderError
    │   ├── ProviderRejected             400/409/413/422...: a retry cannot fix it -> dlq
    │   │   └── ProviderRequestTooLarge  "request too large" (a 429 or 413) -> over-budget
    │   ├── ProviderDeploymentFault      401/403/404: the deployment's fault -> hold and probe
    │   ├── ProviderTransient            429, 5xx, timeouts, connection errors (retried)
    │   └── ProviderTransientExhausted   one record kept failing while others succeeded -> dlq
    ├── OutputError                      the model answered, but not usefully (re-asked)
    │   ├── TruncatedOutput              finish_reason=length: never valid
    │   ├── MalformedOutput              no JSON object could be recovered
    │   └── ContractViolation            JSON that fails the contract (field errors attached)
    │       └── AttemptsExhausted        last violation after the final attempt -> invalid
    ├── EncodingError                    the valid record could not be encoded -> dlq
    │   └── OutputTooLarge               the record is over the output topic's size limit -> dlq
    └── StateStoreError                  Kafka-backed state (cache, spend log) failed -> hold

Two kinds of fault never route a record anywhere, because they are not the
record's fault and must not fill a dead-letter topic:

* a provider *outage* (many records failing at once, :class:`ProviderTransient`):
  the circuit breaker in :mod:`streams.guard` opens, fetching pauses, and no
  record spends its retry budget or ages while it is open;
* a *deployment* fault (a revoked key, a missing model, a missing ACL:
  :class:`ProviderDeploymentFault`, :class:`StateStoreError`): the pipeline is
  held, a probe that spends no budget checks with backoff, and the records
  resume when it clears.

Producer errors are classified in :mod:`streams.kafka.produce`, transport
errors in :mod:`streams.providers._http`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class Route(enum.StrEnum):
    """Where a record ends: one of the four output topics."""

    VALID = "valid"
    INVALID = "invalid"
    OVER_BUDGET = "over-budget"
    DLQ = "dlq"


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


class KafkaAccessError(ConfigError):
    """The cluster refused this client. ``listener`` says where; the message says the fix."""

    def __init__(self, message: str, *, listener: str, **ctx: Any) -> None:
        super().__init__(message, listener=listener, **ctx)
        self.listener = listener


class KafkaAuthenticationFailed(KafkaAccessError):
    """SASL authentication failed: the credentials do not match the ``mechanism``."""


class KafkaTLSFailed(KafkaAccessError):
    """The TLS handshake failed: ``certificate`` names the one that did not verify."""


class KafkaAuthorizationFailed(KafkaAccessError):
    """An ACL is missing: ``resource``, ``name`` and ``operation`` name it."""


class InputError(StreamsError):
    """The raw input cannot be turned into a document."""


class UndecodableInput(InputError):
    """The bytes are not UTF-8 text, are empty, or are a broken JSON envelope."""


class EnvelopeError(InputError):
    """A JSON envelope whose fields are missing or of the wrong type."""


class PoisonRecord(InputError):
    """A record Kafka accepts but the pipeline cannot carry (e.g. headers over the bound)."""


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
    """The provider refused the request in a way a retry cannot fix (400/413/422, ...)."""


class ProviderRequestTooLarge(ProviderRejected):
    """The request itself is over the account's limits (a 429 or 413 saying so).

    Retrying the same request cannot succeed, so it is never retried; it is a
    budget outcome, not a dead letter. ``limit``/``requested`` are the token
    figures the provider quoted, when it quoted any.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        limit: int | None = None,
        requested: int | None = None,
        **ctx: Any,
    ) -> None:
        super().__init__(message, status=status, limit=limit, requested=requested, **ctx)
        self.limit = limit
        self.requested = requested


class ProviderDeploymentFault(ProviderError):
    """401/403/404: a revoked key, a missing model or permission. Hold, never dead-letter."""


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


class ProviderTransientExhausted(ProviderError):
    """This record kept failing transiently while other records succeeded: its own fault."""


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


class OutputTooLarge(EncodingError):
    """The outcome is larger than the output topic accepts, even with its input truncated."""


class StateStoreError(StreamsError):
    """Kafka-backed state failed. A cache read is a miss; a spend claim holds the pipeline."""


#: The one routing table. Looked up along the MRO, most specific class first.
ROUTES: Mapping[type[StreamsError], Route] = {
    InputError: Route.DLQ,
    UndecodableInput: Route.DLQ,
    EnvelopeError: Route.DLQ,
    PoisonRecord: Route.DLQ,
    BudgetExceeded: Route.OVER_BUDGET,
    RecordBudgetExceeded: Route.OVER_BUDGET,
    RetryTokensExhausted: Route.OVER_BUDGET,
    SpendCapExceeded: Route.OVER_BUDGET,
    ProviderRejected: Route.DLQ,
    ProviderRequestTooLarge: Route.OVER_BUDGET,
    ProviderTransientExhausted: Route.DLQ,
    AttemptsExhausted: Route.INVALID,
    EncodingError: Route.DLQ,
    OutputTooLarge: Route.DLQ,
}

#: Errors that are handled inside the pipeline and must never reach the router:
#: transient and deployment faults wait in :mod:`streams.guard`, output errors are
#: re-asked, config errors stop start-up.
INTERNAL: frozenset[type[StreamsError]] = frozenset(
    {
        ConfigError,
        KafkaAccessError,
        KafkaAuthenticationFailed,
        KafkaTLSFailed,
        KafkaAuthorizationFailed,
        StateStoreError,
        ProviderError,
        ProviderTransient,
        ProviderDeploymentFault,
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
