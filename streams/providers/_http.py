"""HTTP plumbing shared by the provider modules: auth, one POST, error mapping.

Both wire formats fail the same way over HTTP, so the translation into
:mod:`streams.errors` is decided here, once:

    outcome                                  error
    ---------------------------------------  ------------------------------------------
    413, or a 429 whose message says the     ProviderRequestTooLarge: the request itself
      request itself is too large              is over the account's limits; never retried
    408, 409, 429, any 5xx (529 included)    ProviderTransient, retry_after from headers
    401, 403, 404                            ProviderDeploymentFault: a revoked key, a
                                               missing model or permission; hold and probe
    any other non-2xx (400/422, an           ProviderRejected: a retry cannot fix it
      unfollowed 3xx redirect, ...)
    2xx whose body is not a JSON object      ProviderTransient: a proxy or server glitch
    a transport exception                    per :data:`AIOHTTP_ERRORS` for what aiohttp
                                               raised, else :data:`HTTPX_ERRORS`, along
                                               the exception's MRO
    no complete response within the sum of   ProviderTransient: a stall no per-phase
      the pool/connect/write/read timeouts     timeout caught (aiohttp has no write timeout)
    a body orjson cannot serialise           ProviderRejected, before anything is sent

The two tables are the one place transport failures are classified, and
:func:`error_for_transport` the one function that reads them. The network is
aiohttp's, behind httpx's API (``httpx-aiohttp``'s transport: with 64 requests
in flight httpcore's pool cost ~19 ms of CPU per request, this ~1.2 ms). That
transport re-raises most aiohttp errors as an httpx class chosen loosely (a
``ServerDisconnectedError`` arrives as ``httpx.ConnectTimeout``) and lets the
rest escape as they are, so the aiohttp original decides whenever there is one
and is what the message names.

The API key lives in a :class:`SecretStr` until :class:`SecretHeaderAuth` puts
it on the outgoing request, so it is never in a client's headers, a repr or a
log line; :func:`redact` scrubs it from anything a server echoes back.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx
import orjson
from aiohttp import client_exceptions
from aiohttp.payload import TOO_LARGE_BYTES_BODY
from httpx_aiohttp import HttpxAiohttpClient
from pydantic import SecretStr

from streams.errors import (
    ConfigError,
    ProviderDeploymentFault,
    ProviderError,
    ProviderRejected,
    ProviderRequestTooLarge,
    ProviderTransient,
)

__all__ = [
    "AIOHTTP_ERRORS",
    "DEPLOYMENT_STATUSES",
    "HTTPX_ERRORS",
    "PROBE_TIMEOUT_S",
    "TRANSIENT_STATUSES",
    "SecretHeaderAuth",
    "endpoint",
    "error_for_response",
    "error_for_transport",
    "get_json",
    "is_missing_model",
    "listed_summary",
    "make_client",
    "model_ids",
    "parse_retry_after",
    "post_json",
    "redact",
    "wire_name",
]

#: Statuses worth retrying besides every 5xx (529 is Anthropic's "overloaded").
TRANSIENT_STATUSES = frozenset({408, 409, 429})

#: Statuses that mean the deployment is wrong (key, permission, model), not the record.
DEPLOYMENT_STATUSES = frozenset({401, 403, 404})

#: A 429 whose message says this: the request, not the rate, is over the limit. OpenAI:
#: "Request too large for gpt-4o ... on tokens per min (TPM): Limit 30000, Requested
#: 41234. The input or output tokens must be reduced in order to run successfully."
_TOO_LARGE = re.compile(
    r"request too large|too large for|must be reduced|exceeds the maximum|request_too_large",
    re.IGNORECASE,
)
_QUOTED_LIMIT = re.compile(r"Limit\s+(\d+)\D+Requested\s+(\d+)", re.IGNORECASE)

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

#: Every exception the aiohttp transport can let out, mapped to the project's tree
#: and looked up along the MRO. Each ``aiohttp.ClientError`` subclass has its own
#: entry (``tests/providers/test_transport.py`` walks aiohttp's classes to check).
#: Connection, timeout, payload and unparseable-response failures are transient,
#: as their httpx counterparts are; URL and redirect errors are configuration
#: mistakes a retry repeats. Some are never raised the way the providers call
#: aiohttp (redirects are not followed, no ``.json()``, no websockets, no pinned
#: fingerprint) and are mapped anyway so a new call site cannot leak one.
AIOHTTP_ERRORS: Mapping[type[BaseException], type[ProviderError]] = {
    # asyncio.TimeoutError is TimeoutError since 3.11; aiohttp raises it bare only
    # where it does not wrap it as ServerTimeoutError.
    TimeoutError: ProviderTransient,
    aiohttp.ClientError: ProviderTransient,
    aiohttp.ClientConnectionError: ProviderTransient,
    aiohttp.ClientConnectionResetError: ProviderTransient,
    aiohttp.ClientOSError: ProviderTransient,
    aiohttp.ClientConnectorError: ProviderTransient,
    aiohttp.ClientConnectorDNSError: ProviderTransient,
    aiohttp.ClientProxyConnectionError: ProviderTransient,
    client_exceptions.UnixClientConnectorError: ProviderTransient,
    aiohttp.ClientSSLError: ProviderTransient,
    aiohttp.ClientConnectorSSLError: ProviderTransient,
    aiohttp.ClientConnectorCertificateError: ProviderTransient,
    aiohttp.ServerConnectionError: ProviderTransient,
    aiohttp.ServerDisconnectedError: ProviderTransient,
    aiohttp.ServerTimeoutError: ProviderTransient,
    aiohttp.ConnectionTimeoutError: ProviderTransient,
    aiohttp.SocketTimeoutError: ProviderTransient,
    aiohttp.ServerFingerprintMismatch: ProviderTransient,
    aiohttp.ClientPayloadError: ProviderTransient,
    aiohttp.UploadAbortedError: ProviderTransient,
    # A response aiohttp could not parse (bad status line, a header over 8 KiB):
    # httpx-aiohttp lets it escape unwrapped; h11 called this RemoteProtocolError.
    aiohttp.ClientResponseError: ProviderTransient,
    aiohttp.ContentTypeError: ProviderTransient,
    aiohttp.WSServerHandshakeError: ProviderTransient,
    aiohttp.ClientHttpProxyError: ProviderTransient,
    aiohttp.TooManyRedirects: ProviderRejected,
    aiohttp.RedirectClientError: ProviderRejected,
    aiohttp.InvalidURL: ProviderRejected,
    aiohttp.InvalidUrlClientError: ProviderRejected,
    aiohttp.InvalidUrlRedirectClientError: ProviderRejected,
    aiohttp.NonHttpUrlClientError: ProviderRejected,
    aiohttp.NonHttpUrlRedirectClientError: ProviderRejected,
}

#: What ``except`` catches at the boundary: everything the two tables cover.
_AIOHTTP_RAISES = (aiohttp.ClientError, TimeoutError)
_TRANSPORT_RAISES = (httpx.HTTPError, *_AIOHTTP_RAISES)

#: The probe is a liveness check; it should answer well before a record would.
PROBE_TIMEOUT_S = 10.0

#: Sent with every POST body; built once.
_JSON_HEADERS: Mapping[str, str] = {"Content-Type": "application/json"}

#: Bodies over aiohttp's "large bytes body" threshold are sent in pieces of this size.
_PIECE = 256 * 1024

#: What aiohttp refuses in a header value (with a ValueError, per request): check at start-up.
_FORBIDDEN_HEADER_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class SecretHeaderAuth(httpx.Auth):
    """Sets ``header: prefix + secret`` on each request, at the last moment."""

    def __init__(self, header: str, secret: SecretStr, *, prefix: str = "") -> None:
        value = prefix + secret.get_secret_value()
        if _FORBIDDEN_HEADER_CHARS.search(value) or not value.isascii():
            # Said without the key; the usual cause is a key file's trailing newline.
            raise ConfigError(
                f"the API key for the {header} header contains a control or non-ASCII "
                "character (a trailing newline?); strip it from the key"
            )
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
    for name, value in headers.items():
        if _FORBIDDEN_HEADER_CHARS.search(name + value) or not (name + value).isascii():
            raise ConfigError(
                f"{provider} header {name!r} contains a control or non-ASCII character; remove it"
            )
    # HttpxAiohttpClient is httpx.AsyncClient with aiohttp under it, proxy routes from
    # the environment included. The timeout reaches aiohttp per request as its
    # connect (pool wait + connect), sock_connect and sock_read, the limit as the
    # connector's; _send bounds the whole request as well. A ``transport`` passed in
    # (httpx.MockTransport in tests) replaces the network as before.
    return HttpxAiohttpClient(
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
    detail = _detail(response)
    message = redact(f"{provider} returned HTTP {status}{reason}: {detail}", secret)
    if status == 413 or (status == 429 and _TOO_LARGE.search(detail)):
        quoted = _QUOTED_LIMIT.search(detail)
        return ProviderRequestTooLarge(
            message,
            status=status,
            limit=int(quoted.group(1)) if quoted else None,
            requested=int(quoted.group(2)) if quoted else None,
            provider=provider,
        )
    if status in DEPLOYMENT_STATUSES:
        return ProviderDeploymentFault(message, status=status, provider=provider)
    if status in TRANSIENT_STATUSES or status >= 500:
        return ProviderTransient(
            message,
            status=status,
            retry_after=parse_retry_after(response.headers),
            provider=provider,
        )
    return ProviderRejected(message, status=status, provider=provider)


def error_for_transport(
    exc: BaseException, *, provider: str, secret: SecretStr | None
) -> ProviderError:
    """The error a transport exception stands for (see the module docstring).

    ``exc`` is what escaped httpx: an httpx exception, possibly re-raised by
    httpx-aiohttp from an aiohttp one, or an aiohttp exception it let through.
    """
    origin = exc
    if isinstance(exc, httpx.HTTPError) and isinstance(exc.__cause__, _AIOHTTP_RAISES):
        origin = exc.__cause__
    cls: type[ProviderError] = ProviderTransient
    for klass in type(origin).__mro__:
        if issubclass(klass, httpx.HTTPError) and klass in HTTPX_ERRORS:
            cls = HTTPX_ERRORS[klass]
            break
        if klass in AIOHTTP_ERRORS:
            cls = AIOHTTP_ERRORS[klass]
            break
    reason = str(origin) or "no detail"
    message = redact(f"{provider} request failed: {type(origin).__name__}: {reason}", secret)
    return cls(message, provider=provider)


def endpoint(client: httpx.AsyncClient, path: str) -> httpx.URL:
    """``client``'s base URL joined with ``path``; httpx would re-parse a relative one per call."""
    return client.base_url.join(path.lstrip("/"))


