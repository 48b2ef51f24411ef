"""Provider factories wired to a scripted ``httpx.MockTransport``; closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from streams.providers import AnthropicProvider, OpenAICompatProvider

from ._support import CANARY, AnthropicFactory, Handler, OpenAIFactory, Server


@pytest.fixture
async def make_openai() -> AsyncIterator[OpenAIFactory]:
    made: list[OpenAICompatProvider] = []

    def make(
        respond: Handler, *, api_key: SecretStr | None = CANARY, **kwargs: Any
    ) -> tuple[OpenAICompatProvider, Server]:
        server = Server(respond)
        provider = OpenAICompatProvider(
            "https://llm.example/v1", "gpt-4o", api_key, transport=server.transport, **kwargs
        )
        made.append(provider)
        return provider, server

    yield make
    for provider in made:
        await provider.aclose()


@pytest.fixture
async def make_anthropic() -> AsyncIterator[AnthropicFactory]:
    made: list[AnthropicProvider] = []

    def make(
        respond: Handler, *, api_key: SecretStr | None = CANARY, **kwargs: Any
    ) -> tuple[AnthropicProvider, Server]:
        server = Server(respond)
        provider = AnthropicProvider(
            "https://claude.example/v1",
            "claude-sonnet-4-5",
            api_key,
            transport=server.transport,
            **kwargs,
        )
        made.append(provider)
        return provider, server

    yield make
    for provider in made:
        await provider.aclose()
