"""GET /v1/models and /v1/models/{model}: a health probe that spends no budget."""

from __future__ import annotations

from typing import Any

import httpx

from tests.simulator.support import anthropic_body, chat, openai_body, requests_seen


def model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "simulator"}


async def listed_ids(client: httpx.AsyncClient, **headers: str) -> list[str]:
    response = await client.get("/v1/models", headers=headers)
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()["data"]]


async def test_models_lists_the_default_model_first(client: httpx.AsyncClient) -> None:
    """Before any completion /v1/models is an OpenAI list holding only sim-extractor-1."""
    response = await client.get("/v1/models")
    assert response.json() == {"object": "list", "data": [model("sim-extractor-1")]}


async def test_models_lists_every_model_asked_for_once(client: httpx.AsyncClient) -> None:
    """Models asked for by completions on either endpoint are listed once, first-asked order."""
    await chat(client, openai_body(model="gpt-b"))
    await client.post("/v1/messages", json=anthropic_body())
    await chat(client, openai_body(model="gpt-b"))
    await chat(client, openai_body(model="sim-extractor-1"))
    assert await listed_ids(client) == ["sim-extractor-1", "gpt-b", "claude-test"]


async def test_any_model_id_can_be_fetched(client: httpx.AsyncClient) -> None:
    """GET /v1/models/{model} is 200 for any id, including ids with a slash."""
    for name in ("gpt-never-asked", "openai/gpt-4o"):
        response = await client.get(f"/v1/models/{name}")
        assert response.status_code == 200
        assert response.json() == model(name)


async def test_model_requests_are_recorded_but_spend_nothing(client: httpx.AsyncClient) -> None:
    """Models requests are recorded as endpoint models, outside the completions total."""
    await client.get("/v1/models")
    await client.get("/v1/models/gpt-test")
    listing, fetch = await requests_seen(client)
    assert (listing["endpoint"], listing["behaviour"], listing["status"]) == (
        "models",
        "models",
        200,
    )
    assert fetch["model_requested"] == "gpt-test"
    assert fetch["key"] is None
    stats = (await client.get("/_sim/stats")).json()
    assert stats["total"] == 0
    assert stats["by_endpoint"] == {}
    assert stats["model_listings"] == {
        "total": 2,
        "by_behaviour": {"models": 2},
        "by_status": {"200": 2},
    }
    assert (await chat(client)).headers["x-sim-attempt"] == "1"


async def test_requests_can_be_filtered_by_endpoint(client: httpx.AsyncClient) -> None:
    """GET /_sim/requests?endpoint=NAME keeps only that endpoint's records."""
    await client.get("/v1/models")
    await chat(client)
    only = (await client.get("/_sim/requests", params={"endpoint": "openai"})).json()
    assert [r["endpoint"] for r in only["requests"]] == ["openai"]


async def test_reset_forgets_models_asked_for(client: httpx.AsyncClient) -> None:
    """DELETE /_sim/requests forgets which models were asked for."""
    await chat(client)
    await client.delete("/_sim/requests")
    assert await listed_ids(client) == ["sim-extractor-1"]


async def test_models_take_either_dialects_api_key(make_sim: Any) -> None:
    """With api_key set /v1/models takes Bearer or x-api-key, else a 401 in the client's shape."""
    async with make_sim(api_key="sk-sim") as (_, client):
        missing = await client.get("/v1/models")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "invalid_api_key"
        wrong = await client.get(
            "/v1/models/gpt-test", headers={"x-api-key": "nope", "anthropic-version": "2023-06-01"}
        )
        assert wrong.status_code == 401
        assert wrong.json()["type"] == "error"
        assert wrong.json()["error"]["type"] == "authentication_error"
        assert await listed_ids(client, Authorization="Bearer sk-sim") == ["sim-extractor-1"]
        assert await listed_ids(client, **{"x-api-key": "sk-sim"}) == ["sim-extractor-1"]
        assert [r["behaviour"] for r in await requests_seen(client)][:2] == [
            "rejected:auth",
            "rejected:auth",
        ]