async def post_json(
    client: httpx.AsyncClient,
    url: httpx.URL | str,
    body: Mapping[str, Any],
    *,
    provider: str,
    secret: SecretStr | None,
) -> tuple[dict[str, Any], float]:
    """POST ``body`` to ``url``; return the decoded JSON object and the latency in seconds.

    ``body`` is serialised with orjson, so a part a provider prepared once can be
    an ``orjson.Fragment`` of ready-made JSON. Every failure leaves as a
    :class:`~streams.errors.ProviderError`.
    """
    try:
        content = orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        # e.g. a value in ``extra`` JSON cannot carry; sending it again cannot help.
        raise ProviderRejected(
            f"{provider} request body is not JSON-serialisable: {exc}", provider=provider
        ) from exc
    sent: bytes | AsyncIterator[bytes] = content
    headers = _JSON_HEADERS
    if len(content) > TOO_LARGE_BYTES_BODY:
        # aiohttp warns (ResourceWarning) on every bytes body over 1 MiB; in pieces
        # it sends the same bytes, with the Content-Length, and yields to the loop.
        sent = _pieces(content)
        headers = {**_JSON_HEADERS, "Content-Length": str(len(content))}
    started = time.perf_counter()
    response = await _send(
        client,
        "POST",
        url,
        timeout=client.timeout,
        provider=provider,
        secret=secret,
        content=sent,
        headers=headers,
    )
    latency = time.perf_counter() - started
    if not response.is_success:
        raise error_for_response(response, provider=provider, secret=secret)
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
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


