"""The I/O boundaries the pipeline core depends on, as Protocols.

The core (:mod:`streams.extract`, :mod:`streams.pipeline`) only sees these; the
Kafka-backed implementations live in :mod:`streams.state`, and tests pass
in-memory ones. A fake here is a real object, never a ``MagicMock``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from streams.providers.base import Provider

__all__ = ["Provider", "ResultCache", "SpendGuard"]


@runtime_checkable
class ResultCache(Protocol):
    """Maps a cache key (see :func:`streams.cache_key.cache_key`) to a stored result."""

    def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...


@runtime_checkable
class SpendGuard(Protocol):
    """Reserves spend before a model call and settles it afterwards.

    ``reserve`` returns ``None`` when the reservation fits every scope's cap,
    or the name of the scope whose cap it would break (e.g. ``"tenant:acme"``).
    """

    async def reserve(self, scopes: tuple[str, ...], amount_usd: float) -> str | None: ...

    def settle(self, scopes: tuple[str, ...], reserved_usd: float, actual_usd: float) -> None: ...
