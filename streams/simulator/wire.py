"""The two wire formats the simulator speaks, behind one :class:`Dialect` Protocol.

A dialect parses a request body into a format-neutral :class:`SimRequest`,
checks what the real API would refuse, and renders a :class:`Reply` or a
:class:`Failure` back into its own JSON shape and status. The server never branches on the
endpoint; it calls the dialect it was routed to.

The document is the text of the first user message inside the pipeline's
``<document-TAG>`` ... ``</document-TAG>`` block, or else between the first
``<document>`` and the last ``</document>`` after it (so a document that quotes
the closing tag still hashes whole). A first user message without the block is
hashed whole, so ad-hoc prompts still get a stable key.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Any, Protocol

from streams.simulator.behaviours import ErrorKind, Failure, Reply, estimate_tokens
from streams.simulator.strict import check_strict_schema
from streams.textnorm import text_sha256

__all__ = ["AnthropicDialect", "Dialect", "OpenAIDialect", "Rejected", "SimRequest"]

_OPEN, _CLOSE = "<document>", "</document>"
# The pipeline's per-document boundary (streams.attempts.document_boundary); bounded, linear.
_TAGGED_OPEN = re.compile(r"^<document-([0-9a-f]{16})>$", re.MULTILINE)
_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class SimRequest:
    """What the simulator needs from a request, whichever format it came in."""

    model: str
    document: str
    key: str
    document_block: bool
    messages: list[Any]
    system: Any
    max_tokens: int | None
    prompt_chars: int
    strict: bool | None
    schema_name: str | None
    schema: Any
    tool_name: str | None

    @property
    def prompt_tokens(self) -> int:
        """The prompt's size by :func:`estimate_tokens`' rule, four characters a token."""
        return -(-self.prompt_chars // 4)

    @property
    def requested_tokens(self) -> int:
        """Prompt plus output budget: what OpenAI's tokens-per-minute limiter charges."""
        return self.prompt_tokens + (self.max_tokens or 0)


# Not a StreamsError: a simulated HTTP reply, never raised outside the simulator.
class Rejected(Exception):
    """The request is refused before any behaviour runs. ``label`` is what stats count."""

    def __init__(self, failure: Failure, label: str) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.label = label


class Dialect(Protocol):
    """One wire format: parse, check and render."""

    endpoint: str

    def authorised(self, headers: Mapping[str, str], api_key: str) -> bool: ...

    def parse(self, body: Any) -> SimRequest: ...

    def check(self, request: SimRequest) -> None: ...

    def completion(
        self, request: SimRequest, reply: Reply, *, model: str, response_id: str
    ) -> dict[str, Any]: ...

    def status(self, failure: Failure) -> int: ...

    def error(self, failure: Failure) -> dict[str, Any]: ...


def bad_request(message: str, param: str | None = None) -> Rejected:
    """A 400 for a body the real API would not accept."""
    return Rejected(
        Failure(400, ErrorKind.INVALID_REQUEST, message, param=param), "rejected:request"
    )


