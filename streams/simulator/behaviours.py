"""What each behaviour produces, independent of the wire format.

A behaviour turns an :class:`Ask` (the fixture answer, or ``None`` for an
unknown document, plus the model and token count an error message may quote)
into an :data:`Outcome`: a :class:`Reply` the dialect renders as a completion,
or a :class:`Failure` it renders as an HTTP error. Dispatch goes through
:data:`OUTCOMES`, one pure function per :class:`Behaviour`, so adding a
behaviour is adding a row.

None of these functions understands the answer. ``invalid`` breaks it with
blind, structural edits: a number under a total-like key, a date-like string.
"""

from __future__ import annotations

import copy
import enum
import json
import math
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from streams.simulator.config import Behaviour, SimulatorConfig

__all__ = [
    "BAD_GATEWAY_HTML",
    "OUTCOMES",
    "TPM_LIMIT",
    "Ask",
    "ErrorKind",
    "Failure",
    "Outcome",
    "Reply",
    "break_answer",
    "estimate_tokens",
    "limit_output",
    "outage_failure",
    "outcome_for",
]

#: The tokens-per-minute limit ``http_429_too_large`` says the account has.
TPM_LIMIT = 30_000
#: What nginx answers when the API behind it is down (``http_502_html``).
BAD_GATEWAY_HTML = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    "</h1></center><hr><center>nginx</center></body></html>"
)


@dataclass(frozen=True)
class Ask:
    """What a behaviour may know about one request. Never the meaning of the document."""

    answer: Mapping[str, Any] | None
    """The fixture answer; ``None`` when the document has none."""
    model: str
    """The model the client asked for, as error messages quote it."""
    requested_tokens: int
    """Prompt tokens plus the output budget, as OpenAI's rate limiter counts a request."""


@dataclass(frozen=True)
class Reply:
    """A model answer. ``payload`` is the object a tool call carries, ``None`` for prose."""

    text: str
    payload: Mapping[str, Any] | None
    truncated: bool = False
    delay_s: float = 0.0
    empty: bool = False
    """No answer at all: OpenAI renders ``choices: []``, Anthropic ``content: []``."""


class ErrorKind(enum.Enum):
    """Why a request failed; each dialect maps it to its own error type and code.

    Where the real APIs disagree on more than the type, the dialect also decides
    the status and message: Anthropic answers ``REQUEST_TOO_LARGE`` with a 413.
    """

    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    RATE_LIMIT = "rate_limit"
    REQUEST_TOO_LARGE = "request_too_large"
    SERVER = "server"


@dataclass(frozen=True)
class Failure:
    """An HTTP error response.

    ``html`` is set when the answer comes from a proxy in front of the API rather
    than from the API: it is sent as ``text/html`` whatever the dialect.
    """

    status: int
    kind: ErrorKind
    message: str
    retry_after_s: int | None = None
    param: str | None = None
    code: str | None = None
    html: str | None = None


Outcome = Reply | Failure


