"""HTTP plumbing shared by the provider modules: auth, one POST, error mapping.

Both wire formats fail the same way over HTTP, so the translation into
:mod:`streams.errors` is decided here, once:

    outcome                                  error
    ---------------------------------------  ------------------------------------------
    408, 409, 429, any 5xx (529 included)    ProviderTransient, retry_after from headers
    any other non-2xx (400/401/403/404/422,  ProviderRejected: a retry cannot fix it
      413, an unfollowed 3xx redirect, ...)
    2xx whose body is not a JSON object      ProviderTransient: a proxy or server glitch
    an httpx exception                       per :data:`HTTPX_ERRORS`, along its MRO

The API key lives in a :class:`SecretStr` until :class:`SecretHeaderAuth` puts
it on the outgoing request, so it is never in a client's headers, a repr or a
log line; :func:`redact` scrubs it from anything a server echoes back.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from streams.errors import ConfigError, ProviderError, ProviderRejected, ProviderTransient

__all__ = [
    "HTTPX_ERRORS",
    "TRANSIENT_STATUSES",
    "SecretHeaderAuth",
    "error_for_response",
    "error_for_transport",
    "make_client",
    "parse_retry_after",
    "post_json",
    "redact",
    "wire_name",
]

#: Statuses worth retrying besides every 5xx (529 is Anthropic's "overloaded").
TRANSIENT_STATUSES = frozenset({408, 409, 429})

#: How much of a provider's error message goes into ours.
_DETAIL_LIMIT = 300

#: Every httpx error a request can raise, mapped to the project's tree. Looked
#: up along the exception's MRO. Transport failures are transient; the three
#: "rejected" ones are configuration mistakes a retry repeats forever (a
#: base_url without http(s)://, a header value httpx refuses to send, a
#: redirect loop). ``HTTPStatusError`` is absent on purpose: statuses are
#: mapped by :func:`error_for_response`, ``raise_for_status`` is never called.
HTTPX_ERRORS: Mapping[type[httpx.HTTPError], type[ProviderError]] = {
    httpx.RequestError: ProviderTransient,
    httpx.TransportError: ProviderTransient,
    httpx.TimeoutException: ProviderTransient,
    httpx.ConnectTimeout: ProviderTransient,
    httpx.ReadTimeout: ProviderTransient,
    httpx.WriteTimeout: ProviderTransient,
    httpx.PoolTimeout: ProviderTransient,
    httpx.NetworkError: ProviderTransient,
    httpx.ConnectError: ProviderTransient,
    httpx.ReadError: ProviderTransient,
    httpx.WriteError: ProviderTransient,
    httpx.CloseError: ProviderTransient,
    httpx.ProtocolError: ProviderTransient,
    httpx.RemoteProtocolError: ProviderTransient,
    httpx.ProxyError: ProviderTransient,
    httpx.DecodingError: ProviderTransient,
    httpx.LocalProtocolError: ProviderRejected,
    httpx.UnsupportedProtocol: ProviderRejected,
    httpx.TooManyRedirects: ProviderRejected,
}


class SecretHeaderAuth(httpx.Auth):
    """Sets ``header: prefix + secret`` on each request, at the last moment."""

    def __init__(self, header: str, secret: SecretStr, *, prefix: str = "") -> None:
        self._header = header
        self._secret = secret
        self._prefix = prefix

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._header] = self._prefix + self._secret.get_secret_value()
        yield request

    def __repr__(self) -> str:
        return f"SecretHeaderAuth(header={self._header!r})"


def make_client(
    *,
    provider: str,
    base_url: str,
    timeout_s: float,
    max_connections: int,
    headers: Mapping[str, str],
    auth: httpx.Auth | None,
    transport: httpx.AsyncBaseTransport | None,
) -> httpx.AsyncClient:
    """The pooled client a provider keeps for its lifetime; settings are checked here."""
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"{provider} base_url {base_url!r} must start with http:// or https://, "
            "e.g. https://api.openai.com/v1"
        )
    if not timeout_s > 0:
        raise ConfigError(f"{provider} timeout_s must be positive, got {timeout_s!r}")
    if max_connections < 1:
        raise ConfigError(f"{provider} max_connections must be at least 1, got {max_connections!r}")
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        headers=headers,
        auth=auth,
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        transport=transport,
    )


def redact(text: str, secret: SecretStr | None) -> str:
    """``text`` with every occurrence of the secret replaced by ``***``."""
    value = secret.get_secret_value() if secret is not None else ""
    return text.replace(value, "***") if value else text


def wire_name(name: str) -> str:
    """``name`` as both APIs accept it for a schema or tool: ``[a-zA-Z0-9_-]{1,64}``."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "record"


