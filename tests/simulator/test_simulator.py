"""The LLM simulator over real HTTP: behaviours, scripting, strict schemas, limits, records."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.errors import ConfigError
from streams.simulator import (
    Behaviour,
    SimulatorConfig,
    SimulatorThread,
    check_strict_schema,
    load_fixtures,
    parse_fault_mix,
)
from streams.simulator import commands as sim_commands
from streams.textnorm import text_sha256
from tests.simulator.support import (
    ANSWER,
    DIRECTED,
    DIRECTED_ANSWER,
    DOCUMENT,
    KEY,
    STRICT_SCHEMA,
    anthropic_body,
    chat,
    content,
    openai_body,
    requests_seen,
    script,
    wrap,
)

# --- valid answers and the fixture key ------------------------------------------------


async def test_valid_returns_fixture_answer_with_reported_model_and_usage(
    client: httpx.AsyncClient,
) -> None:
    """A known document gets its fixture answer, a suffixed model and char/4 token counts."""
    body = openai_body()
    response = await chat(client, body)
    assert response.status_code == 200
    data = response.json()
    assert json.loads(content(response)) == ANSWER
    assert data["object"] == "chat.completion"
    assert data["id"].startswith("chatcmpl-")
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["model"] == "gpt-test-sim-2026-11"
    chars = sum(len(m["content"]) for m in body["messages"])
    usage = data["usage"]
    assert usage["prompt_tokens"] == math.ceil(chars / 4)
    assert usage["completion_tokens"] == math.ceil(len(content(response)) / 4)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_document_key_is_normalised_text(client: httpx.AsyncClient) -> None:
    """CRLF line endings and trailing spaces do not change which fixture a document hits."""
    messy = DOCUMENT.replace("\n", "  \r\n") + "\r\n"
    assert json.loads(content(await chat(client, openai_body(messy)))) == ANSWER


async def test_unknown_document_answers_empty_object(client: httpx.AsyncClient) -> None:
    """Without a fixture, even a valid answer is {} (which fails any contract)."""
    response = await chat(client, openai_body("a document nobody has seen"))
    assert response.status_code == 200
    assert content(response) == "{}"


async def test_model_suffix_is_configurable(make_sim: Any) -> None:
    """--model-suffix changes the reported model."""
    async with make_sim(model_suffix="-2027-01") as (_, client):
        assert (await chat(client)).json()["model"] == "gpt-test-2027-01"


# --- each behaviour -------------------------------------------------------------------


async def test_malformed_has_no_recoverable_json(client: httpx.AsyncClient) -> None:
    """malformed is prose around JSON without closing braces."""
    await script(client, {KEY: ["malformed"]})
    text = content(await chat(client))
    assert "}" not in text
    assert text.startswith("Sure!")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_invalid_keeps_types_but_breaks_total_and_date(client: httpx.AsyncClient) -> None:
    """invalid skews the total and replaces the date with a non-date, keeping JSON types."""
    await script(client, {KEY: ["invalid"]})
    broken = json.loads(content(await chat(client)))
    assert broken.keys() == ANSWER.keys()
    assert broken["total"] != ANSWER["total"]
    assert isinstance(broken["total"], float)
    assert broken["issue_date"] == "not-a-date"
    assert broken["lines"] == ANSWER["lines"]


async def test_truncated_is_first_half_with_length_finish(client: httpx.AsyncClient) -> None:
    """truncated returns the first half of the valid JSON with finish_reason=length."""
    await script(client, {KEY: ["truncated"]})
    response = await chat(client)
    full = json.dumps(ANSWER, ensure_ascii=False)
    assert content(response) == full[: len(full) // 2]
    assert response.json()["choices"][0]["finish_reason"] == "length"
    assert response.json()["usage"]["completion_tokens"] == 2000


async def test_max_tokens_cuts_a_long_answer(client: httpx.AsyncClient) -> None:
    """An answer longer than max_tokens*4 chars is cut there, finish_reason=length."""
    response = await chat(client, openai_body(max_tokens=5))
    assert content(response) == json.dumps(ANSWER)[:20]
    assert response.json()["choices"][0]["finish_reason"] == "length"
    assert response.json()["usage"]["completion_tokens"] == 5


async def test_unknown_behaviour_answers_empty_object(client: httpx.AsyncClient) -> None:
    """unknown answers {} even for a document with a fixture."""
    await script(client, {KEY: ["unknown"]})
    assert content(await chat(client)) == "{}"


@pytest.mark.parametrize(
    ("behaviour", "status", "error_type"),
    [
        ("http_429", 429, "requests"),
        ("http_500", 500, "server_error"),
        ("http_400", 400, "invalid_request_error"),
        ("http_401", 401, "invalid_request_error"),
    ],
)
async def test_http_behaviours_return_openai_errors(
    client: httpx.AsyncClient, behaviour: str, status: int, error_type: str
) -> None:
    """Each http_* behaviour returns its status with an OpenAI-style error body."""
    await script(client, {KEY: [behaviour]})
    response = await chat(client)
    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type
    assert ("Retry-After" in response.headers) == (status == 429)


async def test_http_429_retry_after_is_configurable(make_sim: Any) -> None:
    """retry_after_s sets the Retry-After header of a scripted 429."""
    async with make_sim(retry_after_s=7, script={KEY: ["http_429"]}) as (_, client):
        response = await chat(client)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


async def test_hang_sleeps_then_answers(make_sim: Any) -> None:
    """hang waits hang_s before a valid answer."""
    async with make_sim(hang_s=0.3, script={KEY: ["hang"]}) as (_, client):
        started = time.monotonic()
        response = await chat(client)
    assert time.monotonic() - started >= 0.3
    assert json.loads(content(response)) == ANSWER


async def test_hanging_request_does_not_block_shutdown(make_sim: Any) -> None:
    """Stopping the simulator wakes a 30 s hang instead of waiting for it."""
    started = time.monotonic()
    async with make_sim(script={KEY: ["hang"]}) as (_, client):
        pending = asyncio.create_task(chat(client))
        for _ in range(500):
            if (await client.get("/_sim/stats")).json()["in_flight"]:
                break
            await asyncio.sleep(0.01)
    with contextlib.suppress(httpx.HTTPError):
        await pending
    assert time.monotonic() - started < 10


async def test_latency_is_added(make_sim: Any) -> None:
    """latency_ms delays every answer."""
    async with make_sim(latency_ms=200) as (_, client):
        started = time.monotonic()
        await chat(client)
    assert time.monotonic() - started >= 0.2


# --- scripting --------------------------------------------------------------------------


async def test_directive_scripts_each_attempt_and_last_repeats(client: httpx.AsyncClient) -> None:
    """[[sim: http_500, malformed, valid]] drives attempts 1..3; attempt 4 repeats valid."""
    body = openai_body(DIRECTED)
    first, second, third, fourth = [await chat(client, body) for _ in range(4)]
    assert first.status_code == 500
    assert first.headers["x-sim-attempt"] == "1"
    assert "}" not in content(second)
    assert json.loads(content(third)) == DIRECTED_ANSWER
    assert json.loads(content(fourth)) == DIRECTED_ANSWER
    assert fourth.headers["x-sim-attempt"] == "4"


async def test_directive_beats_runtime_script(client: httpx.AsyncClient) -> None:
    """A directive in the document wins over a runtime rule for the same key."""
    await script(client, {text_sha256(DIRECTED): ["valid"]})
    assert (await chat(client, openai_body(DIRECTED))).status_code == 500


async def test_bad_directive_is_a_400_naming_it(client: httpx.AsyncClient) -> None:
    """A directive with an unknown behaviour is rejected with a message naming it."""
    response = await chat(client, openai_body("[[sim: explode]]\nbody"))
    assert response.status_code == 400
    assert "explode" in response.json()["error"]["message"]


async def test_runtime_script_merges_and_clears(client: httpx.AsyncClient) -> None:
    """POST /_sim/script merges rules; DELETE clears them and answers turn valid."""
    other = text_sha256("other")
    await script(client, {KEY: ["http_429", "valid"]})
    merged = (await script(client, {other: ["http_500"]})).json()["rules"]
    assert merged == {KEY: ["http_429", "valid"], other: ["http_500"]}
    assert (await client.get("/_sim/script")).json()["rules"] == merged
    assert (await chat(client)).status_code == 429
    assert (await chat(client)).status_code == 200
    assert (await client.delete("/_sim/script")).json() == {"rules": {}}
    await client.delete("/_sim/requests")
    assert (await chat(client)).status_code == 200


async def test_runtime_script_rejects_unknown_behaviour(client: httpx.AsyncClient) -> None:
    """A script naming an unknown behaviour is a 400 and changes nothing."""
    response = await script(client, {KEY: ["valid", "sometimes"]})
    assert response.status_code == 400
    assert "sometimes" in response.json()["error"]["message"]
    assert (await client.get("/_sim/script")).json() == {"rules": {}}


async def test_attempts_count_across_endpoints(client: httpx.AsyncClient) -> None:
    """The attempt counter is per document, shared by the OpenAI and Anthropic endpoints."""
    await script(client, {KEY: ["http_500", "valid"]})
    assert (await chat(client)).status_code == 500
    response = await client.post("/v1/messages", json=anthropic_body())
    assert response.status_code == 200
    assert response.headers["x-sim-attempt"] == "2"


async def test_reset_requests_restarts_attempts(client: httpx.AsyncClient) -> None:
    """DELETE /_sim/requests forgets records and attempt counters."""
    await script(client, {KEY: ["http_500", "valid"]})
    assert (await chat(client)).status_code == 500
    await client.delete("/_sim/requests")
    assert await requests_seen(client) == []
    assert (await chat(client)).status_code == 500


async def _behaviours(client: httpx.AsyncClient, documents: list[str]) -> list[str]:
    seen = []
    for text in documents:
        response = await chat(client, openai_body(text))
        seen.append(response.headers["x-sim-behaviour"])
    return seen


async def test_fault_mix_is_reproducible_per_seed(make_sim: Any) -> None:
    """The same seed gives the same behaviour per (document, attempt); another seed differs."""
    mix = parse_fault_mix("http_500=0.3,malformed=0.2,invalid=0.1")
    documents = [f"document {i}" for i in range(60)]
    runs = []
    for seed in (7, 7, 8):
        async with make_sim(fault_mix=mix, seed=seed) as (_, client):
            runs.append(await _behaviours(client, documents))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


async def test_fault_mix_proportions_are_close(make_sim: Any) -> None:
    """Over many documents each behaviour's share is near its probability."""
    mix = {Behaviour.HTTP_500: 0.3, Behaviour.MALFORMED: 0.2}
    async with make_sim(fault_mix=mix, seed=1) as (_, client):
        counts = Counter(await _behaviours(client, [f"doc {i}" for i in range(400)]))
    assert abs(counts["http_500"] / 400 - 0.3) < 0.07
    assert abs(counts["malformed"] / 400 - 0.2) < 0.07
    assert abs(counts["valid"] / 400 - 0.5) < 0.07