def estimate_tokens(text: str) -> int:
    """The simulator's token count: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def _dumps(answer: Mapping[str, Any]) -> str:
    return json.dumps(answer, ensure_ascii=False)


def _valid_reply(answer: Mapping[str, Any] | None) -> Reply:
    payload = answer if answer is not None else {}
    return Reply(text=_dumps(payload), payload=payload)


def _valid(ask: Ask, config: SimulatorConfig) -> Outcome:
    return _valid_reply(ask.answer)


def _unknown(ask: Ask, config: SimulatorConfig) -> Outcome:
    return Reply(text="{}", payload={})


def _malformed(ask: Ask, config: SimulatorConfig) -> Outcome:
    # Dropping every "}" leaves no balanced object for a lenient parser to recover,
    # so the pipeline must see this as malformed, not as a contract violation.
    body = _dumps(ask.answer or {}).replace("}", "")
    body = body[: max(1, (2 * len(body)) // 3)]
    text = (
        f"Sure! Here is the extracted record:\n\n{body}\n\nLet me know if you need anything else."
    )
    return Reply(text=text, payload=None)


def _invalid(ask: Ask, config: SimulatorConfig) -> Outcome:
    broken = break_answer(ask.answer) if ask.answer else {}
    return Reply(text=_dumps(broken), payload=broken)


def _truncated(ask: Ask, config: SimulatorConfig) -> Outcome:
    text = _dumps(ask.answer or {})
    return Reply(
        text=text[: max(1, len(text) // 2)], payload=_first_half(ask.answer or {}), truncated=True
    )


def _hang(ask: Ask, config: SimulatorConfig) -> Outcome:
    return replace(_valid_reply(ask.answer), delay_s=config.hang_s)


def _http_429(ask: Ask, config: SimulatorConfig) -> Outcome:
    return Failure(
        429,
        ErrorKind.RATE_LIMIT,
        "Rate limit reached for requests (simulated). Please try again later.",
        retry_after_s=config.retry_after_s,
        code="rate_limit_exceeded",
    )


def _http_429_too_large(ask: Ask, config: SimulatorConfig) -> Outcome:
    # Floored above the limit so the message never contradicts itself for a small request.
    requested = max(ask.requested_tokens, TPM_LIMIT + 1)
    return Failure(
        429,
        ErrorKind.REQUEST_TOO_LARGE,
        f"Request too large for {ask.model} in organization org-sim on tokens per min (TPM): "
        f"Limit {TPM_LIMIT}, Requested {requested}. The input or output tokens must be reduced "
        "in order to run successfully. Visit https://platform.openai.com/account/rate-limits "
        "to learn more.",
        code="rate_limit_exceeded",
    )


def _http_500(ask: Ask, config: SimulatorConfig) -> Outcome:
    return Failure(
        500, ErrorKind.SERVER, "The server had an error while processing your request (simulated)."
    )


def _http_502_html(ask: Ask, config: SimulatorConfig) -> Outcome:
    return Failure(502, ErrorKind.SERVER, "502 Bad Gateway", html=BAD_GATEWAY_HTML)


def _http_400(ask: Ask, config: SimulatorConfig) -> Outcome:
    return Failure(400, ErrorKind.INVALID_REQUEST, "Invalid request (simulated).")


def _http_401(ask: Ask, config: SimulatorConfig) -> Outcome:
    return Failure(
        401,
        ErrorKind.AUTHENTICATION,
        "Incorrect API key provided (simulated).",
        code="invalid_api_key",
    )


def _http_403(ask: Ask, config: SimulatorConfig) -> Outcome:
    return Failure(
        403,
        ErrorKind.PERMISSION,
        "You have insufficient permissions for this operation (simulated).",
    )


def _http_404(ask: Ask, config: SimulatorConfig) -> Outcome:
    return _model_not_found(ask.model)


def _model_not_found(model: str | None) -> Failure:
    subject = f"The model `{model}`" if model is not None else "The model"
    return Failure(
        404,
        ErrorKind.NOT_FOUND,
        f"{subject} does not exist or you do not have access to it.",
        code="model_not_found",
    )


def _empty_choices(ask: Ask, config: SimulatorConfig) -> Outcome:
    return Reply(text="", payload=None, empty=True)


OUTCOMES: Mapping[Behaviour, Callable[[Ask, SimulatorConfig], Outcome]] = {
    Behaviour.VALID: _valid,
    Behaviour.MALFORMED: _malformed,
    Behaviour.INVALID: _invalid,
    Behaviour.TRUNCATED: _truncated,
    Behaviour.HTTP_429: _http_429,
    Behaviour.HTTP_429_TOO_LARGE: _http_429_too_large,
    Behaviour.HTTP_500: _http_500,
    Behaviour.HTTP_502_HTML: _http_502_html,
    Behaviour.HTTP_400: _http_400,
    Behaviour.HTTP_401: _http_401,
    Behaviour.HTTP_403: _http_403,
    Behaviour.HTTP_404: _http_404,
    Behaviour.EMPTY_CHOICES: _empty_choices,
    Behaviour.HANG: _hang,
    Behaviour.UNKNOWN: _unknown,
}


def outcome_for(behaviour: Behaviour, ask: Ask, config: SimulatorConfig) -> Outcome:
    """What ``behaviour`` makes of ``ask``."""
    return OUTCOMES[behaviour](ask, config)


def outage_failure(status: int, model: str | None = None) -> Failure:
    """What every request gets during ``/_sim/outage``: 401 auth, 404 model, else server."""
    if status == 401:
        return Failure(
            401,
            ErrorKind.AUTHENTICATION,
            "Incorrect API key provided (simulated outage).",
            code="invalid_api_key",
        )
    if status == 404:
        return _model_not_found(model)
    return Failure(
        status, ErrorKind.SERVER, f"The service is unavailable (simulated outage, HTTP {status})."
    )


def limit_output(reply: Reply, max_tokens: int | None) -> Reply:
    """Cut a reply longer than ``max_tokens`` the way a real model runs out of tokens."""
    if max_tokens is None or estimate_tokens(reply.text) <= max_tokens:
        return reply
    payload = _first_half(reply.payload) if reply.payload is not None else None
    return replace(reply, text=reply.text[: max_tokens * 4], payload=payload, truncated=True)


def _first_half(payload: Mapping[str, Any]) -> dict[str, Any]:
    items = list(payload.items())
    return dict(items[: len(items) // 2])


_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}")
NOT_A_DATE = "not-a-date"
TOTAL_SKEW = 1000


def break_answer(answer: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``answer`` that keeps its JSON types but fails a sane contract.

    Skews the shallowest number under the key ``total`` (else under a key
    containing "total", then "amount" or "sum", else the shallowest number) by
    :data:`TOTAL_SKEW`, so sums stop matching, and replaces the
    shallowest date-like string with :data:`NOT_A_DATE`. If neither exists, adds
    an unexpected top-level key.
    """
    broken: dict[str, Any] = copy.deepcopy(dict(answer))
    numbers: list[tuple[Any, Any, str]] = []
    dates: list[tuple[Any, Any]] = []
    queue: deque[Any] = deque([broken])
    while queue:
        node = queue.popleft()
        slots: list[tuple[Any, str]] = (
            [(k, k) for k in node]
            if isinstance(node, dict)
            else [(i, "") for i in range(len(node))]
        )
        for slot, name in slots:
            value = node[slot]
            if isinstance(value, (dict, list)):
                queue.append(value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                numbers.append((node, slot, name))
            elif isinstance(value, str) and _DATE_LIKE.match(value):
                dates.append((node, slot))
    if numbers:
        node, slot, _ = min(numbers, key=lambda n: _total_rank(n[2]))  # min is stable: shallowest
        node[slot] = node[slot] + TOTAL_SKEW
    if dates:
        node, slot = dates[0]
        node[slot] = NOT_A_DATE
    if not numbers and not dates:
        broken["_sim_unexpected"] = True
    return broken


def _total_rank(name: str) -> int:
    name = name.lower()
    if name == "total":
        return 0
    if "total" in name:
        return 1
    return 2 if "amount" in name or "sum" in name else 3
