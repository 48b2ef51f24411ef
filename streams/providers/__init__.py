"""LLM providers: one module per wire format, all behind :class:`Provider`.

Build one from settings::

    provider = build_provider("openai", base_url="http://localhost:8000/v1",
                              model="qwen2.5-7b", api_key=None,
                              timeout_s=60.0, max_connections=64)
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import SecretStr

from streams.errors import ConfigError
from streams.providers.anthropic import AnthropicProvider
from streams.providers.base import ChatMessage, Completion, CompletionRequest, Provider
from streams.providers.openai_compat import OpenAICompatProvider
from streams.providers.profiles import PROFILES as SCHEMA_PROFILES
from streams.providers.profiles import CapabilityProfile, profile_for, unenforced
from streams.providers.strict_schema import to_strict_schema, to_tool_input_schema

__all__ = [
    "PROVIDERS",
    "SCHEMA_PROFILES",
    "AnthropicProvider",
    "CapabilityProfile",
    "ChatMessage",
    "Completion",
    "CompletionRequest",
    "OpenAICompatProvider",
    "Provider",
    "build_provider",
    "profile_for",
    "to_strict_schema",
    "to_tool_input_schema",
    "unenforced",
]

#: Provider kind (as written in settings) -> implementation.
PROVIDERS: Mapping[str, type[OpenAICompatProvider] | type[AnthropicProvider]] = {
    "openai": OpenAICompatProvider,
    "anthropic": AnthropicProvider,
}


def build_provider(
    kind: str,
    *,
    base_url: str,
    model: str,
    api_key: SecretStr | None,
    timeout_s: float,
    max_connections: int,
    schema_profile: str | None = None,
) -> Provider:
    """The provider for ``kind``, sending schemas as ``schema_profile`` says (see :mod:`.profiles`).

    Raises :class:`~streams.errors.ConfigError` for an unknown kind or bad settings.
    """
    try:
        cls = PROVIDERS[kind]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(
            f"unknown provider kind {kind!r}; set the provider to one of: {known}"
        ) from None
    if cls is AnthropicProvider:
        if schema_profile not in (None, AnthropicProvider.profile.name):
            raise ConfigError(
                f"schema profile {schema_profile!r} is not for the anthropic provider; "
                f"drop llm.schema_profile or set it to {AnthropicProvider.profile.name!r}"
            )
        return AnthropicProvider(
            base_url, model, api_key, timeout_s=timeout_s, max_connections=max_connections
        )
    if schema_profile == AnthropicProvider.profile.name:
        raise ConfigError(
            f"schema profile {schema_profile!r} is for the anthropic provider; set "
            "llm.schema_profile to what the OpenAI-compatible server enforces (e.g. llamacpp)"
        )
    return OpenAICompatProvider(
        base_url,
        model,
        api_key,
        timeout_s=timeout_s,
        max_connections=max_connections,
        profile=None if schema_profile is None else profile_for(schema_profile),
    )