async def test_runtime_script_beats_fault_mix(make_sim: Any) -> None:
    """A runtime rule overrides the fault mix for its document."""
    async with make_sim(fault_mix={Behaviour.HTTP_500: 1.0}, script={KEY: ["valid"]}) as (
        _,
        client,
    ):
        assert (await chat(client)).status_code == 200
        assert (await chat(client, openai_body("unscripted"))).status_code == 500


# --- strict schemas ---------------------------------------------------------------------


def _broken(edit: str) -> dict[str, Any]:
    schema = copy.deepcopy(STRICT_SCHEMA)
    props = schema["properties"]
    if edit == "minimum":
        props["total"]["minimum"] = 0
    elif edit == "format":
        props["issue_date"]["format"] = "date"
    elif edit == "optional":
        schema["required"].remove("total")
    elif edit == "open_object":
        del schema["$defs"]["Line"]["additionalProperties"]
    elif edit == "ref_sibling":
        props["lines"]["items"]["description"] = "a line"
    elif edit == "default":
        props["currency"]["default"] = None
    return schema


@pytest.mark.parametrize(
    ("edit", "context", "needle"),
    [
        ("minimum", "('properties', 'total')", "'minimum' is not permitted"),
        ("format", "('properties', 'issue_date')", "'format' is not permitted"),
        ("optional", "()", "Missing 'total'"),
        ("open_object", "('$defs', 'Line')", "'additionalProperties' is required"),
        ("ref_sibling", "('properties', 'lines', 'items')", "$ref cannot have keywords"),
        ("default", "('properties', 'currency')", "'default' is not permitted"),
    ],
)
async def test_strict_schema_violations_are_400_naming_the_path(
    client: httpx.AsyncClient, edit: str, context: str, needle: str
) -> None:
    """A strict response_format outside OpenAI's strict subset is a 400 naming the path."""
    response = await chat(client, openai_body(schema=_broken(edit)))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json_schema"
    assert error["param"] == "response_format"
    assert f"In context={context}" in error["message"]
    assert needle in error["message"]
    assert (await requests_seen(client))[-1]["behaviour"] == "rejected:schema"