async def get_json(
    client: httpx.AsyncClient,
    path: str,
    *,
    timeout_s: float,
    provider: str,
    secret: SecretStr | None,
    params: Mapping[str, str] | None = None,
) -> Any:
    """GET ``path`` within ``timeout_s``; the decoded 2xx body, or ``None`` if it is not JSON.

    For the probes: a non-2xx or a transport failure raises the
    :class:`~streams.errors.ProviderError` the module table names.
    """
    response = await _send(
        client,
        "GET",
        path,
        timeout=httpx.Timeout(timeout_s),
        provider=provider,
        secret=secret,
        params=params,
    )
    if not response.is_success:
        raise error_for_response(response, provider=provider, secret=secret)
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def model_ids(payload: Any) -> frozenset[str] | None:
    """The ids in a ``GET /models`` answer (``{"data": [{"id": ...}, ...]}``), if it has them.

    ``None`` when the answer has another shape (some gateways answer anything),
    so a caller cannot conclude a model is missing from a list it did not get.
    An empty ``data`` list is an answer: no models.
    """
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        return None
    ids = [item.get("id") for item in data if isinstance(item, dict)]
    named = [i for i in ids if isinstance(i, str)]
    return frozenset(named) if len(named) == len(data) else None


def listed_summary(ids: frozenset[str], *, limit: int = 5) -> str:
    """A few of ``ids`` for an error message: ``"a, b, c, ..."``, or ``"nothing"``."""
    shown = sorted(ids)[:limit]
    return ", ".join(shown) + (", ..." if len(ids) > limit else "") if shown else "nothing"


