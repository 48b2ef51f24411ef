"""OpenAICompatProvider over a scripted MockTransport: body, parsing, errors, secrecy."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from streams.errors import (
    MalformedOutput,
    ProviderDeploymentFault,
    ProviderRejected,
    ProviderTransient,
    StreamsError,
)
from streams.providers import OpenAICompatProvider, Provider
from streams.providers.strict_schema import to_strict_schema

from ._support import (
    CANARY,
    CANARY_KEY,
    RECORD,
    OpenAIFactory,
    invoice_schema,
    make_request,
    openai_answer,
)


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=openai_answer())


def test_satisfies_the_provider_protocol() -> None:
    """The class is a structural Provider named ``openai``."""
    provider = OpenAICompatProvider("https://x.example/v1", "m", None)
    assert isinstance(provider, Provider)
    assert provider.name == "openai"
    assert provider.model == "m"


async def test_posts_chat_completions_with_strict_json_schema(make_openai: OpenAIFactory) -> None:
    """The body carries model, messages, sampling, and the strict-transformed schema."""
    provider, server = make_openai(ok)
    await provider.complete(make_request(temperature=0.2, max_output_tokens=300))
    request = server.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "https://llm.example/v1/chat/completions"
    assert request.headers["content-type"] == "application/json"
    assert server.last_json() == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Extract the invoice."},
            {"role": "user", "content": "INV-7 from ACME, total 12.50 EUR"},
        ],
        "temperature": 0.2,
        "max_tokens": 300,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "invoice",
                "strict": True,
                "schema": to_strict_schema(invoice_schema()),
            },
        },
    }


async def test_base_url_with_trailing_slash(make_openai: OpenAIFactory) -> None:
    """``.../v1/`` and ``.../v1`` reach the same endpoint."""
    server_requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        server_requests.append(request)
        return ok(request)

    provider = OpenAICompatProvider(
        "http://localhost:8000/v1/", "m", None, transport=httpx.MockTransport(record)
    )
    try:
        await provider.complete(make_request())
    finally:
        await provider.aclose()
    assert str(server_requests[0].url) == "http://localhost:8000/v1/chat/completions"


async def test_bearer_header_only_when_a_key_is_set(make_openai: OpenAIFactory) -> None:
    """A key is sent as a bearer token; without one no Authorization header exists."""
    with_key, keyed = make_openai(ok)
    without_key, anonymous = make_openai(ok, api_key=None)
    await with_key.complete(make_request())
    await without_key.complete(make_request())
    assert keyed.requests[0].headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert "authorization" not in anonymous.requests[0].headers


async def test_extra_headers_are_sent(make_openai: OpenAIFactory) -> None:
    """``extra_headers`` (e.g. an organisation id) go on every request."""
    provider, server = make_openai(ok, extra_headers={"OpenAI-Organization": "org-1"})
    await provider.complete(make_request())
    assert server.requests[0].headers["openai-organization"] == "org-1"


async def test_extra_params_cannot_override_the_schema(make_openai: OpenAIFactory) -> None:
    """``request.extra`` adds parameters but never replaces model, limits or response_format."""
    provider, server = make_openai(ok)
    extra = {"seed": 7, "response_format": {"type": "text"}, "model": "other"}
    await provider.complete(make_request(extra=extra))
    body = server.last_json()
    assert body["seed"] == 7
    assert body["model"] == "gpt-4o"
    assert body["response_format"]["type"] == "json_schema"


async def test_schema_name_is_made_wire_safe(make_openai: OpenAIFactory) -> None:
    """A contract name with dots still yields a name the API accepts."""
    provider, server = make_openai(ok)
    await provider.complete(make_request(schema_name="invoice.v2"))
    assert server.last_json()["response_format"]["json_schema"]["name"] == "invoice_v2"


async def test_parses_text_usage_model_and_finish_reason(make_openai: OpenAIFactory) -> None:
    """Content, token counts, reported model and finish reason land on the Completion."""
    provider, _ = make_openai(ok)
    completion = await provider.complete(make_request())
    assert json.loads(completion.text) == RECORD
    assert completion.finish_reason == "stop"
    assert completion.model_reported == "gpt-4o-2024-08-06"
    assert (completion.input_tokens, completion.output_tokens) == (321, 45)
    assert completion.latency_s >= 0.0
    assert not completion.truncated


async def test_length_finish_is_truncated(make_openai: OpenAIFactory) -> None:
    """``finish_reason: length`` marks the completion truncated, text kept for the record."""
    provider, _ = make_openai(
        lambda r: httpx.Response(
            200, json=openai_answer(content='{"number": "IN', finish_reason="length")
        )
    )
    completion = await provider.complete(make_request())
    assert completion.truncated
    assert completion.text == '{"number": "IN'


async def test_missing_usage_counts_zero_and_warns_once(
    make_openai: OpenAIFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A server without ``usage`` yields 0/0 tokens and a single warning per provider."""
    answer = openai_answer()
    del answer["usage"]
    provider, _ = make_openai(lambda r: httpx.Response(200, json=answer))
    caplog.set_level(logging.WARNING, logger="streams.providers.openai_compat")
    first = await provider.complete(make_request())
    await provider.complete(make_request())
    assert (first.input_tokens, first.output_tokens) == (0, 0)
    warnings = [r for r in caplog.records if "no token usage" in r.getMessage()]
    assert len(warnings) == 1


