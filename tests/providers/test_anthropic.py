"""AnthropicProvider over a scripted MockTransport: forced tool call, parsing, errors."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from streams.errors import (
    MalformedOutput,
    ProviderDeploymentFault,
    ProviderRejected,
    ProviderTransient,
)
from streams.providers import AnthropicProvider, Provider
from streams.providers.anthropic import ANTHROPIC_VERSION
from streams.providers.base import ChatMessage
from streams.providers.strict_schema import to_tool_input_schema

from ._support import (
    CANARY,
    CANARY_KEY,
    RECORD,
    AnthropicFactory,
    anthropic_answer,
    invoice_schema,
    make_request,
)


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=anthropic_answer())


def test_satisfies_the_provider_protocol() -> None:
    """The class is a structural Provider named ``anthropic``."""
    provider = AnthropicProvider("https://x.example/v1", "claude", None)
    assert isinstance(provider, Provider)
    assert provider.name == "anthropic"


async def test_posts_messages_with_a_forced_tool(make_anthropic: AnthropicFactory) -> None:
    """System goes top-level; the contract is the only tool and the model must call it."""
    provider, server = make_anthropic(ok)
    await provider.complete(make_request(temperature=0.3, max_output_tokens=700))
    request = server.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "https://claude.example/v1/messages"
    assert request.headers["x-api-key"] == CANARY_KEY
    assert request.headers["anthropic-version"] == ANTHROPIC_VERSION == "2023-06-01"
    assert "authorization" not in request.headers
    assert server.last_json() == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 700,
        "temperature": 0.3,
        "system": "Extract the invoice.",
        "messages": [{"role": "user", "content": "INV-7 from ACME, total 12.50 EUR"}],
        "tools": [
            {
                "name": "invoice",
                "description": (
                    "Record the invoice extracted from the document. "
                    "An invoice extracted from OCR text."
                ),
                "input_schema": to_tool_input_schema(invoice_schema()),
            }
        ],
        "tool_choice": {"type": "tool", "name": "invoice"},
    }


async def test_tool_schema_keeps_defs_and_constraints(make_anthropic: AnthropicFactory) -> None:
    """Anthropic receives ``$defs`` at the root and native constraints like ``pattern``."""
    provider, server = make_anthropic(ok)
    await provider.complete(make_request())
    schema = server.last_json()["tools"][0]["input_schema"]
    assert schema["type"] == "object"
    assert set(schema["$defs"]) == {"Address", "Currency", "LineItem"}
    assert schema["properties"]["number"]["pattern"] == "^[A-Z]{3}-[0-9]+$"


async def test_several_system_turns_are_joined(make_anthropic: AnthropicFactory) -> None:
    """Every system turn ends up in ``system``; none stays in ``messages``."""
    provider, server = make_anthropic(ok)
    messages = (
        ChatMessage("system", "A"),
        ChatMessage("user", "doc"),
        ChatMessage("assistant", "{}"),
        ChatMessage("system", "B"),
        ChatMessage("user", "fix it"),
    )
    await provider.complete(make_request(messages=messages))
    body = server.last_json()
    assert body["system"] == "A\n\nB"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


async def test_no_system_turn_means_no_system_field(make_anthropic: AnthropicFactory) -> None:
    """Without system turns the ``system`` key is omitted, not sent empty."""
    provider, server = make_anthropic(ok)
    await provider.complete(make_request(messages=(ChatMessage("user", "doc"),)))
    assert "system" not in server.last_json()


async def test_no_key_means_no_key_header(make_anthropic: AnthropicFactory) -> None:
    """With ``api_key=None`` (e.g. a gateway) no ``x-api-key`` is sent."""
    provider, server = make_anthropic(ok, api_key=None)
    await provider.complete(make_request())
    assert "x-api-key" not in server.requests[0].headers


async def test_tool_input_is_the_text(make_anthropic: AnthropicFactory) -> None:
    """The tool_use input is re-serialised with json.dumps as the completion text."""
    provider, _ = make_anthropic(ok)
    completion = await provider.complete(make_request())
    assert completion.text == json.dumps(RECORD)
    assert completion.finish_reason == "tool_use"
    assert completion.model_reported == "claude-sonnet-4-5-20250929"
    assert (completion.input_tokens, completion.output_tokens) == (400, 60)
    assert not completion.truncated


async def test_tool_use_is_found_among_text_blocks(make_anthropic: AnthropicFactory) -> None:
    """A preamble text block does not hide the tool call; non-ASCII stays readable."""
    content: list[dict[str, Any]] = [
        {"type": "text", "text": "Here you go."},
        {"type": "tool_use", "id": "t", "name": "invoice", "input": {"city": "Zürich"}},
    ]
    provider, _ = make_anthropic(
        lambda r: httpx.Response(200, json=anthropic_answer(content=content))
    )
    assert (await provider.complete(make_request())).text == '{"city": "Zürich"}'


async def test_cache_tokens_count_as_input(make_anthropic: AnthropicFactory) -> None:
    """Prompt-cache reads and writes are added to the input token count."""
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 300,
        "output_tokens": 7,
    }
    provider, _ = make_anthropic(lambda r: httpx.Response(200, json=anthropic_answer(usage=usage)))
    completion = await provider.complete(make_request())
    assert (completion.input_tokens, completion.output_tokens) == (510, 7)


async def test_missing_usage_counts_zero_and_warns_once(
    make_anthropic: AnthropicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """No ``usage`` gives 0/0 tokens and one warning for the provider's lifetime."""
    answer = anthropic_answer()
    del answer["usage"]
    provider, _ = make_anthropic(lambda r: httpx.Response(200, json=answer))
    caplog.set_level(logging.WARNING, logger="streams.providers.anthropic")
    completion = await provider.complete(make_request())
    await provider.complete(make_request())
    assert (completion.input_tokens, completion.output_tokens) == (0, 0)
    assert len([r for r in caplog.records if "no token usage" in r.getMessage()]) == 1


