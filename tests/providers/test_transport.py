"""The aiohttp transport under httpx: its error table, and real HTTP on 127.0.0.1.

Nothing here mocks the network: each test starts a server on a real socket
(``_servers.LocalServer``) and points a provider at it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import warnings
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
from httpx_aiohttp import transport as httpx_aiohttp_transport
from pydantic import SecretStr

from streams.errors import (
    ConfigError,
    ProviderDeploymentFault,
    ProviderRejected,
    ProviderTransient,
)
from streams.providers import AnthropicProvider, OpenAICompatProvider
from streams.providers._http import AIOHTTP_ERRORS, HTTPX_ERRORS, error_for_transport
from streams.providers.base import ChatMessage, CompletionRequest
from streams.providers.strict_schema import to_strict_schema, to_tool_input_schema

from ._servers import (
    LocalServer,
    Received,
    close_before_answering,
    close_mid_body,
    garbage_status_line,
    hang,
    json_reply,
    raw_reply,
    refused_url,
)
from ._support import CANARY_KEY, anthropic_answer, make_request, openai_answer
from .conftest import Network
from .test_http import all_subclasses, class_name

# -- the table --------------------------------------------------------------------------


def aiohttp_client_errors() -> list[type[BaseException]]:
    """Every exception class aiohttp's client raises: ``ClientError`` and all below it."""
    found: set[type[BaseException]] = {aiohttp.ClientError, *all_subclasses(aiohttp.ClientError)}
    return sorted((c for c in found if c.__module__.startswith("aiohttp")), key=class_name)


def test_aiohttp_walk_finds_the_classes_that_matter() -> None:
    """The walk sees the classes the real-HTTP tests below provoke (it is not empty)."""
    found = set(aiohttp_client_errors())
    assert {
        aiohttp.ServerDisconnectedError,
        aiohttp.SocketTimeoutError,
        aiohttp.ClientConnectorError,
        aiohttp.ClientPayloadError,
        aiohttp.ClientResponseError,
        aiohttp.InvalidURL,
        aiohttp.TooManyRedirects,
    } <= found


@pytest.mark.parametrize("exc_type", aiohttp_client_errors(), ids=class_name)
def test_every_aiohttp_error_is_mapped(exc_type: type[BaseException]) -> None:
    """Each aiohttp client exception has its own entry: transient or rejected, nothing else."""
    assert exc_type in AIOHTTP_ERRORS
    assert AIOHTTP_ERRORS[exc_type] in {ProviderTransient, ProviderRejected}


def test_bare_timeouts_are_mapped() -> None:
    """``asyncio.TimeoutError`` (builtin ``TimeoutError``), which aiohttp can raise bare."""
    assert asyncio.TimeoutError is TimeoutError
    assert AIOHTTP_ERRORS[TimeoutError] is ProviderTransient


def test_aiohttp_table_has_nothing_else() -> None:
    """Every key is an aiohttp client error or the bare timeout; no dead entries."""
    assert set(AIOHTTP_ERRORS) == {*aiohttp_client_errors(), TimeoutError}


@pytest.mark.parametrize(
    ("source", "target"),
    list(httpx_aiohttp_transport.AIOHTTP_EXC_MAP.items()),
    ids=lambda cls: cls.__name__,
)
def test_httpx_aiohttp_conversions_agree_with_the_table(
    source: type[BaseException], target: type[httpx.HTTPError]
) -> None:
    """Where httpx-aiohttp turns an aiohttp error into an httpx one, both tables agree."""
    assert target in HTTPX_ERRORS
    assert HTTPX_ERRORS[target] is AIOHTTP_ERRORS[source]


def test_a_rewrapped_aiohttp_error_is_named_by_its_original() -> None:
    """httpx-aiohttp raises ServerDisconnectedError as ConnectTimeout; ours says which."""
    try:
        try:
            raise aiohttp.ServerDisconnectedError()
        except aiohttp.ServerDisconnectedError as inner:
            raise httpx.ConnectTimeout(str(inner)) from inner
    except httpx.ConnectTimeout as outer:
        error = error_for_transport(outer, provider="openai", secret=None)
    assert type(error) is ProviderTransient
    assert "ServerDisconnectedError" in str(error)
    assert "ConnectTimeout" not in str(error)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (aiohttp.ServerDisconnectedError(), ProviderTransient),
        (aiohttp.SocketTimeoutError("Timeout on reading data from socket"), ProviderTransient),
        (aiohttp.ClientPayloadError("Response payload is not completed"), ProviderTransient),
        (aiohttp.UploadAbortedError("not sent"), ProviderTransient),
        (aiohttp.InvalidURL("http://"), ProviderRejected),
        (TimeoutError(), ProviderTransient),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_bare_aiohttp_errors_are_translated(exc: BaseException, expected: type[Any]) -> None:
    """An aiohttp error that escapes unwrapped maps by the table and names its class."""
    error = error_for_transport(exc, provider="anthropic", secret=None)
    assert type(error) is expected
    assert type(exc).__name__ in str(error)


