"""The OpenAI chat-completions wire format: OpenAI, vLLM, llama.cpp, Ollama, LM Studio.

One POST to ``{base_url}/chat/completions`` with the contract's schema as
``response_format: json_schema`` in strict mode (see :mod:`.strict_schema`)::

    provider = OpenAICompatProvider("http://localhost:8000/v1", "qwen2.5-7b", None)
    completion = await provider.complete(request)
    await provider.aclose()

How an answer is read:

* ``choices[0].message.content`` is the text; ``finish_reason`` is passed
  through, so ``"length"`` marks it truncated;
* a ``refusal`` raises :class:`~streams.errors.MalformedOutput` with the
  refusal as ``last_output``: the model answered, but not with a record;
* ``usage.prompt_tokens``/``completion_tokens`` are the token counts; a server
  that reports none counts as 0 and is logged once per provider;
* a 2xx body without ``choices`` (or not JSON) is a server glitch:
  :class:`~streams.errors.ProviderTransient`.

HTTP and transport failures are mapped in :mod:`._http`; :data:`HTTPX_ERRORS`
is re-exported here as the table this module relies on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from streams.errors import MalformedOutput, ProviderTransient
from streams.providers._http import (
    HTTPX_ERRORS,
    SecretHeaderAuth,
    make_client,
    post_json,
    redact,
    wire_name,
)
from streams.providers.base import Completion, CompletionRequest
from streams.providers.strict_schema import to_strict_schema

__all__ = ["HTTPX_ERRORS", "OpenAICompatProvider"]

logger = logging.getLogger(__name__)

_REFUSAL_LIMIT = 200


class OpenAICompatProvider:
    """A :class:`~streams.providers.base.Provider` for any OpenAI-compatible endpoint.

    ``base_url`` includes the version prefix (``https://api.openai.com/v1``).
    ``api_key`` is sent as a bearer token only when set; local servers need
    none. ``transport`` replaces the network, e.g. with ``httpx.MockTransport``.
    """

    name: str = "openai"

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
        self._client = make_client(
            provider=self.name,
            base_url=base_url,
            timeout_s=timeout_s,
            max_connections=max_connections,
            headers=dict(extra_headers or {}),
            auth=SecretHeaderAuth("Authorization", api_key, prefix="Bearer ") if api_key else None,
            transport=transport,
        )
        self._noted_missing_usage = False

    def __repr__(self) -> str:
        key = "'**********'" if self._api_key else "None"
        return (
            f"{type(self).__name__}(base_url={self._base_url!r}, model={self.model!r}, "
            f"api_key={key})"
        )

    async def complete(self, request: CompletionRequest) -> Completion:
        """Send ``request``; return the answer or raise a :mod:`streams.errors` error."""
        payload, latency = await post_json(
            self._client,
            "/chat/completions",
            self._body(request),
            provider=self.name,
            secret=self._api_key,
        )
        return self._parse(payload, latency)

    async def aclose(self) -> None:
        await self._client.aclose()

    def _body(self, request: CompletionRequest) -> dict[str, Any]:
        # The strict transform runs per call: it is microseconds against a model
        # call of hundreds of milliseconds, and keeps the provider stateless.
        # ``extra`` cannot override what the provider sets, least of all the schema.
        return {
            **request.extra,
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_output_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": wire_name(request.schema_name),
                    "strict": True,
                    "schema": to_strict_schema(request.json_schema),
                },
            },
        }

    def _parse(self, payload: dict[str, Any], latency: float) -> Completion:
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ProviderTransient(
                f"{self.name} returned a response without choices", status=200, provider=self.name
            )
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            raise ProviderTransient(
                f"{self.name} returned a choice without a message", status=200, provider=self.name
            )
        finish_reason = str(choice.get("finish_reason") or "unknown")
        model_reported = str(payload.get("model") or self.model)
        input_tokens, output_tokens = self._usage(payload)

        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal:
            shown = redact(refusal[:_REFUSAL_LIMIT], self._api_key)
            raise MalformedOutput(
                f"{self.name} model refused to answer: {shown}",
                last_output=refusal,
                finish_reason=finish_reason,
                model_reported=model_reported,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
            )
        return Completion(
            text=_content_text(message.get("content")),
            finish_reason=finish_reason,
            model_reported=model_reported,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_s=latency,
        )

    def _usage(self, payload: dict[str, Any]) -> tuple[int, int]:
        usage = payload.get("usage")
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(prompt, int) and isinstance(completion, int):
                return prompt, completion
        if not self._noted_missing_usage:
            self._noted_missing_usage = True
            logger.warning(
                "%s endpoint %s reported no token usage; counting 0 tokens per call, "
                "so budgets rely on the pre-call estimate",
                self.name,
                self._base_url,
            )
        return 0, 0


def _content_text(content: Any) -> str:
    """``message.content`` as text: a string, or (some servers) a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""
