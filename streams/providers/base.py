"""What every provider module implements, and the request/response shapes.

A provider turns a :class:`CompletionRequest` into a :class:`Completion` over
HTTP and translates every transport or HTTP failure into the
:mod:`streams.errors` tree at its boundary (``raise ... from exc``). It never
retries: retry policy belongs to the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["ChatMessage", "Completion", "CompletionRequest", "Provider"]

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    """One chat turn. Frozen so a re-ask can never mutate a cached prompt."""

    role: Role
    content: str


@dataclass(frozen=True)
class CompletionRequest:
    """A constrained-generation request.

    ``json_schema`` is the contract's plain pydantic JSON schema; each provider
    transforms it to what its wire format accepts (strict subset, tool input).
    """

    messages: tuple[ChatMessage, ...]
    schema_name: str
    json_schema: dict[str, Any]
    max_output_tokens: int
    temperature: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """The provider's answer, with what it reported about itself."""

    text: str
    finish_reason: str
    model_reported: str
    input_tokens: int
    output_tokens: int
    latency_s: float

    @property
    def truncated(self) -> bool:
        return self.finish_reason in {"length", "max_tokens"}


@runtime_checkable
class Provider(Protocol):
    """An LLM endpoint. ``name`` is the wire format, ``model`` the requested model.

    Optional capability, deliberately not a member (fakes need not have it):
    ``async def probe(self) -> None`` checks the deployment without spending
    tokens (both HTTP providers ``GET {base_url}/models``). It returns ``None``
    when the deployment works and raises the :mod:`streams.errors` error a call
    would otherwise (:class:`~streams.errors.ProviderDeploymentFault` for a
    revoked key or a missing model). Callers look it up with
    ``getattr(provider, "probe", None)``.

    Optional too: ``def wire_schema(self, schema_name, json_schema) -> bytes``, the
    exact JSON bytes of the schema part of the request body (the strict
    ``response_format``, the tool definition), followed by ``\nprofile=NAME/vN``, its
    capability profile (:mod:`.profiles`). The cache key hashes them, so a change
    to what the provider is sent (a transform, a profile or its version) is a
    different key; a provider without it is keyed on the plain schema.
    """

    name: str
    model: str

    async def complete(self, request: CompletionRequest) -> Completion: ...

    async def aclose(self) -> None: ...
