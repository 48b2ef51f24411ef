"""Real, script-driven implementations of the project's I/O protocols (no MagicMock)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from streams.providers.base import Completion, CompletionRequest


def answer(
    text: str,
    *,
    finish: str = "stop",
    model: str = "m-2026",
    tokens: tuple[int, int] = (100, 20),
) -> Completion:
    return Completion(
        text=text,
        finish_reason=finish,
        model_reported=model,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        latency_s=0.01,
    )


@dataclass
class ScriptedProvider:
    """A Provider that returns (or raises) the scripted items in order, last one repeating."""

    script: Sequence[Completion | Exception]
    name: str = "scripted"
    model: str = "m"
    requests: list[CompletionRequest] = field(default_factory=list)
    closed: bool = False

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        item = self.script[min(len(self.requests), len(self.script)) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    async def aclose(self) -> None:
        self.closed = True


class FakeClock:
    """A monotonic clock that only moves when told to (or when a NoSleep sleeps on it)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class NoSleep:
    """An injected sleep that records delays instead of waiting; advances ``clock`` if given."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.delays: list[float] = []
        self.clock = clock

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.clock is not None:
            self.clock.now += delay


class MemoryCache:
    """An in-process ResultCache (the Kafka-backed one is tested against the broker)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    async def put(self, key: str, value: bytes) -> None:
        self.data[key] = value
