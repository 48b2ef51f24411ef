"""The failure behaviours real APIs and their proxies produce, in both dialects over HTTP."""

from __future__ import annotations

import argparse
import math
from typing import Any

import httpx
import pytest

from streams.simulator import Behaviour, parse_fault_mix
from streams.simulator import commands as sim_commands
from tests.simulator.support import (
    DOCUMENT,
    KEY,
    anthropic_body,
    chat,
    openai_body,
    requests_seen,
    script,
)

NGINX_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    "</h1></center><hr><center>nginx</center></body></html>"
)
NEW_BEHAVIOURS = {
    "http_429_too_large": 429,
    "http_502_html": 502,
    "empty_choices": 200,
    "http_403": 403,
    "http_404": 404,
}


def too_large_message(model: str, requested: int) -> str:
    return (
        f"Request too large for {model} in organization org-sim on tokens per min (TPM): "
        f"Limit 30000, Requested {requested}. The input or output tokens must be reduced in "
        "order to run successfully. Visit https://platform.openai.com/account/rate-limits to "
        "learn more."
    )


async def messages(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/v1/messages", json=anthropic_body())


# --- http_429_too_large -----------------------------------------------------------------


async def test_too_large_is_openai_tokens_429_without_retry_after(
    client: httpx.AsyncClient,
) -> None:
    """http_429_too_large: 429, type tokens, code rate_limit_exceeded, no Retry-After."""
    await script(client, {KEY: ["http_429_too_large"]})
    response = await chat(client)
    assert response.status_code == 429
    assert "Retry-After" not in response.headers
    assert response.json() == {
        "error": {
            "message": too_large_message("gpt-test", 30001),
            "type": "tokens",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


async def test_too_large_reports_prompt_plus_output_budget(client: httpx.AsyncClient) -> None:
    """http_429_too_large quotes prompt tokens + max_tokens once that is over the limit."""
    body = openai_body(max_tokens=40_000, model="gpt-big")
    body["messages"][1]["content"] = "[[sim: http_429_too_large]]\n" + "x" * 4000
    response = await chat(client, body)
    chars = sum(len(m["content"]) for m in body["messages"])
    expected = math.ceil(chars / 4) + 40_000
    assert response.json()["error"]["message"] == too_large_message("gpt-big", expected)


async def test_too_large_is_anthropic_413_request_too_large(client: httpx.AsyncClient) -> None:
    """http_429_too_large on /v1/messages is Anthropic's real 413 request_too_large body."""
    await script(client, {KEY: ["http_429_too_large"]})
    response = await messages(client)
    assert response.status_code == 413
    assert response.json() == {
        "type": "error",
        "error": {
            "type": "request_too_large",
            "message": "Request exceeds the maximum allowed number of bytes.",
        },
    }
    (record,) = await requests_seen(client)
    assert (record["behaviour"], record["status"]) == ("http_429_too_large", 413)


# --- http_502_html ----------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["/v1/chat/completions", "/v1/messages"])
async def test_502_html_is_an_nginx_page_on_both_endpoints(
    client: httpx.AsyncClient, endpoint: str
) -> None:
    """http_502_html is a text/html nginx 502 page, not JSON, whatever the dialect."""
    await script(client, {KEY: ["http_502_html"]})
    body = openai_body() if endpoint.endswith("completions") else anthropic_body()
    response = await client.post(endpoint, json=body)
    assert response.status_code == 502
    assert response.headers["Content-Type"].split(";")[0] == "text/html"
    assert response.text == NGINX_502
    assert response.headers["x-sim-behaviour"] == "http_502_html"


# --- empty_choices ----------------------------------------------------------------------


async def test_empty_choices_is_a_200_with_no_choices(client: httpx.AsyncClient) -> None:
    """empty_choices: a well-formed chat.completion whose choices is [] and no output tokens."""
    await script(client, {KEY: ["empty_choices"]})
    response = await chat(client)
    assert response.status_code == 200
    data = response.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == "gpt-test-sim-2026-11"
    assert data["choices"] == []
    assert data["usage"]["completion_tokens"] == 0
    assert data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"]
    (record,) = await requests_seen(client)
    assert (record["behaviour"], record["finish"]) == ("empty_choices", "empty")


async def test_empty_choices_on_anthropic_is_empty_content(client: httpx.AsyncClient) -> None:
    """empty_choices on /v1/messages is a 200 message with content [] and end_turn."""
    await script(client, {KEY: ["empty_choices"]})
    response = await messages(client)
    assert response.status_code == 200
    data = response.json()
    assert data["type"] == "message"
    assert data["content"] == []
    assert data["stop_reason"] == "end_turn"
    assert data["usage"]["output_tokens"] == 0


# --- http_403, http_404 -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "status", "openai_type", "openai_code", "anthropic_type"),
    [
        ("http_403", 403, "invalid_request_error", None, "permission_error"),
        ("http_404", 404, "invalid_request_error", "model_not_found", "not_found_error"),
    ],
)
async def test_403_and_404_in_both_dialects(
    client: httpx.AsyncClient,
    behaviour: str,
    status: int,
    openai_type: str,
    openai_code: str | None,
    anthropic_type: str,
) -> None:
    """http_403 and http_404 carry each dialect's error type (404: model_not_found)."""
    await script(client, {KEY: [behaviour]})
    openai = await chat(client)
    assert openai.status_code == status
    assert openai.json()["error"]["type"] == openai_type
    assert openai.json()["error"]["code"] == openai_code
    anthropic = await messages(client)
    assert anthropic.status_code == status
    assert anthropic.json()["error"]["type"] == anthropic_type


async def test_404_names_the_requested_model(client: httpx.AsyncClient) -> None:
    """http_404 uses OpenAI's wording with the model the client asked for."""
    await script(client, {KEY: ["http_404"]})
    error = (await chat(client, openai_body(model="gpt-nope"))).json()["error"]
    assert error["message"] == (
        "The model `gpt-nope` does not exist or you do not have access to it."
    )


# --- every source of behaviours ---------------------------------------------------------


async def test_single_item_directive_fails_persistently(client: httpx.AsyncClient) -> None:
    """[[sim: http_500]] fails on every attempt: the one item repeats."""
    body = openai_body("[[sim: http_500]]\n" + DOCUMENT)
    responses = [await chat(client, body) for _ in range(5)]
    assert [r.status_code for r in responses] == [500] * 5
    assert [r.headers["x-sim-attempt"] for r in responses] == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize(("name", "status"), NEW_BEHAVIOURS.items())
async def test_new_behaviours_work_in_a_directive(
    client: httpx.AsyncClient, name: str, status: int
) -> None:
    """Each new behaviour can be named in a [[sim: ...]] line, and repeats there."""
    body = openai_body(f"[[sim: {name}]]\n{DOCUMENT}")
    for _ in range(2):
        response = await chat(client, body)
        assert response.status_code == status
        assert response.headers["x-sim-behaviour"] == name


@pytest.mark.parametrize(("name", "status"), NEW_BEHAVIOURS.items())
async def test_new_behaviours_work_in_the_fault_mix(make_sim: Any, name: str, status: int) -> None:
    """Each new behaviour parses as NAME=P in a fault mix and is served from it."""
    async with make_sim(fault_mix=parse_fault_mix(f"{name}=1.0"), seed=3) as (_, client):
        response = await chat(client)
    assert response.status_code == status
    assert response.headers["x-sim-behaviour"] == name


def test_cli_fault_mix_accepts_new_behaviours() -> None:
    """--fault-mix takes the new names, e.g. http_502_html=0.1."""
    parser = argparse.ArgumentParser(prog="streams")
    sim_commands.register(parser.add_subparsers(dest="command", required=True))
    spec = "http_502_html=0.1,http_429_too_large=0.1,empty_choices=0.1,http_403=0.1,http_404=0.1"
    args = parser.parse_args(["simulate-llm", "--fault-mix", spec])
    assert args.fault_mix == {Behaviour(name): 0.1 for name in NEW_BEHAVIOURS}


def test_help_names_new_behaviours_and_outage(capsys: pytest.CaptureFixture[str]) -> None:
    """simulate-llm --help lists every behaviour and the outage and models routes."""
    parser = argparse.ArgumentParser(prog="streams")
    sim_commands.register(parser.add_subparsers(dest="command", required=True))
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate-llm", "--help"])
    text = capsys.readouterr().out
    for behaviour in Behaviour:
        assert behaviour.value in text
    assert "POST /_sim/outage" in text
    assert "GET /v1/models" in text