async def test_non_strict_schema_is_answered_and_recorded(client: httpx.AsyncClient) -> None:
    """Without strict (or without response_format) the request is answered; the record says so."""
    assert (await chat(client, openai_body(schema=_broken("minimum"), strict=False))).is_success
    assert (await chat(client, openai_body(schema=None))).is_success
    assert (await chat(client)).is_success
    flags = [r["strict_response_format"] for r in await requests_seen(client)]
    assert flags == [False, False, True]


def test_strict_checker_accepts_the_strict_subset() -> None:
    """$defs, $ref, anyOf, enum, const, title and description pass the strict check."""
    schema = copy.deepcopy(STRICT_SCHEMA)
    schema["properties"]["kind"] = {"const": "invoice", "type": "string"}
    schema["required"].append("kind")
    assert check_strict_schema(schema) == []
    assert check_strict_schema({"anyOf": [STRICT_SCHEMA]})[0].context == ()


# --- limits and auth --------------------------------------------------------------------


async def test_concurrency_limit_returns_429_with_retry_after(make_sim: Any) -> None:
    """Requests beyond max_concurrency in flight get 429 with Retry-After."""
    async with make_sim(max_concurrency=2, latency_ms=800) as (_, client):
        responses = await asyncio.gather(*(chat(client) for _ in range(5)))
        stats = (await client.get("/_sim/stats")).json()
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429, 429]
    assert all(r.headers["Retry-After"] == "1" for r in responses if r.status_code == 429)
    assert stats["by_behaviour"]["rejected:concurrency"] == 3


