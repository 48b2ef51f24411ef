"""Error mapping and Retry-After parsing shared by every provider (``_http``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from streams.errors import (
    ConfigError,
    ProviderDeploymentFault,
    ProviderError,
    ProviderRejected,
    ProviderRequestTooLarge,
    ProviderTransient,
)
from streams.providers._http import (
    HTTPX_ERRORS,
    error_for_response,
    error_for_transport,
    make_client,
    parse_retry_after,
    redact,
    wire_name,
)
from streams.providers.openai_compat import HTTPX_ERRORS as OPENAI_HTTPX_ERRORS

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def all_subclasses(cls: type[Any]) -> set[type[Any]]:
    found: set[type[Any]] = set()
    sub: type[Any]
    for sub in cls.__subclasses__():
        found |= {sub, *all_subclasses(sub)}
    return found


def test_every_httpx_request_error_is_mapped_explicitly() -> None:
    """Each httpx RequestError class (TransportError and below) has its own table entry."""
    upstream = {c for c in all_subclasses(httpx.RequestError) if c.__module__.startswith("httpx")}
    assert httpx.ConnectError in upstream
    assert upstream <= set(HTTPX_ERRORS)


def test_openai_module_exposes_the_shared_table() -> None:
    """``openai_compat.HTTPX_ERRORS`` is the one shared table, not a copy."""
    assert OPENAI_HTTPX_ERRORS is HTTPX_ERRORS


def class_name(cls: type[Any]) -> str:
    return cls.__name__


@pytest.mark.parametrize("exc_type", list(HTTPX_ERRORS), ids=class_name)
def test_transport_errors_become_their_mapped_type(exc_type: type[httpx.HTTPError]) -> None:
    """An httpx exception is translated into exactly the class the table names."""
    exc = exc_type("boom")
    error = error_for_transport(exc, provider="openai", secret=None)
    assert type(error) is HTTPX_ERRORS[exc_type]
    assert exc_type.__name__ in str(error)


def test_timeouts_and_connection_errors_are_transient() -> None:
    """The failures a retry can fix map to ProviderTransient; config mistakes to Rejected."""
    for exc_type in (
        httpx.ReadTimeout,
        httpx.ConnectTimeout,
        httpx.PoolTimeout,
        httpx.ConnectError,
    ):
        assert HTTPX_ERRORS[exc_type] is ProviderTransient
    assert HTTPX_ERRORS[httpx.RemoteProtocolError] is ProviderTransient
    assert HTTPX_ERRORS[httpx.ReadError] is ProviderTransient
    assert HTTPX_ERRORS[httpx.UnsupportedProtocol] is ProviderRejected


def test_unknown_httpx_subclass_falls_back_along_the_mro() -> None:
    """A future httpx subclass is mapped through its nearest mapped base class."""

    class NewTimeout(httpx.ReadTimeout):
        pass

    error = error_for_transport(NewTimeout("slow"), provider="openai", secret=None)
    assert isinstance(error, ProviderTransient)


@pytest.mark.parametrize("status", [400, 422, 301])
def test_client_errors_are_rejected(status: int) -> None:
    """Statuses a retry cannot fix are ProviderRejected carrying the status."""
    error = error_for_response(httpx.Response(status), provider="openai", secret=None)
    assert type(error) is ProviderRejected
    assert error.status == status
    assert f"HTTP {status}" in str(error)


@pytest.mark.parametrize("status", [401, 403, 404])
def test_deployment_statuses_are_deployment_faults(status: int) -> None:
    """401/403/404 blame the deployment (key, permission, model), not the record."""
    error = error_for_response(httpx.Response(status), provider="openai", secret=None)
    assert type(error) is ProviderDeploymentFault
    assert error.status == status
    assert f"HTTP {status}" in str(error)


def test_413_is_request_too_large() -> None:
    """A 413 is the request's size: ProviderRequestTooLarge, never retried."""
    error = error_for_response(httpx.Response(413), provider="openai", secret=None)
    assert type(error) is ProviderRequestTooLarge
    assert error.status == 413


