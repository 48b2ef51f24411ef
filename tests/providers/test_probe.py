"""``probe()``: a token-free ``GET /models`` that tells a broken deployment from a working one.

Every test runs against a real local HTTP server (``_servers.LocalServer``).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import streams.providers.anthropic as anthropic_module
import streams.providers.openai_compat as openai_module
from streams.errors import ProviderDeploymentFault, ProviderRejected, ProviderTransient
from streams.providers import Provider
from streams.providers._http import PROBE_TIMEOUT_S
from streams.providers.base import Completion, CompletionRequest

from ._servers import Reply, hang, json_reply, raw_reply, refused_url, routes
from ._support import CANARY_KEY, make_request, openai_answer
from .conftest import Network

MODEL_NOT_FOUND = {
    "error": {
        "message": "The model `gpt-4o` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "code": "model_not_found",
    }
}


def models(*ids: str) -> Reply:
    return json_reply(200, {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})


async def test_probe_is_a_get_of_models_with_the_same_auth(network: Network) -> None:
    """The probe GETs {base_url}/models with the bearer key and no body; 2xx returns None."""
    server = await network.serve(models("gpt-4o"))
    provider = network.openai(f"{server.url}/v1")
    await provider.probe()
    (received,) = server.requests
    assert (received.method, received.target) == ("GET", "/v1/models")
    assert received.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert received.body == b""


async def test_anthropic_probe_sends_its_key_and_version(network: Network) -> None:
    """Anthropic's probe carries x-api-key and anthropic-version, one page of up to 1000."""
    server = await network.serve(models("claude-sonnet-4-5-20250929"))
    provider = network.anthropic(f"{server.url}/v1")
    await provider.probe()
    (received,) = server.requests
    assert (received.method, received.target) == ("GET", "/v1/models?limit=1000")
    assert received.headers["x-api-key"] == CANARY_KEY
    assert received.headers["anthropic-version"] == "2023-06-01"


@pytest.mark.parametrize("status", [401, 403, 404])
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_deployment_statuses_raise_deployment_faults(
    network: Network, kind: str, status: int
) -> None:
    """A revoked key, a missing permission or a wrong path: ProviderDeploymentFault."""
    server = await network.serve(json_reply(status, {"error": {"message": "denied"}}))
    provider = getattr(network, kind)(f"{server.url}/v1")
    with pytest.raises(ProviderDeploymentFault, match="denied") as info:
        await provider.probe()
    assert info.value.status == status


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_retryable_statuses_raise_transient(network: Network, status: int) -> None:
    """A 5xx or 429 answer to the probe is ProviderTransient, like a call's."""
    server = await network.serve(raw_reply(status, b"<html>down</html>", {"Retry-After": "3"}))
    provider = network.openai(f"{server.url}/v1")
    with pytest.raises(ProviderTransient) as info:
        await provider.probe()
    assert info.value.status == status
    assert info.value.retry_after == 3.0


async def test_400_is_rejected(network: Network) -> None:
    """Other client errors map as everywhere else: ProviderRejected."""
    server = await network.serve(json_reply(400, {"error": {"message": "bad"}}))
    provider = network.openai(f"{server.url}/v1")
    with pytest.raises(ProviderRejected):
        await provider.probe()


async def test_connection_refused_is_transient(network: Network) -> None:
    """No server at all: ProviderTransient."""
    provider = network.anthropic(f"{refused_url()}/v1")
    with pytest.raises(ProviderTransient, match="ClientConnectorError"):
        await provider.probe()