async def test_api_key_is_required_per_endpoint(make_sim: Any) -> None:
    """With api_key set: Bearer for OpenAI, x-api-key for Anthropic, else 401."""
    async with make_sim(api_key="sk-sim") as (_, client):
        assert (await chat(client)).status_code == 401
        wrong = await client.post(
            "/v1/chat/completions", json=openai_body(), headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        right = await client.post(
            "/v1/chat/completions", json=openai_body(), headers={"Authorization": "Bearer sk-sim"}
        )
        assert right.status_code == 200
        bearer = await client.post(
            "/v1/messages", json=anthropic_body(), headers={"Authorization": "Bearer sk-sim"}
        )
        assert bearer.status_code == 401
        assert bearer.json()["error"]["type"] == "authentication_error"
        keyed = await client.post(
            "/v1/messages", json=anthropic_body(), headers={"x-api-key": "sk-sim"}
        )
        assert keyed.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": "x"}]},
        {"model": "m", "messages": []},
        {"model": "m", "messages": [{"role": "system", "content": "no user"}]},
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
    ],
)
async def test_malformed_requests_are_400(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    """A body the real API would refuse gets a 400, not an answer."""
    response = await chat(client, body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_non_json_body_is_400(client: httpx.AsyncClient) -> None:
    """A body that is not JSON is a 400."""
    response = await client.post("/v1/chat/completions", content=b"{not json")
    assert response.status_code == 400


# --- Anthropic ---------------------------------------------------------------------------


async def test_anthropic_answers_with_the_forced_tool(client: httpx.AsyncClient) -> None:
    """/v1/messages returns the fixture answer as a tool_use input, stop_reason tool_use."""
    body = anthropic_body()
    response = await client.post("/v1/messages", json=body)
    assert response.status_code == 200
    data = response.json()
    assert data["type"] == "message"
    assert data["model"] == "claude-test-sim-2026-11"
    assert data["stop_reason"] == "tool_use"
    (block,) = data["content"]
    assert block["type"] == "tool_use"
    assert block["name"] == "record_invoice"
    assert block["id"].startswith("toolu_")
    assert block["input"] == ANSWER
    chars = len(body["system"]) + len(wrap(DOCUMENT))
    assert data["usage"]["input_tokens"] == math.ceil(chars / 4)
    assert data["usage"]["output_tokens"] == math.ceil(len(json.dumps(ANSWER)) / 4)


async def test_anthropic_max_tokens_stops_early(client: httpx.AsyncClient) -> None:
    """A small max_tokens gives stop_reason max_tokens with a partial tool input."""
    response = await client.post("/v1/messages", json=anthropic_body(max_tokens=5))
    data = response.json()
    assert data["stop_reason"] == "max_tokens"
    assert data["usage"]["output_tokens"] == 5
    assert data["content"][0]["input"] == {"invoice_number": "INV-42", "issue_date": "2026-03-01"}


async def test_anthropic_truncated_behaviour(client: httpx.AsyncClient) -> None:
    """truncated on /v1/messages is stop_reason max_tokens."""
    await script(client, {KEY: ["truncated"]})
    response = await client.post("/v1/messages", json=anthropic_body())
    assert response.json()["stop_reason"] == "max_tokens"


async def test_anthropic_malformed_is_prose_not_a_tool_call(client: httpx.AsyncClient) -> None:
    """malformed on /v1/messages is a text block and end_turn: no tool input to parse."""
    await script(client, {KEY: ["malformed"]})
    data = (await client.post("/v1/messages", json=anthropic_body())).json()
    assert data["stop_reason"] == "end_turn"
    assert [b["type"] for b in data["content"]] == ["text"]


async def test_anthropic_errors_use_anthropic_shape(client: httpx.AsyncClient) -> None:
    """A scripted 429 on /v1/messages has Anthropic's error body and Retry-After."""
    await script(client, {KEY: ["http_429"]})
    response = await client.post("/v1/messages", json=anthropic_body())
    assert response.status_code == 429
    assert response.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": response.json()["error"]["message"]},
    }
    assert response.headers["Retry-After"] == "1"


async def test_anthropic_requires_max_tokens(client: httpx.AsyncClient) -> None:
    """/v1/messages without max_tokens is a 400, as on the real API."""
    body = anthropic_body()
    del body["max_tokens"]
    assert (await client.post("/v1/messages", json=body)).status_code == 400


# --- observability -----------------------------------------------------------------------


async def test_requests_are_recorded_in_full(client: httpx.AsyncClient) -> None:
    """/_sim/requests lists key, attempt, behaviour, endpoint, model, strict flag and messages."""
    body = openai_body()
    body["messages"] += [
        {"role": "assistant", "content": "{}"},
        {"role": "user", "content": "total: field required"},
    ]
    before = time.time()
    await chat(client, body)
    await client.post("/v1/messages", json=anthropic_body())
    openai, anthropic = await requests_seen(client)
    assert openai["key"] == KEY
    assert openai["attempt"] == 1
    assert openai["behaviour"] == "valid"
    assert openai["endpoint"] == "openai"
    assert openai["status"] == 200
    assert openai["model_requested"] == "gpt-test"
    assert openai["model_reported"] == "gpt-test-sim-2026-11"
    assert openai["strict_response_format"] is True
    assert openai["fixture"] is True
    assert openai["message_count"] == 4
    assert openai["messages"] == body["messages"]
    assert openai["received_at"] >= before
    assert anthropic["endpoint"] == "anthropic"
    assert anthropic["attempt"] == 2
    assert anthropic["tool_name"] == "record_invoice"
    assert anthropic["system"] == "Extract the invoice."
    only = (await client.get("/_sim/requests", params={"key": "nope"})).json()["requests"]
    assert only == []


async def test_stats_count_by_behaviour(client: httpx.AsyncClient) -> None:
    """/_sim/stats counts requests by behaviour, status and endpoint."""
    await script(client, {KEY: ["http_500", "malformed", "valid"]})
    for _ in range(4):
        await chat(client)
    stats = (await client.get("/_sim/stats")).json()
    assert stats["total"] == 4
    assert stats["by_behaviour"] == {"http_500": 1, "malformed": 1, "valid": 2}
    assert stats["by_status"] == {"500": 1, "200": 3}
    assert stats["by_endpoint"] == {"openai": 4}


async def test_healthz_reports_fixture_count(client: httpx.AsyncClient) -> None:
    """/healthz is ok and counts the loaded fixtures (pairs only)."""
    assert (await client.get("/healthz")).json() == {"status": "ok", "fixtures": 2}


# --- running it -------------------------------------------------------------------------


def test_simulator_thread_serves_sync_callers(samples: Path) -> None:
    """SimulatorThread.start() returns a live URL; stop() shuts it down."""
    sim = SimulatorThread(SimulatorConfig(fixture_dirs=[samples]))
    url = sim.start()
    try:
        response = httpx.post(f"{url}/v1/chat/completions", json=openai_body(), timeout=10)
        assert json.loads(content(response)) == ANSWER
    finally:
        sim.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)