def test_429_saying_request_too_large_quotes_the_limit() -> None:
    """OpenAI's "Request too large" 429 is a size fault carrying the quoted figures."""
    message = (
        "Request too large for gpt-4o on tokens per min (TPM): Limit 30000, Requested 41234. "
        "The input or output tokens must be reduced in order to run successfully."
    )
    response = httpx.Response(429, json={"error": {"message": message}})
    error = error_for_response(response, provider="openai", secret=None)
    assert type(error) is ProviderRequestTooLarge
    assert (error.limit, error.requested) == (30000, 41234)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses_are_transient(status: int) -> None:
    """408, 409, 429 and every 5xx are ProviderTransient carrying the status."""
    error = error_for_response(httpx.Response(status), provider="openai", secret=None)
    assert type(error) is ProviderTransient
    assert error.status == status


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"error": {"message": "Invalid schema for response_format"}}, "Invalid schema"),
        ({"type": "error", "error": {"type": "x", "message": "bad tool"}}, "bad tool"),
        ({"error": "model 'x' not found"}, "model 'x' not found"),
        ({"object": "error", "message": "vLLM says no"}, "vLLM says no"),
    ],
)
def test_provider_error_message_is_quoted(body: dict[str, object], expected: str) -> None:
    """The provider's own error message appears in ours, whichever server dialect sent it."""
    error = error_for_response(httpx.Response(400, json=body), provider="openai", secret=None)
    assert expected in str(error)


def test_long_error_bodies_are_truncated() -> None:
    """A huge HTML error page is cut to a few hundred characters."""
    error = error_for_response(
        httpx.Response(502, text="<html>" + "x" * 10_000), provider="openai", secret=None
    )
    assert len(str(error)) < 400
    assert str(error).endswith("…")


def test_retry_after_seconds() -> None:
    """``Retry-After: 7`` means seven seconds."""
    assert parse_retry_after(httpx.Headers({"Retry-After": "7"})) == 7.0


def test_retry_after_http_date() -> None:
    """An HTTP-date Retry-After is the distance from now."""
    when = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": when}), now=lambda: NOW) == 90.0


def test_retry_after_date_in_the_past_is_zero() -> None:
    """A date already passed means retry now, not a negative wait."""
    when = format_datetime(NOW - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": when}), now=lambda: NOW) == 0.0


def test_retry_after_ms_wins() -> None:
    """OpenAI's ``retry-after-ms`` is preferred for its precision."""
    headers = httpx.Headers({"retry-after-ms": "1500", "Retry-After": "2"})
    assert parse_retry_after(headers) == 1.5


@pytest.mark.parametrize("raw", ["soon", "-3", "nan", ""])
def test_unparseable_retry_after_is_none(raw: str) -> None:
    """Garbage or negative Retry-After values are ignored rather than trusted."""
    assert parse_retry_after(httpx.Headers({"Retry-After": raw})) is None


def test_missing_retry_after_is_none() -> None:
    """No header, no hint."""
    assert parse_retry_after(httpx.Headers()) is None


def test_transient_status_carries_retry_after() -> None:
    """A 429's Retry-After lands on the ProviderTransient."""
    error = error_for_response(
        httpx.Response(429, headers={"Retry-After": "12"}), provider="openai", secret=None
    )
    assert isinstance(error, ProviderTransient)
    assert error.retry_after == 12.0


def test_redact_scrubs_the_secret() -> None:
    """Every occurrence of the key is replaced, and no key means no change."""
    secret = SecretStr("sk-abc")
    assert redact("key sk-abc and sk-abc", secret) == "key *** and ***"
    assert redact("nothing", None) == "nothing"
    assert redact("nothing", SecretStr("")) == "nothing"


def test_error_messages_are_redacted() -> None:
    """A server echoing the key back cannot leak it through our error message."""
    secret = SecretStr("sk-echoed-key")
    response = httpx.Response(401, json={"error": {"message": "Incorrect API key sk-echoed-key"}})
    error = error_for_response(response, provider="openai", secret=secret)
    assert "sk-echoed-key" not in str(error)
    transport = error_for_transport(
        httpx.ConnectError("refused for sk-echoed-key"), provider="openai", secret=secret
    )
    assert "sk-echoed-key" not in str(transport)


def test_wire_name_is_api_safe() -> None:
    """Schema/tool names are limited to ``[a-zA-Z0-9_-]{1,64}`` as both APIs demand."""
    assert wire_name("invoice.v1 (EU)") == "invoice_v1__EU_"
    assert len(wire_name("x" * 100)) == 64
    assert wire_name("") == "record"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_url": "localhost:8000/v1"}, "must start with http"),
        ({"timeout_s": 0.0}, "timeout_s must be positive"),
        ({"max_connections": 0}, "max_connections must be at least 1"),
    ],
)
def test_bad_client_settings_fail_at_construction(kwargs: dict[str, object], match: str) -> None:
    """Settings are checked when the provider is built, with a fix in the message."""
    settings: dict[str, object] = {
        "provider": "openai",
        "base_url": "https://x.example/v1",
        "timeout_s": 1.0,
        "max_connections": 1,
        "headers": {},
        "auth": None,
        "transport": None,
    }
    settings.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        make_client(**settings)  # type: ignore[arg-type]


def test_every_mapped_type_is_a_provider_error() -> None:
    """The table only produces errors from the project's provider branch."""
    assert all(issubclass(v, ProviderError) for v in HTTPX_ERRORS.values())
