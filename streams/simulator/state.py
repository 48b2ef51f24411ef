"""What changes while the simulator runs: records, attempts, stats, script and outage.

The server's request handlers and the ``/_sim`` control routes both work on one
:class:`SimulatorState`, found on the aiohttp application under :data:`STATE`.
It lives on one event loop, so nothing here takes a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from streams.simulator.config import Behaviour, SimulatorConfig, parse_script

__all__ = [
    "ALWAYS_LISTED_MODEL",
    "MODELS_ENDPOINT",
    "STATE",
    "Outage",
    "RequestRecord",
    "SimulatorState",
]

#: ``GET /v1/models`` always lists this id, so a health probe has one to look up
#: before the first completion.
ALWAYS_LISTED_MODEL = "sim-extractor-1"
#: ``RequestRecord.endpoint`` of ``GET /v1/models`` and ``GET /v1/models/{model}``.
MODELS_ENDPOINT = "models"


@dataclass
class RequestRecord:
    """One request as the simulator saw it; ``GET /_sim/requests`` lists these.

    ``endpoint`` is ``openai``, ``anthropic`` or ``models``. ``status`` is
    ``None`` when the client went away before the answer. ``behaviour`` is a
    :class:`Behaviour` value; ``rejected:<why>`` for a request refused before any
    behaviour ran (auth, concurrency, request, schema, directive); ``outage`` for
    one failed by ``/_sim/outage``; ``models`` for a model listing answered.
    """

    endpoint: str
    received_at: float
    key: str | None = None
    attempt: int | None = None
    behaviour: str | None = None
    status: int | None = None
    model_requested: str | None = None
    model_reported: str | None = None
    strict_response_format: bool | None = None
    schema_name: str | None = None
    tool_name: str | None = None
    document_block: bool | None = None
    fixture: bool | None = None
    max_tokens: int | None = None
    finish: str | None = None
    message_count: int | None = None
    messages: list[Any] = field(default_factory=list)
    system: Any = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Outage:
    """Every completion and models request fails with ``status`` until ``deadline``."""

    status: int
    deadline: float | None
    """On the state's monotonic clock; ``None`` lasts until ``DELETE /_sim/outage``."""


class _Counts:
    def __init__(self) -> None:
        self.by_behaviour: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.by_endpoint: Counter[str] = Counter()

    def add(self, record: RequestRecord) -> None:
        self.by_behaviour[record.behaviour or "none"] += 1
        self.by_status[str(record.status) if record.status is not None else "disconnected"] += 1
        self.by_endpoint[record.endpoint] += 1

    def clear(self) -> None:
        self.by_behaviour.clear()
        self.by_status.clear()
        self.by_endpoint.clear()


class SimulatorState:
    """Everything that changes while the simulator runs. Lives on one event loop."""

    def __init__(
        self,
        config: SimulatorConfig,
        fixtures: Mapping[str, Mapping[str, Any]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.fixtures = fixtures
        self.clock = clock
        self.rules: dict[str, tuple[Behaviour, ...]] = parse_script(config.script)
        self.attempts: Counter[str] = Counter()
        self.records: deque[RequestRecord] = deque(maxlen=config.record_limit)
        # Completions and model listings are counted apart: "total" has always meant
        # model calls, the thing that costs budget, and a health probe is not one.
        self._completions = _Counts()
        self._listings = _Counts()
        self.models_asked: dict[str, None] = {}
        self.outage: Outage | None = None
        self.in_flight = 0
        self.closing = asyncio.Event()

    def next_attempt(self, key: str) -> int:
        self.attempts[key] += 1
        return self.attempts[key]

    def record(self, record: RequestRecord) -> None:
        self.records.append(record)
        counts = self._listings if record.endpoint == MODELS_ENDPOINT else self._completions
        counts.add(record)

    def reset(self) -> None:
        """Forget records, attempts, stats and models asked for; keep script and outage."""
        self.attempts.clear()
        self.records.clear()
        self._completions.clear()
        self._listings.clear()
        self.models_asked.clear()

    def stats(self) -> dict[str, Any]:
        done, listed = self._completions, self._listings
        return {
            "total": sum(done.by_endpoint.values()),
            "by_behaviour": dict(done.by_behaviour),
            "by_status": dict(done.by_status),
            "by_endpoint": dict(done.by_endpoint),
            "in_flight": self.in_flight,
            "model_listings": {
                "total": sum(listed.by_endpoint.values()),
                "by_behaviour": dict(listed.by_behaviour),
                "by_status": dict(listed.by_status),
            },
        }

    def listed_models(self) -> list[str]:
        """:data:`ALWAYS_LISTED_MODEL`, then every model asked for, in first-asked order."""
        return list(dict.fromkeys([ALWAYS_LISTED_MODEL, *self.models_asked]))

    def start_outage(self, status: int, seconds: float | None) -> None:
        deadline = None if seconds is None else self.clock() + seconds
        self.outage = Outage(status, deadline)

    def active_outage(self) -> Outage | None:
        """The outage in force now, if any; one whose deadline has passed is forgotten."""
        outage = self.outage
        if outage is not None and outage.deadline is not None and self.clock() >= outage.deadline:
            self.outage = outage = None
        return outage

    def outage_body(self) -> dict[str, Any]:
        """``{"active", "status", "remaining_s"}``; ``remaining_s`` is null until DELETE."""
        outage = self.active_outage()
        if outage is None:
            return {"active": False, "status": None, "remaining_s": 0.0}
        remaining = None if outage.deadline is None else max(0.0, outage.deadline - self.clock())
        return {"active": True, "status": outage.status, "remaining_s": remaining}

    async def pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the server shuts down."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), seconds)


STATE = web.AppKey("simulator_state", SimulatorState)