def parse_retry_after(
    headers: httpx.Headers, *, now: Callable[[], datetime] | None = None
) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or HTTP-date).

    ``None`` when absent or unparseable; a date in the past gives ``0.0``.
    """
    millis = _non_negative(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    raw = headers.get("retry-after")
    if raw is None:
        return None
    seconds = _non_negative(raw)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(raw.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now() if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def error_for_response(
    response: httpx.Response, *, provider: str, secret: SecretStr | None
) -> ProviderError:
    """The error a non-2xx ``response`` stands for (see the module table)."""
    status = response.status_code
    reason = f" {response.reason_phrase}" if response.reason_phrase else ""
    message = redact(f"{provider} returned HTTP {status}{reason}: {_detail(response)}", secret)
    if status in TRANSIENT_STATUSES or status >= 500:
        return ProviderTransient(
            message,
            status=status,
            retry_after=parse_retry_after(response.headers),
            provider=provider,
        )
    return ProviderRejected(message, status=status, provider=provider)


def error_for_transport(
    exc: httpx.HTTPError, *, provider: str, secret: SecretStr | None
) -> ProviderError:
    """The error an httpx exception stands for, via :data:`HTTPX_ERRORS`."""
    cls: type[ProviderError] = ProviderTransient
    for klass in type(exc).__mro__:
        if issubclass(klass, httpx.HTTPError) and klass in HTTPX_ERRORS:
            cls = HTTPX_ERRORS[klass]
            break
    reason = str(exc) or "no detail"
    message = redact(f"{provider} request failed: {type(exc).__name__}: {reason}", secret)
    return cls(message, provider=provider)


async def post_json(
    client: httpx.AsyncClient,
    path: str,
    body: Mapping[str, Any],
    *,
    provider: str,
    secret: SecretStr | None,
) -> tuple[dict[str, Any], float]:
    """POST ``body`` and return the decoded JSON object and the latency in seconds.

    Every failure leaves as a :class:`~streams.errors.ProviderError`.
    """
    started = time.perf_counter()
    try:
        response = await client.post(path, json=body)
    except httpx.HTTPError as exc:
        raise error_for_transport(exc, provider=provider, secret=secret) from exc
    latency = time.perf_counter() - started
    if not response.is_success:
        raise error_for_response(response, provider=provider, secret=secret)
    try:
        payload = response.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProviderTransient(
            f"{provider} returned HTTP {response.status_code} with a body that is not JSON",
            status=response.status_code,
            provider=provider,
        ) from exc
    if not isinstance(payload, dict):
        raise ProviderTransient(
            f"{provider} returned HTTP {response.status_code} with JSON that is not an object",
            status=response.status_code,
            provider=provider,
        )
    return payload, latency


def _detail(response: httpx.Response) -> str:
    """The provider's own error message, whitespace-collapsed and truncated."""
    text = response.text
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            text = error["message"]  # OpenAI and Anthropic
        elif isinstance(error, str):
            text = error  # Ollama, llama.cpp
        elif isinstance(body.get("message"), str):
            text = body["message"]  # vLLM
    text = " ".join(text.split()) or "(empty body)"
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"


def _non_negative(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