def _text_of(content: Any) -> str:
    """The text of a message content: a string, or a list of ``{type: text}`` blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _document_of(text: str) -> tuple[str, bool]:
    opened = _TAGGED_OPEN.search(text)
    if opened is not None:  # the pipeline's block: closed only by its own tag
        close = f"</document-{opened.group(1)}>"
        end = text.rfind(close)
        if end >= opened.end():
            return text[opened.end() : end], True
    start = text.find(_OPEN)
    end = text.rfind(_CLOSE)
    if start < 0 or end < start:
        return text, False
    return text[start + len(_OPEN) : end], True


def _require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter", "model")
    return model


def _require_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise bad_request(f"messages[{i}] must be an object with a 'role'", "messages")
    return messages


def _first_user_document(messages: list[dict[str, Any]]) -> tuple[str, bool]:
    for message in messages:
        if message["role"] == "user":
            return _document_of(_text_of(message.get("content")))
    raise bad_request("'messages' must contain a user message", "messages")


def _optional_int(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad_request(f"'{name}' must be an integer >= 1", name)
        return value
    return None


def _check_temperature(body: dict[str, Any], highest: float) -> None:
    value = body.get("temperature")
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= highest:
        raise bad_request(
            f"'temperature' must be a number between 0 and {highest:g}", "temperature"
        )


def _output_tokens(request: SimRequest, reply: Reply) -> int:
    # A real API reports the whole budget as spent when it stops for length.
    if reply.truncated and request.max_tokens is not None:
        return request.max_tokens
    return estimate_tokens(reply.text)


class OpenAIDialect:
    """``POST /v1/chat/completions``, including strict ``json_schema`` checking."""

    endpoint = "openai"

    _ERROR_TYPES: Mapping[ErrorKind, tuple[str, str | None]] = {
        ErrorKind.INVALID_REQUEST: ("invalid_request_error", None),
        ErrorKind.AUTHENTICATION: ("invalid_request_error", "invalid_api_key"),
        ErrorKind.PERMISSION: ("invalid_request_error", None),
        ErrorKind.NOT_FOUND: ("invalid_request_error", "model_not_found"),
        ErrorKind.RATE_LIMIT: ("requests", "rate_limit_exceeded"),
        ErrorKind.REQUEST_TOO_LARGE: ("tokens", "rate_limit_exceeded"),
        ErrorKind.SERVER: ("server_error", None),
    }

    def __init__(self, unsupported_keywords: Set[str]) -> None:
        self._unsupported = unsupported_keywords

    def authorised(self, headers: Mapping[str, str], api_key: str) -> bool:
        return hmac.compare_digest(headers.get("Authorization", ""), f"Bearer {api_key}")

    def parse(self, body: Any) -> SimRequest:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        model = _require_model(body)
        messages = _require_messages(body)
        document, block = _first_user_document(messages)
        max_tokens = _optional_int(body, "max_completion_tokens", "max_tokens")
        _check_temperature(body, 2.0)
        strict, name, schema = self._response_format(body.get("response_format"))
        return SimRequest(
            model=model,
            document=document,
            key=text_sha256(document),
            document_block=block,
            messages=messages,
            system=None,
            max_tokens=max_tokens,
            prompt_chars=sum(len(_text_of(m.get("content"))) for m in messages),
            strict=strict,
            schema_name=name,
            schema=schema,
            tool_name=None,
        )

    @staticmethod
    def _response_format(value: Any) -> tuple[bool, str | None, Any]:
        if value is None:
            return False, None, None
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            raise bad_request(
                "'response_format' must be an object with a 'type'", "response_format"
            )
        if value["type"] != "json_schema":
            return False, None, None
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            raise bad_request("Missing required parameter: 'response_format.json_schema'.")
        name = spec.get("name")
        if not isinstance(name, str) or not _SCHEMA_NAME.match(name):
            raise bad_request(
                "'response_format.json_schema.name' must match ^[a-zA-Z0-9_-]{1,64}$",
                "response_format.json_schema.name",
            )
        return spec.get("strict") is True, name, spec.get("schema")

    def check(self, request: SimRequest) -> None:
        if not request.strict:
            return
        violations = check_strict_schema(request.schema, self._unsupported)
        if violations:
            failure = Failure(
                400,
                ErrorKind.INVALID_REQUEST,
                f"Invalid schema for response_format '{request.schema_name}': "
                f"{violations[0].describe()}",
                param="response_format",
                code="invalid_json_schema",
            )
            raise Rejected(failure, "rejected:schema")

    def completion(
        self, request: SimRequest, reply: Reply, *, model: str, response_id: str
    ) -> dict[str, Any]:
        prompt, output = request.prompt_tokens, _output_tokens(request, reply)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": reply.text, "refusal": None},
            "logprobs": None,
            "finish_reason": "length" if reply.truncated else "stop",
        }
        return {
            "id": f"chatcmpl-sim-{response_id}",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [] if reply.empty else [choice],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": output,
                "total_tokens": prompt + output,
            },
            "system_fingerprint": "fp_simulator",
        }

    def status(self, failure: Failure) -> int:
        return failure.status

    def error(self, failure: Failure) -> dict[str, Any]:
        kind, code = self._ERROR_TYPES[failure.kind]
        return {
            "error": {
                "message": failure.message,
                "type": kind,
                "param": failure.param,
                "code": failure.code or code,
            }
        }


class AnthropicDialect:
    """``POST /v1/messages``: the answer comes back as a forced tool call."""

    endpoint = "anthropic"

    _ERROR_TYPES: Mapping[ErrorKind, str] = {
        ErrorKind.INVALID_REQUEST: "invalid_request_error",
        ErrorKind.AUTHENTICATION: "authentication_error",
        ErrorKind.PERMISSION: "permission_error",
        ErrorKind.NOT_FOUND: "not_found_error",
        ErrorKind.RATE_LIMIT: "rate_limit_error",
        ErrorKind.REQUEST_TOO_LARGE: "request_too_large",
        ErrorKind.SERVER: "api_error",
    }
    #: Where Anthropic's status and wording differ from OpenAI's for the same kind.
    _OVERRIDES: Mapping[ErrorKind, tuple[int, str]] = {
        ErrorKind.REQUEST_TOO_LARGE: (413, "Request exceeds the maximum allowed number of bytes."),
    }

    def authorised(self, headers: Mapping[str, str], api_key: str) -> bool:
        return hmac.compare_digest(headers.get("x-api-key", ""), api_key)

    def parse(self, body: Any) -> SimRequest:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        model = _require_model(body)
        messages = _require_messages(body)
        if messages[0]["role"] != "user":
            raise bad_request('messages: first message must use the "user" role', "messages")
        max_tokens = _optional_int(body, "max_tokens")
        if max_tokens is None:
            raise bad_request("max_tokens: Field required", "max_tokens")
        _check_temperature(body, 1.0)
        document, block = _first_user_document(messages)
        system = body.get("system")
        return SimRequest(
            model=model,
            document=document,
            key=text_sha256(document),
            document_block=block,
            messages=messages,
            system=system,
            max_tokens=max_tokens,
            prompt_chars=len(_text_of(system))
            + sum(len(_text_of(m.get("content"))) for m in messages),
            strict=None,
            schema_name=None,
            schema=None,
            tool_name=self._tool_name(body.get("tools"), body.get("tool_choice")),
        )

    @staticmethod
    def _tool_name(tools: Any, choice: Any) -> str | None:
        if tools is None:
            return None
        if not isinstance(tools, list) or not all(
            isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools
        ):
            raise bad_request("tools: each tool must be an object with a 'name'", "tools")
        names = [t["name"] for t in tools]
        if isinstance(choice, dict) and choice.get("type") == "tool":
            if choice.get("name") not in names:
                raise bad_request(
                    f"tool_choice: no tool named {choice.get('name')!r}", "tool_choice"
                )
            return str(choice["name"])
        return names[0] if names else None

    def check(self, request: SimRequest) -> None:
        return None

    def completion(
        self, request: SimRequest, reply: Reply, *, model: str, response_id: str
    ) -> dict[str, Any]:
        content: list[dict[str, Any]]
        if reply.empty:
            content, stop = [], "end_turn"
        elif request.tool_name is not None and reply.payload is not None:
            content = [
                {
                    "type": "tool_use",
                    "id": f"toolu_sim_{response_id}",
                    "name": request.tool_name,
                    "input": dict(reply.payload),
                }
            ]
            stop = "tool_use"
        else:
            # No tool to call, or an answer that is not an object (malformed): prose.
            content = [{"type": "text", "text": reply.text}]
            stop = "end_turn"
        return {
            "id": f"msg_sim_{response_id}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "max_tokens" if reply.truncated else stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": request.prompt_tokens,
                "output_tokens": _output_tokens(request, reply),
            },
        }

    def status(self, failure: Failure) -> int:
        override = self._OVERRIDES.get(failure.kind)
        return override[0] if override is not None else failure.status

    def error(self, failure: Failure) -> dict[str, Any]:
        override = self._OVERRIDES.get(failure.kind)
        message = override[1] if override is not None else failure.message
        return {
            "type": "error",
            "error": {"type": self._ERROR_TYPES[failure.kind], "message": message},
        }
