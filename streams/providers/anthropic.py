"""The Anthropic Messages wire format, with the contract as a forced tool call.

One POST to ``{base_url}/messages`` (``base_url`` like
``https://api.anthropic.com/v1``). The contract's schema is the input schema
of a single tool that the model is forced to call, so the tool call's
``input`` *is* the record::

    provider = AnthropicProvider("https://api.anthropic.com/v1", "claude-sonnet-4-5", key)
    completion = await provider.complete(request)   # completion.text == json.dumps(input)

How an answer is read:

* system turns are joined into the top-level ``system`` field;
* the ``tool_use`` block's ``input`` is re-serialised with :func:`json.dumps`
  as ``Completion.text``; without one, the text blocks are joined instead and
  the pipeline's parser decides;
* ``stop_reason`` is passed through as ``finish_reason``, so ``"max_tokens"``
  marks it truncated; ``"refusal"`` raises :class:`~streams.errors.MalformedOutput`;
* ``usage.input_tokens`` plus any prompt-cache tokens count as input,
  ``usage.output_tokens`` as output.

The tool definition (its name, description and input schema) is built once
per contract schema and sent as ready-made JSON; a call only assembles the
model, system, messages and sampling around it.

:meth:`AnthropicProvider.probe` is ``GET {base_url}/models``: it spends no
tokens and tells a revoked key or a missing model from a working deployment.

Errors map as for every provider (:mod:`._http`); 529 "overloaded" is a 5xx,
so it is transient.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from pydantic import SecretStr

from streams.errors import MalformedOutput, ProviderDeploymentFault, ProviderTransient
from streams.providers._http import (
    PROBE_TIMEOUT_S,
    SecretHeaderAuth,
    endpoint,
    get_json,
    is_missing_model,
    listed_summary,
    make_client,
    model_ids,
    post_json,
    redact,
    wire_name,
)
from streams.providers._schema_cache import SchemaCache, schema_fragment
from streams.providers.base import Completion, CompletionRequest
from streams.providers.profiles import PROFILES
from streams.providers.strict_schema import to_tool_input_schema

__all__ = ["ANTHROPIC_VERSION", "AnthropicProvider"]

logger = logging.getLogger(__name__)

#: The Messages API version this module speaks.
ANTHROPIC_VERSION = "2023-06-01"

_REFUSAL_LIMIT = 200

#: Usage fields that are all input tokens, billed (differently) as such.
_INPUT_USAGE = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")

#: The list's page size maximum, so one page holds every model an account has.
_MODELS_PAGE = {"limit": "1000"}


@dataclass(frozen=True)
class _Tool:
    """The per-schema parts of a request: the tool's name and its JSON, made once."""

    name: str
    tools: orjson.Fragment
    tool_choice: orjson.Fragment


def _tool(schema_name: str, json_schema: dict[str, Any]) -> _Tool:
    name = wire_name(schema_name)
    described = json_schema.get("description")
    description = f"Record the {schema_name} extracted from the document."
    if isinstance(described, str) and described:
        description = f"{description} {described}"
    tools = [
        {
            "name": name,
            "description": description,
            "input_schema": to_tool_input_schema(json_schema),
        }
    ]
    return _Tool(
        name=name,
        tools=schema_fragment(schema_name, tools),
        tool_choice=schema_fragment(schema_name, {"type": "tool", "name": name}),
    )