async def test_probe_timeout_is_capped(network: Network, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe waits min(timeout_s, PROBE_TIMEOUT_S), not a whole model call's timeout."""
    monkeypatch.setattr(openai_module, "PROBE_TIMEOUT_S", 0.2)
    server = await network.serve(hang)
    provider = network.openai(f"{server.url}/v1", timeout_s=60.0)
    started = time.monotonic()
    with pytest.raises(ProviderTransient, match="Timeout"):
        await provider.probe()
    assert time.monotonic() - started < 3.0


async def test_probe_timeout_is_at_most_the_call_timeout(network: Network) -> None:
    """A provider whose timeout_s is under ten seconds probes within that."""
    server = await network.serve(hang)
    provider = network.anthropic(f"{server.url}/v1", timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(ProviderTransient):
        await provider.probe()
    assert time.monotonic() - started < 3.0


async def test_a_non_json_2xx_is_healthy(network: Network) -> None:
    """A 2xx the probe cannot read is still a working deployment."""
    server = await network.serve(raw_reply(200, b"ok"))
    await network.openai(f"{server.url}/v1").probe()


async def test_after_a_model_404_the_model_must_be_listed(network: Network) -> None:
    """After a call's 404 about the model, a list without it is a 404 fault; with it, None."""
    listed: list[str] = ["gpt-4o-mini", "o3"]

    async def list_models(received: Any, writer: Any) -> None:
        await models(*listed)(received, writer)

    server = await network.serve(
        routes(
            {
                ("POST", "/v1/chat/completions"): json_reply(404, MODEL_NOT_FOUND),
                ("GET", "/v1/models"): list_models,
            }
        )
    )
    provider = network.openai(f"{server.url}/v1")
    with pytest.raises(ProviderDeploymentFault):
        await provider.complete(make_request())
    with pytest.raises(ProviderDeploymentFault, match="'gpt-4o' is not listed") as info:
        await provider.probe()
    assert info.value.status == 404
    assert "gpt-4o-mini, o3" in str(info.value)
    listed.append("gpt-4o")
    await provider.probe()


async def test_without_a_model_404_the_list_is_not_checked(network: Network) -> None:
    """After a 401 (or no fault at all) the probe only checks that the key works."""
    server = await network.serve(
        routes(
            {
                ("POST", "/v1/chat/completions"): json_reply(401, {"error": {"message": "key"}}),
                ("GET", "/v1/models"): models("something-else"),
            }
        )
    )
    provider = network.openai(f"{server.url}/v1")
    await provider.probe()
    with pytest.raises(ProviderDeploymentFault):
        await provider.complete(make_request())
    await provider.probe()


async def test_a_404_page_from_a_wrong_path_is_not_about_the_model(network: Network) -> None:
    """A bare HTML 404 (base_url missing /v1) is a fault, but the list check is not armed."""
    server = await network.serve(
        routes(
            {
                ("POST", "/chat/completions"): raw_reply(404, b"<html>Not Found</html>"),
                ("GET", "/models"): models("other"),
            }
        )
    )
    provider = network.openai(server.url)
    with pytest.raises(ProviderDeploymentFault):
        await provider.complete(make_request())
    await provider.probe()


async def test_a_success_disarms_the_list_check(network: Network) -> None:
    """Once a call succeeds, the last deployment fault is history."""
    answers = iter([json_reply(404, MODEL_NOT_FOUND), json_reply(200, openai_answer())])

    async def call(received: Any, writer: Any) -> None:
        await next(answers)(received, writer)

    server = await network.serve(
        routes({("POST", "/v1/chat/completions"): call, ("GET", "/v1/models"): models("x")})
    )
    provider = network.openai(f"{server.url}/v1")
    with pytest.raises(ProviderDeploymentFault):
        await provider.complete(make_request())
    await provider.complete(make_request())
    await provider.probe()


async def test_ollama_latest_tag_counts_as_listed(network: Network) -> None:
    """Ollama lists ``llama3:latest`` for a model requested as ``llama3``."""
    not_found = json_reply(404, {"error": "model 'llama3' not found"})
    server = await network.serve(
        routes(
            {
                ("POST", "/v1/chat/completions"): not_found,
                ("GET", "/v1/models"): models("llama3:latest"),
            }
        )
    )
    provider = openai_module.OpenAICompatProvider(f"{server.url}/v1", "llama3", None)
    network.providers.append(provider)
    with pytest.raises(ProviderDeploymentFault):
        await provider.complete(make_request())
    await provider.probe()


async def test_anthropic_alias_is_resolved_by_the_model_endpoint(network: Network) -> None:
    """An alias missing from the id list is looked up by /models/{model} before failing."""
    not_found = {"type": "error", "error": {"type": "not_found_error", "message": "model: x"}}
    server = await network.serve(
        routes(
            {
                ("POST", "/v1/messages"): json_reply(404, not_found),
                ("GET", "/v1/models"): models("claude-sonnet-4-5-20250929"),
                ("GET", "/v1/models/claude-sonnet-4-5"): json_reply(
                    200, {"id": "claude-sonnet-4-5-20250929", "type": "model"}
                ),
            }
        )
    )
    provider = network.anthropic(f"{server.url}/v1")
    with pytest.raises(ProviderDeploymentFault):
        await provider.complete(make_request())
    await provider.probe()
    assert [r.target for r in server.requests][-2:] == [
        "/v1/models?limit=1000",
        "/v1/models/claude-sonnet-4-5",
    ]


async def test_anthropic_unknown_model_is_not_listed(network: Network) -> None:
    """A model neither listed nor found by its own endpoint is a 404 deployment fault."""
    not_found = {"type": "error", "error": {"type": "not_found_error", "message": "model: x"}}
    server = await network.serve(
        routes(
            {
                ("POST", "/v1/messages"): json_reply(404, not_found),
                ("GET", "/v1/models"): models("claude-opus-4-1-20250805"),
            }
        )
    )
    provider = network.anthropic(f"{server.url}/v1")
    with pytest.raises(ProviderDeploymentFault):
        await provider.complete(make_request())
    with pytest.raises(ProviderDeploymentFault, match="'claude-sonnet-4-5' is not listed") as info:
        await provider.probe()
    assert info.value.status == 404
    assert isinstance(info.value.__cause__, ProviderDeploymentFault)


def test_probe_timeout_constant_is_shared() -> None:
    """Both providers cap the probe with the one ten-second constant from ``_http``."""
    assert PROBE_TIMEOUT_S == 10.0
    for module in (anthropic_module, openai_module):
        assert vars(module)["PROBE_TIMEOUT_S"] is PROBE_TIMEOUT_S


class NoProbe:
    """A provider fake from elsewhere in the tests: it has no ``probe``."""

    name = "fake"
    model = "m"

    async def complete(self, request: CompletionRequest) -> Completion:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def test_probe_is_optional_in_the_protocol() -> None:
    """A Provider without ``probe`` still satisfies the Protocol; callers use getattr."""
    fake = NoProbe()
    assert isinstance(fake, Provider)
    assert getattr(fake, "probe", None) is None


async def test_an_empty_model_list_does_not_list_the_model(network: Network) -> None:
    """After a model 404, ``data: []`` is an answer: the model is not listed."""
    server = await network.serve(
        routes(
            {
                ("POST", "/v1/chat/completions"): json_reply(404, MODEL_NOT_FOUND),
                ("GET", "/v1/models"): models(),
            }
        )
    )
    provider = network.openai(f"{server.url}/v1")
    with pytest.raises(ProviderDeploymentFault):
        await provider.complete(make_request())
    with pytest.raises(ProviderDeploymentFault, match="it lists nothing"):
        await provider.probe()


@pytest.mark.parametrize(
    "payload", [{"object": "list"}, {"data": "x"}, {"data": [{"name": "gpt-4o"}]}, [1]]
)
async def test_an_unrecognisable_list_is_not_evidence(network: Network, payload: Any) -> None:
    """A 2xx without a ``data`` array of objects with ids cannot show the model missing."""
    server = await network.serve(
        routes(
            {
                ("POST", "/v1/chat/completions"): json_reply(404, MODEL_NOT_FOUND),
                ("GET", "/v1/models"): json_reply(200, payload),
            }
        )
    )
    provider = network.openai(f"{server.url}/v1")
    with pytest.raises(ProviderDeploymentFault):
        await provider.complete(make_request())
    await provider.probe()
