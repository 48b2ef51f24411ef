"""Provider factories: over a scripted ``httpx.MockTransport``, or over real local sockets.

Every provider and server made here is closed after its test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from streams.providers import AnthropicProvider, OpenAICompatProvider

from ._servers import LocalServer, Reply
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


class Network:
    """Real local servers and the providers pointed at them; providers close first."""

    def __init__(self) -> None:
        self.servers: list[LocalServer] = []
        self.providers: list[OpenAICompatProvider | AnthropicProvider] = []

    async def serve(self, reply: Reply, *, reads: bool = True) -> LocalServer:
        server = LocalServer(reply, reads=reads)
        await server.start()
        self.servers.append(server)
        return server

    def openai(
        self, base_url: str, *, api_key: SecretStr | None = CANARY, **kwargs: Any
    ) -> OpenAICompatProvider:
        provider = OpenAICompatProvider(base_url, "gpt-4o", api_key, **kwargs)
        self.providers.append(provider)
        return provider

    def anthropic(
        self, base_url: str, *, api_key: SecretStr | None = CANARY, **kwargs: Any
    ) -> AnthropicProvider:
        provider = AnthropicProvider(base_url, "claude-sonnet-4-5", api_key, **kwargs)
        self.providers.append(provider)
        return provider

    async def close(self) -> None:
        for provider in self.providers:
            await provider.aclose()
        for server in self.servers:
            await server.close()


@pytest.fixture
async def network() -> AsyncIterator[Network]:
    net = Network()
    yield net
    await net.close()
