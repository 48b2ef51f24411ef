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

The strict schema and the ``response_format`` around it are built once per
contract schema (:class:`._schema_cache.SchemaCache`) and sent as ready-made
JSON; a call only assembles the model, messages and sampling around them.

:meth:`OpenAICompatProvider.probe` is ``GET {base_url}/models``: it spends no
tokens and tells a revoked key or a missing model from a working deployment.

HTTP and transport failures are mapped in :mod:`._http`; :data:`HTTPX_ERRORS`
is re-exported here as one of the tables this module relies on (with
:data:`._http.AIOHTTP_ERRORS`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from streams.errors import MalformedOutput, ProviderDeploymentFault, ProviderTransient
from streams.providers._http import (
    HTTPX_ERRORS,
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
from streams.providers.profiles import PROFILES, CapabilityProfile
from streams.providers.strict_schema import to_strict_schema

__all__ = ["HTTPX_ERRORS", "OpenAICompatProvider"]

logger = logging.getLogger(__name__)

_REFUSAL_LIMIT = 200


class OpenAICompatProvider:
    """A :class:`~streams.providers.base.Provider` for any OpenAI-compatible endpoint.

    ``base_url`` includes the version prefix (``https://api.openai.com/v1``).
    ``api_key`` is sent as a bearer token only when set; local servers need
    none. ``transport`` replaces the network, e.g. with ``httpx.MockTransport``.
    ``profile`` is the target's capability profile (:mod:`.profiles`; default
    ``legacy``, which works on every strict server): what the schema keeps.
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
        profile: CapabilityProfile | None = None,
    ) -> None:
        self.model = model
        self.profile = PROFILES["legacy"] if profile is None else profile
        self._base_url = base_url
        self._api_key = api_key
        self._timeout_s = timeout_s
        self._client = make_client(
            provider=self.name,
            base_url=base_url,
            timeout_s=timeout_s,
            max_connections=max_connections,
            headers=dict(extra_headers or {}),
            auth=SecretHeaderAuth("Authorization", api_key, prefix="Bearer ") if api_key else None,
            transport=transport,
        )
        self._completions_url = endpoint(self._client, "/chat/completions")
        self._response_formats: SchemaCache[orjson.Fragment] = SchemaCache(
            lambda name, schema: _response_format(name, schema, self.profile)
        )
        self._noted_missing_usage = False
        # Whether the last call failed with a 404 about the model: the probe then
        # checks that the endpoint lists it, not only that the key works.
        self._model_missing = False

    def __repr__(self) -> str:
        key = "'**********'" if self._api_key else "None"
        return (
            f"{type(self).__name__}(base_url={self._base_url!r}, model={self.model!r}, "
            f"api_key={key})"
        )

    async def complete(self, request: CompletionRequest) -> Completion:
        """Send ``request``; return the answer or raise a :mod:`streams.errors` error."""
        try:
            payload, latency = await post_json(
                self._client,
                self._completions_url,
                self._body(request),
                provider=self.name,
                secret=self._api_key,
            )
        except ProviderDeploymentFault as exc:
            self._model_missing = is_missing_model(exc, self.model)
            raise
        self._model_missing = False
        return self._parse(payload, latency)

    async def probe(self) -> None:
        """``GET {base_url}/models`` with the same auth: ``None`` if the deployment works.

        Spends no tokens. Raises what a call would (401/403/404 ->
        :class:`~streams.errors.ProviderDeploymentFault`, 5xx -> transient, ...);
        after a 404 about the model it also raises a 404 fault while the list
        does not include :attr:`model`.
        """
        payload = await get_json(
            self._client,
            "/models",
            timeout_s=min(self._timeout_s, PROBE_TIMEOUT_S),
            provider=self.name,
            secret=self._api_key,
        )
        if not self._model_missing:
            return
        ids = model_ids(payload)
        if ids is not None and not _is_listed(self.model, ids):
            shown = listed_summary(ids)
            raise ProviderDeploymentFault(
                f"{self.name} model {self.model!r} is not listed by {self._base_url}/models "
                f"(it lists {shown}); set the model to one the endpoint serves",
                status=404,
                provider=self.name,
            )

    async def aclose(self) -> None:
        await self._client.aclose()

    def wire_schema(self, schema_name: str, json_schema: dict[str, Any]) -> bytes:
        """The ``response_format`` bytes every request for this schema carries, and the profile.

        The profile's ``name/version`` follows the JSON, so a profile change is a new
        cache key even where it leaves a schema's bytes as they were.
        """
        sent = orjson.dumps(self._response_formats.get(schema_name, json_schema))
        return sent + b"\nprofile=" + self.profile.ident.encode()

    def _body(self, request: CompletionRequest) -> dict[str, Any]:
        # ``extra`` cannot override what the provider sets, least of all the schema.
        return {
            **request.extra,
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_output_tokens,
            "response_format": self._response_formats.get(request.schema_name, request.json_schema),
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


def _response_format(
    schema_name: str, json_schema: dict[str, Any], profile: CapabilityProfile
) -> orjson.Fragment:
    """The ``response_format`` for a contract schema, as JSON ready to splice into a body."""
    return schema_fragment(
        schema_name,
        {
            "type": "json_schema",
            "json_schema": {
                "name": wire_name(schema_name),
                "strict": True,
                "schema": to_strict_schema(json_schema, profile),
            },
        },
    )


def _is_listed(model: str, ids: frozenset[str]) -> bool:
    # Ollama lists "llama3:latest" and serves it as "llama3" too.
    return model in ids or f"{model}:latest" in ids


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
