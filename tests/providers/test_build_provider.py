"""``build_provider`` dispatch and the package's public surface."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

import streams.providers
from streams.errors import ConfigError
from streams.providers import (
    PROVIDERS,
    AnthropicProvider,
    OpenAICompatProvider,
    Provider,
    build_provider,
)


def build(kind: str, base_url: str = "https://x.example/v1") -> Provider:
    return build_provider(
        kind,
        base_url=base_url,
        model="m",
        api_key=SecretStr("k"),
        timeout_s=5.0,
        max_connections=8,
    )


@pytest.mark.parametrize(
    ("kind", "cls"), [("openai", OpenAICompatProvider), ("anthropic", AnthropicProvider)]
)
async def test_kind_selects_the_wire_format(kind: str, cls: type[Provider]) -> None:
    """Each kind builds its provider class with the given model."""
    provider = build(kind)
    try:
        assert type(provider) is cls
        assert provider.name == kind
        assert provider.model == "m"
        assert isinstance(provider, Provider)
    finally:
        await provider.aclose()


def test_every_registered_kind_is_named_after_its_wire_format() -> None:
    """The dispatch table's keys are the providers' own ``name``."""
    assert {kind: cls.name for kind, cls in PROVIDERS.items()} == {
        "openai": "openai",
        "anthropic": "anthropic",
    }


def test_unknown_kind_is_a_config_error_with_a_fix() -> None:
    """An unknown kind fails at build time, listing the kinds that exist, on one line."""
    with pytest.raises(ConfigError, match="one of: anthropic, openai") as info:
        build("gemini")
    assert "\n" not in str(info.value)
    assert "'gemini'" in str(info.value)


def test_bad_settings_are_a_config_error() -> None:
    """A base_url without a scheme is rejected when the provider is built."""
    with pytest.raises(ConfigError, match="http"):
        build("openai", base_url="localhost:8000")


def test_public_surface() -> None:
    """``__all__`` lists exactly the supported names, and each exists."""
    assert sorted(streams.providers.__all__) == [
        "AnthropicProvider",
        "CapabilityProfile",
        "ChatMessage",
        "Completion",
        "CompletionRequest",
        "OpenAICompatProvider",
        "PROVIDERS",
        "Provider",
        "SCHEMA_PROFILES",
        "build_provider",
        "profile_for",
        "to_strict_schema",
        "to_tool_input_schema",
        "unenforced",
    ]
    for name in streams.providers.__all__:
        assert hasattr(streams.providers, name)
