"""Per-schema parts are built once: the strict transform and the tool are not per call."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

import streams.providers.anthropic as anthropic_module
import streams.providers.openai_compat as openai_module
from streams.errors import ConfigError
from streams.providers._schema_cache import SchemaCache, schema_fragment
from streams.providers.strict_schema import to_strict_schema, to_tool_input_schema

from ._support import (
    AnthropicFactory,
    OpenAIFactory,
    anthropic_answer,
    invoice_schema,
    make_request,
    openai_answer,
)


class Counting:
    """Wraps a transform and counts its calls (a real function, not a mock)."""

    def __init__(self, transform: Any) -> None:
        self.transform = transform
        self.calls = 0

    def __call__(self, schema: dict[str, Any], *profile: Any) -> dict[str, Any]:
        self.calls += 1
        result: dict[str, Any] = self.transform(schema, *profile)
        return result


@pytest.fixture
def strict_calls(monkeypatch: pytest.MonkeyPatch) -> Counting:
    counting = Counting(to_strict_schema)
    monkeypatch.setattr(openai_module, "to_strict_schema", counting)
    return counting


@pytest.fixture
def tool_calls(monkeypatch: pytest.MonkeyPatch) -> Counting:
    counting = Counting(to_tool_input_schema)
    monkeypatch.setattr(anthropic_module, "to_tool_input_schema", counting)
    return counting


async def test_openai_transforms_each_schema_once(
    make_openai: OpenAIFactory, strict_calls: Counting
) -> None:
    """Five calls with one schema run the strict transform once; a second schema once more."""
    provider, server = make_openai(lambda r: httpx.Response(200, json=openai_answer()))
    request = make_request()
    for _ in range(5):
        await provider.complete(request)
    assert strict_calls.calls == 1
    other = {"type": "object", "properties": {"a": {"type": "string"}}}
    await provider.complete(make_request(schema_name="other", json_schema=other))
    await provider.complete(make_request(schema_name="other", json_schema=other))
    assert strict_calls.calls == 2
    await provider.complete(request)
    assert strict_calls.calls == 2
    assert server.last_json()["response_format"]["json_schema"]["name"] == "invoice"


async def test_anthropic_builds_each_tool_once(
    make_anthropic: AnthropicFactory, tool_calls: Counting
) -> None:
    """Five calls with one schema build the tool input schema once."""
    provider, server = make_anthropic(lambda r: httpx.Response(200, json=anthropic_answer()))
    for _ in range(5):
        await provider.complete(make_request())  # a new, equal schema dict each time
    assert tool_calls.calls == 1
    assert server.last_json()["tools"][0]["name"] == "invoice"


async def test_a_changed_schema_under_the_same_name_is_rebuilt(
    make_openai: OpenAIFactory, strict_calls: Counting
) -> None:
    """The cache never serves a schema it was not given, even under a known name."""
    provider, server = make_openai(lambda r: httpx.Response(200, json=openai_answer()))
    await provider.complete(make_request())
    changed = invoice_schema()
    changed["properties"]["number"]["description"] = "A different contract"
    await provider.complete(make_request(json_schema=changed))
    assert strict_calls.calls == 2
    schema = server.last_json()["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["number"]["description"].startswith("A different contract")


def test_identity_then_equality_hits() -> None:
    """The same dict is a hit; an equal copy is a hit; a different dict rebuilds."""
    built: list[str] = []

    def build(name: str, schema: dict[str, Any]) -> str:
        built.append(name)
        return f"{name}:{len(schema)}"

    cache: SchemaCache[str] = SchemaCache(build)
    schema = {"type": "object"}
    assert cache.get("a", schema) == "a:1"
    assert cache.get("a", schema) == "a:1"
    assert cache.get("a", copy.deepcopy(schema)) == "a:1"
    assert built == ["a"]
    assert cache.get("a", {"type": "object", "title": "x"}) == "a:2"
    assert built == ["a", "a"]
    assert len(cache) == 1


def test_a_failed_build_is_not_cached() -> None:
    """A schema that cannot be transformed fails on every call, never half-cached."""

    def build(name: str, schema: dict[str, Any]) -> str:
        raise ConfigError("cannot express it")

    cache: SchemaCache[str] = SchemaCache(build)
    for _ in range(2):
        with pytest.raises(ConfigError):
            cache.get("a", {})
    assert len(cache) == 0


def test_an_unserialisable_schema_is_a_config_error() -> None:
    """A schema orjson cannot write fails with the schema's name, not a TypeError."""
    with pytest.raises(ConfigError, match="'invoice'"):
        schema_fragment("invoice", {"default": object()})


async def test_unexpressible_schema_still_fails_each_call(make_openai: OpenAIFactory) -> None:
    """Strict mode's ConfigError for a free-form map still reaches the caller, every time."""
    provider, server = make_openai(lambda r: httpx.Response(200, json=openai_answer()))
    free_form = {"type": "object", "additionalProperties": {"type": "string"}}
    for _ in range(2):
        with pytest.raises(ConfigError):
            await provider.complete(make_request(schema_name="map", json_schema=free_form))
    assert server.requests == []