async def test_max_tokens_is_truncated(make_anthropic: AnthropicFactory) -> None:
    """``stop_reason: max_tokens`` marks the completion truncated even with a tool call."""
    content = [{"type": "tool_use", "id": "t", "name": "invoice", "input": {}}]
    provider, _ = make_anthropic(
        lambda r: httpx.Response(
            200, json=anthropic_answer(content=content, stop_reason="max_tokens")
        )
    )
    completion = await provider.complete(make_request())
    assert completion.truncated
    assert completion.finish_reason == "max_tokens"


async def test_without_tool_call_the_text_is_returned(make_anthropic: AnthropicFactory) -> None:
    """If no tool was called, text blocks are joined for the pipeline's parser to judge."""
    content = [{"type": "text", "text": '{"number": '}, {"type": "text", "text": '"INV-7"}'}]
    provider, _ = make_anthropic(
        lambda r: httpx.Response(
            200, json=anthropic_answer(content=content, stop_reason="end_turn")
        )
    )
    assert (await provider.complete(make_request())).text == '{"number": "INV-7"}'


async def test_refusal_is_malformed_output(make_anthropic: AnthropicFactory) -> None:
    """``stop_reason: refusal`` raises MalformedOutput with the refusal text as last_output."""
    content = [{"type": "text", "text": "I won't do that."}]
    provider, _ = make_anthropic(
        lambda r: httpx.Response(200, json=anthropic_answer(content=content, stop_reason="refusal"))
    )
    with pytest.raises(MalformedOutput, match="refused") as info:
        await provider.complete(make_request())
    assert info.value.last_output == "I won't do that."


async def test_missing_content_is_transient(make_anthropic: AnthropicFactory) -> None:
    """A 200 without a content list is a server glitch."""
    provider, _ = make_anthropic(lambda r: httpx.Response(200, json={"type": "message"}))
    with pytest.raises(ProviderTransient, match="without content"):
        await provider.complete(make_request())


async def test_overloaded_529_is_transient_with_retry_after(
    make_anthropic: AnthropicFactory,
) -> None:
    """Anthropic's 529 overloaded error is retryable and keeps its Retry-After."""
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    provider, _ = make_anthropic(
        lambda r: httpx.Response(529, json=body, headers={"retry-after": "3"})
    )
    with pytest.raises(ProviderTransient, match="Overloaded") as info:
        await provider.complete(make_request())
    assert info.value.status == 529
    assert info.value.retry_after == 3.0


@pytest.mark.parametrize("status", [400, 422])
async def test_client_errors_are_rejected(make_anthropic: AnthropicFactory, status: int) -> None:
    """Non-retryable statuses raise ProviderRejected quoting Anthropic's message."""
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad tool"}}
    provider, _ = make_anthropic(lambda r: httpx.Response(status, json=body))
    with pytest.raises(ProviderRejected, match="bad tool") as info:
        await provider.complete(make_request())
    assert info.value.status == status


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_deployment_statuses_are_deployment_faults(
    make_anthropic: AnthropicFactory, status: int
) -> None:
    """401/403/404 raise ProviderDeploymentFault quoting Anthropic's message."""
    body = {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-x"}}
    provider, _ = make_anthropic(lambda r: httpx.Response(status, json=body))
    with pytest.raises(ProviderDeploymentFault, match="model: claude-x") as info:
        await provider.complete(make_request())
    assert info.value.status == status


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503])
async def test_retryable_statuses_are_transient(
    make_anthropic: AnthropicFactory, status: int
) -> None:
    """408/409/429/5xx raise ProviderTransient."""
    provider, _ = make_anthropic(lambda r: httpx.Response(status))
    with pytest.raises(ProviderTransient):
        await provider.complete(make_request())


async def test_timeout_and_connect_error_are_transient(make_anthropic: AnthropicFactory) -> None:
    """Timeouts and refused connections raise ProviderTransient from the httpx error."""
    failures: list[type[httpx.TransportError]] = [httpx.ConnectTimeout, httpx.ConnectError]

    def fail(request: httpx.Request) -> httpx.Response:
        raise failures.pop(0)("nope", request=request)

    provider, _ = make_anthropic(fail)
    for expected in (httpx.ConnectTimeout, httpx.ConnectError):
        with pytest.raises(ProviderTransient) as info:
            await provider.complete(make_request())
        assert type(info.value.__cause__) is expected


async def test_key_never_leaks(
    make_anthropic: AnthropicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The key is absent from repr, error messages and logs, though it is sent as x-api-key."""
    caplog.set_level(logging.DEBUG)
    echo = {"type": "error", "error": {"type": "authentication_error", "message": CANARY_KEY}}
    provider, server = make_anthropic(lambda r: httpx.Response(401, json=echo))
    assert CANARY_KEY not in repr(provider)
    with pytest.raises(ProviderDeploymentFault) as info:
        await provider.complete(make_request())
    assert CANARY_KEY not in str(info.value)
    assert CANARY_KEY not in repr(info.value.context)
    assert CANARY_KEY not in caplog.text
    assert server.requests[0].headers["x-api-key"] == CANARY_KEY


def test_repr_hides_the_key() -> None:
    """repr says a key is set without showing it."""
    provider = AnthropicProvider("https://x.example/v1", "claude", CANARY)
    assert repr(provider) == (
        "AnthropicProvider(base_url='https://x.example/v1', model='claude', api_key='**********')"
    )