class AnthropicProvider:
    """A :class:`~streams.providers.base.Provider` for the Anthropic Messages API.

    ``api_key`` goes in the ``x-api-key`` header when set (a gateway in front
    may not need it). ``transport`` replaces the network, e.g. with
    ``httpx.MockTransport``.
    """

    name: str = "anthropic"
    #: Tool input is full JSON Schema the model reads; nothing is grammar-enforced.
    profile = PROFILES["anthropic-tool"]

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: SecretStr | None,
        *,
        timeout_s: float = 60.0,
        max_connections: int = 64,
        extra_headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model = model
        self._base_url = base_url
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._client = make_client(
            provider=self.name,
            base_url=base_url,
            timeout_s=timeout_s,
            max_connections=max_connections,
            headers={"anthropic-version": ANTHROPIC_VERSION, **(extra_headers or {})},
            auth=SecretHeaderAuth("x-api-key", api_key) if api_key else None,
            transport=transport,
        )
        self._messages_url = endpoint(self._client, "/messages")
        self._tools: SchemaCache[_Tool] = SchemaCache(_tool)
        self._noted_missing_usage = False
        # Whether the last call failed with a 404 about the model: the probe then
        # checks that the model exists, not only that the key works.
        self._model_missing = False

    def __repr__(self) -> str:
        key = "'**********'" if self._api_key else "None"
        return (
            f"{type(self).__name__}(base_url={self._base_url!r}, model={self.model!r}, "
            f"api_key={key})"
        )

    async def complete(self, request: CompletionRequest) -> Completion:
        """Send ``request``; return the answer or raise a :mod:`streams.errors` error."""
        tool = self._tools.get(request.schema_name, request.json_schema)
        try:
            payload, latency = await post_json(
                self._client,
                self._messages_url,
                self._body(request, tool),
                provider=self.name,
                secret=self._api_key,
            )
        except ProviderDeploymentFault as exc:
            self._model_missing = is_missing_model(exc, self.model)
            raise
        self._model_missing = False
        return self._parse(payload, latency, tool.name)

    async def probe(self) -> None:
        """``GET {base_url}/models`` with the same auth: ``None`` if the deployment works.

        Spends no tokens. Raises what a call would (401/403/404 ->
        :class:`~streams.errors.ProviderDeploymentFault`, 5xx -> transient, ...);
        after a 404 about the model it also raises a 404 fault while the model
        does not exist.
        """
        timeout_s = min(self._timeout_s, PROBE_TIMEOUT_S)
        payload = await get_json(
            self._client,
            "/models",
            params=_MODELS_PAGE,
            timeout_s=timeout_s,
            provider=self.name,
            secret=self._api_key,
        )
        if not self._model_missing:
            return
        ids = model_ids(payload)
        if ids is None or self.model in ids:
            return
        # Not an id, but perhaps an alias ("claude-sonnet-4-5" lists as its dated
        # snapshot), which only the model's own endpoint resolves.
        try:
            await get_json(
                self._client,
                f"/models/{quote(self.model, safe='')}",
                timeout_s=timeout_s,
                provider=self.name,
                secret=self._api_key,
            )
        except ProviderDeploymentFault as exc:
            if exc.status != 404:
                raise
            shown = listed_summary(ids)
            raise ProviderDeploymentFault(
                f"{self.name} model {self.model!r} is not listed by {self._base_url}/models "
                f"(it lists {shown}); set the model to one the account can use",
                status=404,
                provider=self.name,
            ) from exc

    async def aclose(self) -> None:
        await self._client.aclose()

    def wire_schema(self, schema_name: str, json_schema: dict[str, Any]) -> bytes:
        """The ``tools`` and ``tool_choice`` bytes every request for this schema carries."""
        tool = self._tools.get(schema_name, json_schema)
        sent = orjson.dumps([tool.tools, tool.tool_choice])
        return sent + b"\nprofile=" + self.profile.ident.encode()

    def _body(self, request: CompletionRequest, tool: _Tool) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        body: dict[str, Any] = {
            **request.extra,  # cannot override what the provider sets below
            "model": self.model,
            "max_tokens": request.max_output_tokens,
            "temperature": request.temperature,
            "messages": [
                {"role": m.role, "content": m.content}
                for m in request.messages
                if m.role != "system"
            ],
            "tools": tool.tools,
            "tool_choice": tool.tool_choice,
        }
        if system:
            body["system"] = system
        return body

    def _parse(self, payload: dict[str, Any], latency: float, tool_name: str) -> Completion:
        content = payload.get("content")
        if not isinstance(content, list):
            raise ProviderTransient(
                f"{self.name} returned a response without content", status=200, provider=self.name
            )
        finish_reason = str(payload.get("stop_reason") or "unknown")
        model_reported = str(payload.get("model") or self.model)
        input_tokens, output_tokens = self._usage(payload)
        blocks = [b for b in content if isinstance(b, dict)]
        tool_uses = [b for b in blocks if b.get("type") == "tool_use"]
        chosen = next((b for b in tool_uses if b.get("name") == tool_name), None)
        if chosen is None and tool_uses:
            chosen = tool_uses[0]
        prose = "".join(b["text"] for b in blocks if isinstance(b.get("text"), str))

        if chosen is not None and "input" in chosen:
            text = json.dumps(chosen["input"], ensure_ascii=False)
        elif finish_reason == "refusal":
            shown = redact(prose[:_REFUSAL_LIMIT], self._api_key) or "(no text)"
            raise MalformedOutput(
                f"{self.name} model refused to answer: {shown}",
                last_output=prose,
                finish_reason=finish_reason,
                model_reported=model_reported,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
            )
        else:
            text = prose
        return Completion(
            text=text,
            finish_reason=finish_reason,
            model_reported=model_reported,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_s=latency,
        )

    def _usage(self, payload: dict[str, Any]) -> tuple[int, int]:
        usage = payload.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int):
            inputs = [usage.get(k) for k in _INPUT_USAGE]
            if isinstance(inputs[0], int):
                return sum(v for v in inputs if isinstance(v, int)), usage["output_tokens"]
        if not self._noted_missing_usage:
            self._noted_missing_usage = True
            logger.warning(
                "%s endpoint %s reported no token usage; counting 0 tokens per call, "
                "so budgets rely on the pre-call estimate",
                self.name,
                self._base_url,
            )
        return 0, 0
