"""The I/O boundaries the pipeline core depends on, as Protocols.

The core (:mod:`streams.extract`, :mod:`streams.pipeline`) only sees these; the
Kafka-backed implementations live in :mod:`streams.state`, and tests pass
in-memory ones. A fake here is a real object, never a ``MagicMock``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from streams.providers.base import Provider

__all__ = ["Provider", "Reservation", "ResultCache", "SpendGuard"]


@runtime_checkable
class ResultCache(Protocol):
    """Maps a cache key (see :func:`streams.cache_key.cache_key`) to a stored result."""

    def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...


@dataclass(frozen=True)
class Reservation:
    """A spend reservation. ``denied`` names the scope whose cap it would break."""

    scopes: tuple[str, ...]
    amount_usd: float
    window: int
    denied: str | None = None
    #: The cap of the denied scope, for the over-budget envelope.
    limit: float | None = None


@runtime_checkable
class SpendGuard(Protocol):
    """Reserves the worst-case cost of a model call before it, settles it after.

    Scopes are ``"pipeline"`` and, when the input names one, ``"tenant:<id>"``.
    """

    async def reserve(self, scopes: tuple[str, ...], amount_usd: float) -> Reservation: ...

    def settle(self, reservation: Reservation, actual_usd: float) -> None: ...

    def remaining(self, scope: str) -> float | None:
        """Cap left for ``scope`` in the current window, across all workers; None if uncapped."""
        ...
