"""The routing table covers the whole exception tree."""

from __future__ import annotations

import inspect

import pytest

from streams import errors
from streams.errors import ROUTES, Route, route_for


def _all_error_classes() -> list[type[errors.StreamsError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.StreamsError)
    ]


def test_every_error_is_routed_or_internal() -> None:
    """Every StreamsError subclass is either in ROUTES or explicitly internal."""
    for cls in _all_error_classes():
        assert cls in ROUTES or cls in errors.INTERNAL, f"{cls.__name__} has no route"


def test_internal_errors_never_reach_a_topic_silently() -> None:
    """Internal errors that escape still route to the DLQ, never vanish."""
    assert route_for(errors.ContractViolation("x", errors=())) is Route.DLQ
    assert route_for(RuntimeError("bug")) is Route.DLQ


@pytest.mark.parametrize(
    ("error", "route"),
    [
        (errors.UndecodableInput("x"), Route.DLQ),
        (errors.EnvelopeError("x"), Route.DLQ),
        (errors.RecordBudgetExceeded("x", budget="b", limit=1, used=2), Route.OVER_BUDGET),
        (errors.RetryTokensExhausted("x", budget="b", limit=1, used=2), Route.OVER_BUDGET),
        (errors.ProviderRejected("x", status=400), Route.DLQ),
        (errors.ProviderRequestTooLarge("x", status=429), Route.OVER_BUDGET),
        (errors.ProviderTransientExhausted("x", status=500), Route.DLQ),
        (errors.PoisonRecord("x"), Route.DLQ),
        (errors.OutputTooLarge("x"), Route.DLQ),
        (errors.AttemptsExhausted("x", errors=()), Route.INVALID),
        (errors.EncodingError("x"), Route.DLQ),
    ],
)
def test_route_for_specific_errors(error: errors.StreamsError, route: Route) -> None:
    """Each routed error type lands on its documented outcome."""
    assert route_for(error) is route


def test_error_context_is_keyword_attributes() -> None:
    """Errors carry their context as attributes, not only in the message."""
    exc = errors.ProviderTransient("slow down", status=429, retry_after=2.0)
    assert exc.status == 429
    assert exc.retry_after == 2.0
    assert exc.context["retry_after"] == 2.0
