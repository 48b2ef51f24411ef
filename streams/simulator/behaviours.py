"""What each behaviour produces, independent of the wire format.

A behaviour turns the fixture answer (or ``None`` for an unknown document) into
an :data:`Outcome`: a :class:`Reply` the dialect renders as a completion, or a
:class:`Failure` it renders as an HTTP error. Dispatch goes through
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
    "OUTCOMES",
    "ErrorKind",
    "Failure",
    "Outcome",
    "Reply",
    "break_answer",
    "estimate_tokens",
    "limit_output",
    "outcome_for",
]


@dataclass(frozen=True)
class Reply:
    """A model answer. ``payload`` is the object a tool call carries, ``None`` for prose."""

    text: str
    payload: Mapping[str, Any] | None
    truncated: bool = False
    delay_s: float = 0.0


class ErrorKind(enum.Enum):
    """Why a request failed; each dialect maps it to its own error type and code."""

    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    RATE_LIMIT = "rate_limit"
    SERVER = "server"


@dataclass(frozen=True)
class Failure:
    """An HTTP error response."""

    status: int
    kind: ErrorKind
    message: str
    retry_after_s: int | None = None
    param: str | None = None
    code: str | None = None


Outcome = Reply | Failure


def estimate_tokens(text: str) -> int:
    """The simulator's token count: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def _dumps(answer: Mapping[str, Any]) -> str:
    return json.dumps(answer, ensure_ascii=False)


def _valid_reply(answer: Mapping[str, Any] | None) -> Reply:
    payload = answer if answer is not None else {}
    return Reply(text=_dumps(payload), payload=payload)


def _valid(answer: Mapping[str, Any] | None, config: SimulatorConfig) -> Outcome:
    return _valid_reply(answer)


def _unknown(answer: Mapping[str, Any] | None, config: SimulatorConfig) -> Outcome:
    return Reply(text="{}", payload={})


def _malformed(answer: Mapping[str, Any] | None, config: SimulatorConfig) -> Outcome:
    # Dropping every "}" leaves no balanced object for a lenient parser to recover,
    # so the pipeline must see this as malformed, not as a contract violation.
    body = _dumps(answer or {}).replace("}", "")
    body = body[: max(1, (2 * len(body)) // 3)]
    text = (
        f"Sure! Here is the extracted record:\n\n{body}\n\nLet me know if you need anything else."
    )
    return Reply(text=text, payload=None)


def _invalid(answer: Mapping[str, Any] | None, config: SimulatorConfig) -> Outcome:
    broken = break_answer(answer) if answer else {}
    return Reply(text=_dumps(broken), payload=broken)


def _truncated(answer: Mapping[str, Any] | None, config: SimulatorConfig) -> Outcome:
    text = _dumps(answer or {})
    return Reply(
        text=text[: max(1, len(text) // 2)], payload=_first_half(answer or {}), truncated=True
    )


def _hang(answer: Mapping[str, Any] | None, config: SimulatorConfig) -> Outcome:
    return replace(_valid_reply(answer), delay_s=config.hang_s)


def _http_429(answer: Mapping[str, Any] | None, config: SimulatorConfig) -> Outcome:
    return Failure(
        429,
        ErrorKind.RATE_LIMIT,
        "Rate limit reached for requests (simulated). Please try again later.",
        retry_after_s=config.retry_after_s,
        code="rate_limit_exceeded",
    )


def _http_500(answer: Mapping[str, Any] | None, config: SimulatorConfig) -> Outcome:
    return Failure(
        500, ErrorKind.SERVER, "The server had an error while processing your request (simulated)."
    )


def _http_400(answer: Mapping[str, Any] | None, config: SimulatorConfig) -> Outcome:
    return Failure(400, ErrorKind.INVALID_REQUEST, "Invalid request (simulated).")


def _http_401(answer: Mapping[str, Any] | None, config: SimulatorConfig) -> Outcome:
    return Failure(
        401,
        ErrorKind.AUTHENTICATION,
        "Incorrect API key provided (simulated).",
        code="invalid_api_key",
    )


OUTCOMES: Mapping[Behaviour, Callable[[Mapping[str, Any] | None, SimulatorConfig], Outcome]] = {
    Behaviour.VALID: _valid,
    Behaviour.MALFORMED: _malformed,
    Behaviour.INVALID: _invalid,
    Behaviour.TRUNCATED: _truncated,
    Behaviour.HTTP_429: _http_429,
    Behaviour.HTTP_500: _http_500,
    Behaviour.HTTP_400: _http_400,
    Behaviour.HTTP_401: _http_401,
    Behaviour.HANG: _hang,
    Behaviour.UNKNOWN: _unknown,
}


def outcome_for(
    behaviour: Behaviour, answer: Mapping[str, Any] | None, config: SimulatorConfig
) -> Outcome:
    """What ``behaviour`` makes of ``answer`` (``None``: the document has no fixture)."""
    return OUTCOMES[behaviour](answer, config)


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
