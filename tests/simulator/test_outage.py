"""The global outage switch, /_sim/outage: every request fails until the deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.simulator.support import (
    DIRECTED,
    KEY,
    anthropic_body,
    chat,
    openai_body,
    requests_seen,
)


async def outage(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/_sim/outage", json=body)
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


async def wait_until_over(client: httpx.AsyncClient, limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while (await client.get("/_sim/outage")).json()["active"]:
        assert time.monotonic() < deadline, "the outage did not end"
        await asyncio.sleep(0.02)


async def test_outage_fails_every_endpoint_in_its_dialect(client: httpx.AsyncClient) -> None:
    """During an outage completions, messages and models all get its status and error shape."""
    state = await outage(client, status=503, seconds=60)
    assert state["active"] is True
    assert state["status"] == 503
    assert 59 < state["remaining_s"] <= 60
    openai = await chat(client)
    assert openai.status_code == 503
    assert openai.json()["error"]["type"] == "server_error"
    assert openai.headers["x-sim-behaviour"] == "outage"
    anthropic = await client.post("/v1/messages", json=anthropic_body())
    assert anthropic.status_code == 503
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "api_error"
    assert (await client.get("/v1/models")).status_code == 503
    assert (await client.get("/v1/models/gpt-test")).status_code == 503


async def test_outage_requests_are_recorded_and_counted(client: httpx.AsyncClient) -> None:
    """Outage failures are recorded with behaviour outage (key kept, no attempt) and counted."""
    await outage(client, seconds=60)
    await chat(client)
    await client.get("/v1/models")
    completion, listing = await requests_seen(client)
    assert (completion["behaviour"], completion["status"]) == ("outage", 503)
    assert completion["key"] == KEY
    assert completion["model_requested"] == "gpt-test"
    assert completion["attempt"] is None
    assert (listing["endpoint"], listing["behaviour"], listing["status"]) == (
        "models",
        "outage",
        503,
    )
    stats = (await client.get("/_sim/stats")).json()
    assert stats["by_behaviour"] == {"outage": 1}
    assert stats["by_status"] == {"503": 1}
    assert stats["model_listings"]["by_behaviour"] == {"outage": 1}


async def test_outage_ends_at_its_deadline_without_using_attempts(
    client: httpx.AsyncClient,
) -> None:
    """After `seconds` requests succeed again, and the outage consumed no scripted attempt."""
    await outage(client, status=502, seconds=0.3)
    body = openai_body(DIRECTED)
    assert (await chat(client, body)).status_code == 502
    await wait_until_over(client)
    assert (await client.get("/_sim/outage")).json() == {
        "active": False,
        "status": None,
        "remaining_s": 0.0,
    }
    first = await chat(client, body)
    assert first.status_code == 500  # the directive's first item: the outage did not count
    assert first.headers["x-sim-attempt"] == "1"


async def test_outage_without_seconds_lasts_until_delete(client: httpx.AsyncClient) -> None:
    """Seconds omitted: the outage holds (remaining_s null) until DELETE /_sim/outage ends it."""
    state = await outage(client)
    assert state == {"active": True, "status": 503, "remaining_s": None}
    assert (await chat(client)).status_code == 503
    assert (await client.delete("/_sim/outage")).json()["active"] is False
    assert (await chat(client)).status_code == 200


async def test_delete_ends_a_timed_outage_at_once(client: httpx.AsyncClient) -> None:
    """DELETE /_sim/outage ends a timed outage before its deadline."""
    await outage(client, status=500, seconds=600)
    assert (await chat(client)).status_code == 500
    await client.delete("/_sim/outage")
    assert (await chat(client)).status_code == 200


async def test_reset_requests_keeps_the_outage(client: httpx.AsyncClient) -> None:
    """DELETE /_sim/requests forgets records but leaves the outage in force."""
    await outage(client, seconds=60)
    await client.delete("/_sim/requests")
    assert (await client.get("/_sim/outage")).json()["active"] is True
    assert (await chat(client)).status_code == 503


async def test_a_new_outage_replaces_the_old(client: httpx.AsyncClient) -> None:
    """Posting an outage while one is active replaces its status and deadline."""
    await outage(client, status=503)
    state = await outage(client, status=500, seconds=30)
    assert (state["status"], state["active"]) == (500, True)
    assert (await chat(client)).status_code == 500


@pytest.mark.parametrize(
    ("status", "openai_type", "openai_code", "anthropic_type"),
    [
        (401, "invalid_request_error", "invalid_api_key", "authentication_error"),
        (404, "invalid_request_error", "model_not_found", "not_found_error"),
        (429, "server_error", None, "api_error"),
        (529, "server_error", None, "api_error"),
    ],
)
async def test_outage_status_picks_the_error_shape(
    client: httpx.AsyncClient,
    status: int,
    openai_type: str,
    openai_code: str | None,
    anthropic_type: str,
) -> None:
    """401 outages are auth errors, 404 model_not_found, any other status a server error."""
    await outage(client, status=status, seconds=60)
    openai = await chat(client)
    assert openai.status_code == status
    assert (openai.json()["error"]["type"], openai.json()["error"]["code"]) == (
        openai_type,
        openai_code,
    )
    anthropic = await client.post("/v1/messages", json=anthropic_body())
    assert anthropic.status_code == status
    assert anthropic.json()["error"]["type"] == anthropic_type


async def test_404_outage_names_the_model(client: httpx.AsyncClient) -> None:
    """A 404 outage says the requested model does not exist, on completions and models."""
    await outage(client, status=404, seconds=60)
    message = "The model `gpt-x` does not exist or you do not have access to it."
    completion = await chat(client, openai_body(model="gpt-x"))
    assert completion.json()["error"]["message"] == message
    assert (await client.get("/v1/models/gpt-x")).json()["error"]["message"] == message


async def test_outage_comes_before_auth_limits_and_directives(make_sim: Any) -> None:
    """An outage fails requests before auth, the concurrency limit or a directive is looked at."""
    async with make_sim(api_key="sk-sim", max_concurrency=1) as (_, client):
        await outage(client, status=503, seconds=60)
        assert (await chat(client)).status_code == 503
        assert (await chat(client, openai_body("[[sim: explode]]\nx"))).status_code == 503
        bad = await client.post("/v1/chat/completions", content=b"{not json")
        assert bad.status_code == 503
        assert (await client.get("/_sim/stats")).json()["by_behaviour"] == {"outage": 3}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"status": 200}, "400 to 599"),
        ({"status": 600}, "400 to 599"),
        ({"status": "503"}, "400 to 599"),
        ({"status": True}, "400 to 599"),
        ({"seconds": 0}, "> 0"),
        ({"seconds": -1}, "> 0"),
        ({"seconds": "60"}, "> 0"),
        ({"duration": 60}, "unknown outage field 'duration'"),
        ([503], "must be"),
    ],
)
async def test_bad_outage_body_is_400_and_changes_nothing(
    client: httpx.AsyncClient, body: Any, needle: str
) -> None:
    """A POST /_sim/outage body outside {status: 4xx/5xx, seconds: > 0} is a 400."""
    response = await client.post("/_sim/outage", json=body)
    assert response.status_code == 400
    assert needle in response.json()["error"]["message"]
    assert (await client.get("/_sim/outage")).json()["active"] is False


async def test_outage_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    """POST /_sim/outage with a body that is not JSON is a 400; an empty body means defaults."""
    assert (await client.post("/_sim/outage", content=b"{nope")).status_code == 400
    empty = await client.post("/_sim/outage", content=b"")
    assert empty.json() == {"active": True, "status": 503, "remaining_s": None}