# -- real HTTP: failures ----------------------------------------------------------------


async def test_a_hang_past_the_timeout_is_transient(network: Network) -> None:
    """A server that never answers raises ProviderTransient within about timeout_s."""
    server = await network.serve(hang)
    provider = network.openai(f"{server.url}/v1", timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(ProviderTransient, match="Timeout") as info:
        await provider.complete(make_request())
    assert time.monotonic() - started < 3.0
    assert info.value.status is None
    assert len(server.requests) == 1


async def test_anthropic_hang_past_the_timeout_is_transient(network: Network) -> None:
    """The same timeout holds for the Anthropic wire format."""
    server = await network.serve(hang)
    provider = network.anthropic(f"{server.url}/v1", timeout_s=0.3)
    with pytest.raises(ProviderTransient, match="Timeout"):
        await provider.complete(make_request())


async def test_a_server_that_stops_reading_the_body_is_transient(network: Network) -> None:
    """aiohttp has no write timeout; a body stalled in the socket still times out in bounds."""
    server = await network.serve(hang, reads=False)
    provider = network.openai(f"{server.url}/v1", timeout_s=0.2)
    big = make_request(extra={"pad": "x" * 32_000_000})  # more than the socket buffers hold
    started = time.monotonic()
    with pytest.raises(ProviderTransient, match="stalled") as info:
        await provider.complete(big)
    assert time.monotonic() - started < 5.0
    assert isinstance(info.value.__cause__, TimeoutError)


async def test_a_timeout_is_not_mistaken_for_a_stall(network: Network) -> None:
    """A read timeout is reported as aiohttp's, well inside the whole-request bound."""
    server = await network.serve(hang)
    provider = network.anthropic(f"{server.url}/v1", timeout_s=0.2)
    with pytest.raises(ProviderTransient, match="SocketTimeoutError"):
        await provider.complete(make_request())


async def test_connection_closed_mid_body_is_transient(network: Network) -> None:
    """A response cut off halfway through its body raises ProviderTransient."""
    server = await network.serve(close_mid_body)
    provider = network.openai(f"{server.url}/v1")
    with pytest.raises(ProviderTransient, match="ClientPayloadError"):
        await provider.complete(make_request())


async def test_connection_closed_before_answering_is_transient(network: Network) -> None:
    """A server that drops the connection without a response raises ProviderTransient."""
    server = await network.serve(close_before_answering)
    provider = network.openai(f"{server.url}/v1")
    with pytest.raises(ProviderTransient, match="ServerDisconnectedError"):
        await provider.complete(make_request())
    assert len(server.requests) == 1  # a POST is never silently sent twice


async def test_connection_refused_is_transient(network: Network) -> None:
    """Nothing listening on the port raises ProviderTransient naming the connect failure."""
    provider = network.openai(f"{refused_url()}/v1")
    with pytest.raises(ProviderTransient, match="ClientConnectorError") as info:
        await provider.complete(make_request())
    assert info.value.status is None


async def test_an_unparseable_response_is_transient(network: Network) -> None:
    """Bytes that are not HTTP (aiohttp's unwrapped ClientResponseError) are transient."""
    server = await network.serve(garbage_status_line)
    provider = network.openai(f"{server.url}/v1")
    with pytest.raises(ProviderTransient, match="ClientResponseError") as info:
        await provider.complete(make_request())
    assert isinstance(info.value.__cause__, aiohttp.ClientResponseError)


async def test_html_502_is_transient_with_its_status(network: Network) -> None:
    """A proxy's HTML 502 page raises ProviderTransient(status=502), the page truncated."""
    page = b"<html><body><h1>502 Bad Gateway</h1>" + b"x" * 5000 + b"</body></html>"
    server = await network.serve(raw_reply(502, page, {"Content-Type": "text/html"}))
    provider = network.openai(f"{server.url}/v1")
    with pytest.raises(ProviderTransient) as info:
        await provider.complete(make_request())
    assert info.value.status == 502
    assert "HTTP 502 Bad Gateway" in str(info.value)
    assert len(str(info.value)) < 400


async def test_200_with_a_non_json_body_is_transient(network: Network) -> None:
    """A 200 whose body is not JSON raises ProviderTransient(status=200)."""
    server = await network.serve(raw_reply(200, b"<html>gateway</html>"))
    provider = network.anthropic(f"{server.url}/v1")
    with pytest.raises(ProviderTransient, match="not JSON") as info:
        await provider.complete(make_request())
    assert info.value.status == 200


async def test_retry_after_arrives_over_the_wire(network: Network) -> None:
    """A real 429's Retry-After header lands on the ProviderTransient."""
    server = await network.serve(
        json_reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "7"})
    )
    provider = network.openai(f"{server.url}/v1")
    with pytest.raises(ProviderTransient, match="slow down") as info:
        await provider.complete(make_request())
    assert info.value.retry_after == 7.0