async def test_missing_model_falls_back_to_requested(make_openai: OpenAIFactory) -> None:
    """A server that omits ``model`` reports the requested model."""
    answer = openai_answer()
    del answer["model"]
    provider, _ = make_openai(lambda r: httpx.Response(200, json=answer))
    assert (await provider.complete(make_request())).model_reported == "gpt-4o"


async def test_content_parts_are_joined(make_openai: OpenAIFactory) -> None:
    """Servers that return content as a list of text parts are read as one text."""
    answer = openai_answer()
    answer["choices"][0]["message"]["content"] = [
        {"type": "text", "text": '{"a":'},
        {"type": "text", "text": " 1}"},
    ]
    provider, _ = make_openai(lambda r: httpx.Response(200, json=answer))
    assert (await provider.complete(make_request())).text == '{"a": 1}'


async def test_refusal_is_malformed_output_with_usage(make_openai: OpenAIFactory) -> None:
    """A refusal raises MalformedOutput whose last_output is the refusal, tokens attached."""
    provider, _ = make_openai(
        lambda r: httpx.Response(
            200, json=openai_answer(content=None, refusal="I can't help with that.")
        )
    )
    with pytest.raises(MalformedOutput, match="refused") as info:
        await provider.complete(make_request())
    assert info.value.last_output == "I can't help with that."
    assert info.value.context["input_tokens"] == 321


async def test_invalid_json_body_is_transient(make_openai: OpenAIFactory) -> None:
    """A 200 whose body is not JSON (proxy page, cut connection) is a retryable glitch."""
    provider, _ = make_openai(lambda r: httpx.Response(200, text="<html>gateway</html>"))
    with pytest.raises(ProviderTransient, match="not JSON") as info:
        await provider.complete(make_request())
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize(
    "body", [{"object": "chat.completion"}, {"choices": []}, {"choices": [{"index": 0}]}, [1, 2]]
)
async def test_missing_choices_is_transient(make_openai: OpenAIFactory, body: object) -> None:
    """A 200 without a usable choice is a server glitch, retried rather than dead-lettered."""
    provider, _ = make_openai(lambda r: httpx.Response(200, json=body))
    with pytest.raises(ProviderTransient):
        await provider.complete(make_request())


@pytest.mark.parametrize("status", [400, 422])
async def test_client_errors_are_rejected(make_openai: OpenAIFactory, status: int) -> None:
    """Statuses a retry cannot fix raise ProviderRejected with status and provider message."""
    provider, _ = make_openai(
        lambda r: httpx.Response(status, json={"error": {"message": "schema is invalid"}})
    )
    with pytest.raises(ProviderRejected) as info:
        await provider.complete(make_request())
    assert info.value.status == status
    assert f"HTTP {status}" in str(info.value)
    assert "schema is invalid" in str(info.value)


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_deployment_statuses_are_deployment_faults(
    make_openai: OpenAIFactory, status: int
) -> None:
    """401/403/404 raise ProviderDeploymentFault with the status and the provider's message."""
    provider, _ = make_openai(
        lambda r: httpx.Response(status, json={"error": {"message": "no access"}})
    )
    with pytest.raises(ProviderDeploymentFault) as info:
        await provider.complete(make_request())
    assert info.value.status == status
    assert "no access" in str(info.value)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_transient(make_openai: OpenAIFactory, status: int) -> None:
    """408/409/429/5xx raise ProviderTransient with the status."""
    provider, _ = make_openai(lambda r: httpx.Response(status, json={"error": {"message": "x"}}))
    with pytest.raises(ProviderTransient) as info:
        await provider.complete(make_request())
    assert info.value.status == status