def is_missing_model(error: ProviderError, model: str) -> bool:
    """Whether ``error`` is a 404 about the model rather than, say, a wrong path.

    OpenAI says "The model `x` does not exist", Anthropic "model: x", Ollama
    "model 'x' not found"; a bare 404 page from a wrong ``base_url`` says neither.
    """
    if error.status != 404:
        return False
    return "model" in error.message.lower() or model in error.message


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL | str,
    *,
    timeout: httpx.Timeout,
    provider: str,
    secret: SecretStr | None,
    **kwargs: Any,
) -> httpx.Response:
    """One request with every transport failure translated, bounded per phase and as a whole.

    aiohttp times the pool wait, the connect and each read, but not the write:
    its read timer starts once the body is sent, so a server that stops reading
    would stall a large body forever (httpcore had a write timeout). So the whole
    request is also bounded by pool + connect + write + read, the most httpx's
    per-phase timeouts let a request take when it stalls in one phase at a time.
    """
    deadline = _deadline_s(timeout)
    guard = asyncio.timeout(deadline)
    try:
        async with guard:
            return await client.request(method, url, timeout=timeout, **kwargs)
    except TimeoutError as exc:
        if not guard.expired():
            raise error_for_transport(exc, provider=provider, secret=secret) from exc
        raise ProviderTransient(
            f"{provider} request stalled: no complete response within {deadline:g}s "
            "(the pool, connect, write and read timeouts together; e.g. a server that "
            "stopped reading the request)",
            provider=provider,
        ) from exc
    except _TRANSPORT_RAISES as exc:
        raise error_for_transport(exc, provider=provider, secret=secret) from exc


async def _pieces(content: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(content), _PIECE):
        yield content[start : start + _PIECE]


def _deadline_s(timeout: httpx.Timeout) -> float | None:
    phases = (timeout.pool, timeout.connect, timeout.write, timeout.read)
    return None if None in phases else sum(p for p in phases if p is not None)


def _detail(response: httpx.Response) -> str:
    """The provider's own error message, whitespace-collapsed and truncated."""
    text = response.text
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
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