async def test_key_is_sent_and_never_echoed(network: Network) -> None:
    """The key reaches the server as a bearer token; a 401 echoing it is redacted."""

    async def echo(received: Received, writer: asyncio.StreamWriter) -> None:
        said = {"error": {"message": f"bad key {received.headers['authorization']}"}}
        await json_reply(401, said)(received, writer)

    server = await network.serve(echo)
    provider = network.openai(f"{server.url}/v1")
    with pytest.raises(ProviderDeploymentFault) as info:
        await provider.complete(make_request())
    assert server.requests[0].headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert CANARY_KEY not in str(info.value)
    assert CANARY_KEY not in repr(info.value.context)


# -- real HTTP: what is sent ------------------------------------------------------------


def legacy_openai_body(request: CompletionRequest, model: str) -> dict[str, Any]:
    """The body as the provider built it before it cached schemas (the reference)."""
    return {
        **request.extra,
        "model": model,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "temperature": request.temperature,
        "max_tokens": request.max_output_tokens,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": request.schema_name.replace(".", "_"),
                "strict": True,
                "schema": to_strict_schema(request.json_schema),
            },
        },
    }


def legacy_anthropic_body(request: CompletionRequest, model: str) -> dict[str, Any]:
    """The Anthropic body as built before the tool was cached (the reference)."""
    tool_name = request.schema_name.replace(".", "_")
    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    description = f"Record the {request.schema_name} extracted from the document."
    described = request.json_schema.get("description")
    if isinstance(described, str) and described:
        description = f"{description} {described}"
    body: dict[str, Any] = {
        **request.extra,
        "model": model,
        "max_tokens": request.max_output_tokens,
        "temperature": request.temperature,
        "messages": [
            {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
        ],
        "tools": [
            {
                "name": tool_name,
                "description": description,
                "input_schema": to_tool_input_schema(request.json_schema),
            }
        ],
        "tool_choice": {"type": "tool", "name": tool_name},
    }
    if system:
        body["system"] = system
    return body


SAMPLES = [
    make_request(),
    make_request(
        schema_name="invoice.v2",
        temperature=0.2,
        extra={"seed": 7, "model": "other", "response_format": {"type": "text"}, "stop": ["\n"]},
    ),
    make_request(
        messages=(
            ChatMessage("system", "A"),
            ChatMessage("user", "Zürich, 12,50 € — «quoted»"),
            ChatMessage("assistant", "{}"),
            ChatMessage("system", "B"),
            ChatMessage("user", "fix it"),
        ),
        extra={"tools": [], "tool_choice": {"type": "auto"}, "top_k": 5},
    ),
]


@pytest.mark.parametrize("request_", SAMPLES, ids=["plain", "extra", "turns"])
async def test_openai_body_is_unchanged_on_the_wire(
    network: Network, request_: CompletionRequest
) -> None:
    """The JSON the server receives, sent twice, is the pre-cache body exactly."""
    server = await network.serve(json_reply(200, openai_answer()))
    provider = network.openai(f"{server.url}/v1")
    for _ in range(2):  # the second call uses the cached parts
        await provider.complete(request_)
    expected = legacy_openai_body(request_, "gpt-4o")
    for received in server.requests:
        assert received.method == "POST"
        assert received.target == "/v1/chat/completions"
        assert received.headers["content-type"] == "application/json"
        assert int(received.headers["content-length"]) == len(received.body)
        assert received.json() == expected
        assert list(received.json()) == list(expected)  # key order too


@pytest.mark.parametrize("request_", SAMPLES, ids=["plain", "extra", "turns"])
async def test_anthropic_body_is_unchanged_on_the_wire(
    network: Network, request_: CompletionRequest
) -> None:
    """The Anthropic body on the wire, sent twice, is the pre-cache body exactly."""
    server = await network.serve(json_reply(200, anthropic_answer()))
    provider = network.anthropic(f"{server.url}/v1")
    for _ in range(2):
        await provider.complete(request_)
    expected = legacy_anthropic_body(request_, "claude-sonnet-4-5")
    for received in server.requests:
        assert received.target == "/v1/messages"
        assert received.headers["content-type"] == "application/json"
        assert received.headers["x-api-key"] == CANARY_KEY
        assert received.headers["anthropic-version"] == "2023-06-01"
        assert received.json() == expected
        assert list(received.json()) == list(expected)


async def test_a_body_over_a_mebibyte_arrives_whole_and_without_warnings(
    network: Network,
) -> None:
    """A 3 MB body (sent in pieces, past aiohttp's raw-bytes warning) keeps its Content-Length."""
    server = await network.serve(json_reply(200, openai_answer()))
    provider = network.openai(f"{server.url}/v1")
    request_ = make_request(extra={"pad": "é" * 1_500_000})
    await provider.complete(request_)
    (received,) = server.requests
    assert "transfer-encoding" not in received.headers
    assert int(received.headers["content-length"]) == len(received.body) > 3_000_000
    assert received.json() == legacy_openai_body(request_, "gpt-4o")


async def test_max_connections_bounds_the_sockets(network: Network) -> None:
    """Twelve calls in flight through max_connections=3 never open more than three sockets."""

    async def slow(received: Received, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        await json_reply(200, openai_answer())(received, writer)

    server = await network.serve(slow)
    provider = network.openai(f"{server.url}/v1", max_connections=3)
    await asyncio.gather(*(provider.complete(make_request()) for _ in range(12)))
    assert len(server.requests) == 12
    assert server.peak_connections == 3


async def test_unserialisable_extra_is_rejected_before_sending(network: Network) -> None:
    """An ``extra`` value JSON cannot carry is ProviderRejected, and nothing is sent."""
    server = await network.serve(json_reply(200, openai_answer()))
    provider = network.openai(f"{server.url}/v1")
    with pytest.raises(ProviderRejected, match="not JSON-serialisable"):
        await provider.complete(make_request(extra={"when": object()}))
    assert server.requests == []


def test_orjson_is_what_serialises() -> None:
    """Non-ASCII is sent as UTF-8, not \\u escapes, as httpx's ``json=`` did."""
    assert orjson.dumps({"city": "Zürich"}) == '{"city":"Zürich"}'.encode()


# -- closing ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [OpenAICompatProvider, AnthropicProvider], ids=class_name)
async def test_aclose_leaves_nothing_unclosed(
    cls: type[OpenAICompatProvider] | type[AnthropicProvider],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After real calls and aclose, collecting the client warns of no session or connector."""
    answer = openai_answer() if cls is OpenAICompatProvider else anthropic_answer()
    server = LocalServer(json_reply(200, answer))
    await server.start()
    caplog.set_level(logging.DEBUG, logger="asyncio")
    try:
        provider = cls(f"{server.url}/v1", "m", SecretStr("k"), max_connections=4)
        await asyncio.gather(*(provider.complete(make_request()) for _ in range(4)))
        await provider.aclose()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del provider
            gc.collect()
    finally:
        await server.close()
    assert [str(w.message) for w in caught] == []
    assert "Unclosed" not in caplog.text


async def test_a_provider_never_used_needs_no_loop_and_closes() -> None:
    """Building a provider opens no session; aclose without a call is fine."""
    provider = OpenAICompatProvider("http://127.0.0.1:9/v1", "m", None)
    await provider.aclose()


# -- settings checked at construction ---------------------------------------------------


@pytest.mark.parametrize("key", ["sk-abc\n", "sk-\r\nX-Evil: 1", "sk-ключ"])
def test_a_key_with_a_control_or_non_ascii_character_is_a_config_error(key: str) -> None:
    """A key aiohttp would refuse on every request fails at start-up, without echoing it."""
    with pytest.raises(ConfigError, match="strip it") as info:
        OpenAICompatProvider("https://x.example/v1", "m", SecretStr(key))
    assert key.strip() not in str(info.value)


def test_a_header_with_a_newline_is_a_config_error() -> None:
    """``extra_headers`` that would be a header injection fail when the provider is built."""
    with pytest.raises(ConfigError, match="OpenAI-Organization"):
        OpenAICompatProvider(
            "https://x.example/v1", "m", None, extra_headers={"OpenAI-Organization": "org\r\n"}
        )