async def test_retry_after_seconds_is_carried(make_openai: OpenAIFactory) -> None:
    """A 429 with ``Retry-After: 20`` raises ProviderTransient(retry_after=20)."""
    provider, _ = make_openai(lambda r: httpx.Response(429, headers={"Retry-After": "20"}))
    with pytest.raises(ProviderTransient) as info:
        await provider.complete(make_request())
    assert info.value.retry_after == 20.0
    assert info.value.context["retry_after"] == 20.0


async def test_retry_after_http_date_is_carried(make_openai: OpenAIFactory) -> None:
    """A 503 with an HTTP-date Retry-After gives the seconds until that date."""
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    provider, _ = make_openai(lambda r: httpx.Response(503, headers={"Retry-After": when}))
    with pytest.raises(ProviderTransient) as info:
        await provider.complete(make_request())
    assert info.value.retry_after is not None
    assert 100.0 < info.value.retry_after <= 120.0


async def test_timeout_is_transient_and_chained(make_openai: OpenAIFactory) -> None:
    """A read timeout raises ProviderTransient from the httpx exception."""

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    provider, _ = make_openai(slow)
    with pytest.raises(ProviderTransient, match="ReadTimeout") as info:
        await provider.complete(make_request())
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert info.value.status is None


async def test_connect_error_is_transient(make_openai: OpenAIFactory) -> None:
    """A refused connection raises ProviderTransient from ConnectError."""

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    provider, _ = make_openai(refused)
    with pytest.raises(ProviderTransient, match="Connection refused") as info:
        await provider.complete(make_request())
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_key_never_leaks(
    make_openai: OpenAIFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The key is absent from repr, every error message and context, and every log record."""
    caplog.set_level(logging.DEBUG)
    echo = {"error": {"message": f"Incorrect API key provided: {CANARY_KEY}"}}
    responses = iter(
        [
            httpx.Response(401, json=echo),
            httpx.Response(429, json=echo, headers={"Retry-After": "1"}),
            httpx.Response(200, json=openai_answer(content=None, refusal=f"no {CANARY_KEY}")),
        ]
    )

    def script(request: httpx.Request) -> httpx.Response:
        return next(responses)

    provider, server = make_openai(script)
    assert CANARY_KEY not in repr(provider)
    assert CANARY_KEY not in repr(provider.__dict__)
    errors: list[StreamsError] = []
    for _ in range(3):
        with pytest.raises((ProviderDeploymentFault, ProviderTransient, MalformedOutput)) as info:
            await provider.complete(make_request())
        errors.append(info.value)
    for error in errors:
        assert CANARY_KEY not in str(error)
        assert CANARY_KEY not in repr(error)
        context = {k: v for k, v in error.context.items() if k != "last_output"}
        assert CANARY_KEY not in repr(context)
    assert CANARY_KEY not in caplog.text
    assert all(CANARY_KEY not in r.getMessage() for r in caplog.records)
    assert server.requests[0].headers["authorization"].endswith(CANARY_KEY)


async def test_key_not_in_transport_error_messages(make_openai: OpenAIFactory) -> None:
    """Even a transport error whose text contains the key is redacted."""

    def leaky(request: httpx.Request) -> httpx.Response:
        raise httpx.ProxyError(f"proxy rejected {request.headers['authorization']}")

    provider, _ = make_openai(leaky)
    with pytest.raises(ProviderTransient) as info:
        await provider.complete(make_request())
    assert CANARY_KEY not in str(info.value)


def test_repr_shows_where_not_what() -> None:
    """repr names the endpoint and model and only whether a key is set."""
    keyed = OpenAICompatProvider("https://x.example/v1", "m", CANARY)
    anonymous = OpenAICompatProvider("https://x.example/v1", "m", None)
    assert repr(keyed) == (
        "OpenAICompatProvider(base_url='https://x.example/v1', model='m', api_key='**********')"
    )
    assert repr(anonymous).endswith("api_key=None)")