def test_simulator_thread_reports_startup_errors(tmp_path: Path) -> None:
    """A bad fixtures directory surfaces from start() as a ConfigError."""
    with pytest.raises(ConfigError, match="does not exist"):
        SimulatorThread(SimulatorConfig(fixture_dirs=[tmp_path / "missing"])).start()


# --- configuration ----------------------------------------------------------------------


def test_conflicting_fixtures_are_refused(samples: Path, tmp_path: Path) -> None:
    """The same document with two different answers is a ConfigError."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "copy.txt").write_text(DOCUMENT + "\n", encoding="utf-8")
    (other / "copy.json").write_text('{"total": 1}', encoding="utf-8")
    with pytest.raises(ConfigError, match="different answers"):
        load_fixtures([samples, other])


def test_fixture_answer_must_be_an_object(tmp_path: Path) -> None:
    """A fixture answer that is not a JSON object is a ConfigError."""
    (tmp_path / "a.txt").write_text("a", encoding="utf-8")
    (tmp_path / "a.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError, match="JSON object"):
        load_fixtures([tmp_path])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("http_500=0.7,malformed=0.5", "more than 1"),
        ("explode=0.1", "unknown behaviour"),
        ("http_500", "NAME=PROBABILITY"),
        ("http_500=lots", "not a number"),
        ("http_500=-0.1", "in \\[0, 1\\]"),
    ],
)
def test_bad_fault_mix_is_refused(spec: str, message: str) -> None:
    """A fault mix that is not NAME=P items with probabilities summing to <= 1 is refused."""
    with pytest.raises(ConfigError, match=message):
        parse_fault_mix(spec)


def test_config_accepts_string_behaviour_names() -> None:
    """fault_mix and script take plain behaviour names and store Behaviours."""
    by_name: Any = {"http_500": 0.1}
    config = SimulatorConfig(fault_mix=by_name, script={"k": ["http_429", "valid"]})
    assert config.fault_mix == {Behaviour.HTTP_500: 0.1}
    assert config.script == {"k": (Behaviour.HTTP_429, Behaviour.VALID)}
    with pytest.raises(ConfigError):
        SimulatorConfig(max_concurrency=0)


@pytest.fixture
def cli() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streams")
    sim_commands.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_parses_every_option(cli: argparse.ArgumentParser) -> None:
    """simulate-llm accepts every option, with the documented defaults."""
    args = cli.parse_args(["simulate-llm", "--fixtures", "a", "--fixtures", "b"])
    assert (args.host, args.port, args.hang_s, args.fault_mix) == ("127.0.0.1", 8700, 30.0, {})
    assert args.fixtures == [Path("a"), Path("b")]
    options = {
        "--fault-mix": "http_500=0.2,hang=0.005",
        "--seed": "7",
        "--latency-ms": "5",
        "--max-concurrency": "3",
        "--api-key": "k",
        "--model-suffix": "-x",
        "--retry-after-s": "2",
        "--record-limit": "9",
    }
    args = cli.parse_args(["simulate-llm", *(f"{k}={v}" for k, v in options.items())])
    assert args.fault_mix == {Behaviour.HTTP_500: 0.2, Behaviour.HANG: 0.005}
    assert (args.seed, args.latency_ms, args.max_concurrency) == (7, 5.0, 3)
    assert (args.api_key, args.model_suffix, args.retry_after_s, args.record_limit) == (
        "k",
        "-x",
        2,
        9,
    )


def test_cli_bad_value_is_one_line_error(
    cli: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad option value exits 2 with a one-line error and no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(["simulate-llm", "--fault-mix", "http_500=2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --fault-mix: fault mix probability for http_500" in err
    assert "Traceback" not in err


def test_public_surface_is_pinned() -> None:
    """streams.simulator exports exactly its documented API."""
    import streams.simulator as simulator

    assert set(simulator.__all__) == {
        "DEFAULT_MODEL_SUFFIX",
        "STRICT_UNSUPPORTED_KEYWORDS",
        "Behaviour",
        "RequestRecord",
        "RunningSimulator",
        "SimulatorConfig",
        "SimulatorThread",
        "StrictViolation",
        "build_app",
        "check_strict_schema",
        "load_fixtures",
        "parse_fault_mix",
        "parse_script",
        "serve",
    }
    assert all(hasattr(simulator, name) for name in simulator.__all__)
