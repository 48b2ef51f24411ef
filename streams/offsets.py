"""Offset bookkeeping and key-ordered scheduling for concurrent processing.

Two rules keep concurrency from losing records:

* **Commit only below the lowest unfinished offset.** A partition's committable
  offset is the smallest offset still in flight, or one past the highest offset
  finished when nothing is in flight. A crash can then only cause
  re-processing, never a gap. (faust's ``agent(concurrency=N)`` commits past
  in-flight messages: faust-streaming issue 606. The faust engine's
  :class:`streams.faust_app.SafeConsumer` commits from this tracker instead.)
* **Same key, same order.** Records with the same key form a chain: each waits
  for its predecessor to finish before it starts. Keyless records are
  independent, as Kafka gives them no ordering beyond the partition.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Hashable
from dataclasses import dataclass, field

__all__ = ["KeyedChains", "OffsetTracker", "PartitionOffsets"]


@dataclass
class PartitionOffsets:
    """In-flight offsets of one partition."""

    pending: set[int] = field(default_factory=set)
    heap: list[int] = field(default_factory=list)
    next_commit: int | None = None  # one past the highest finished offset
    committed: int | None = None

    def add(self, offset: int) -> None:
        self.pending.add(offset)
        heapq.heappush(self.heap, offset)

    def done(self, offset: int) -> None:
        self.pending.discard(offset)
        if self.next_commit is None or offset + 1 > self.next_commit:
            self.next_commit = offset + 1

    def committable(self) -> int | None:
        while self.heap and self.heap[0] not in self.pending:
            heapq.heappop(self.heap)
        if self.heap:
            return self.heap[0]
        return self.next_commit


class OffsetTracker:
    """Tracks in-flight offsets per partition and says what is safe to commit."""

    def __init__(self) -> None:
        self._parts: dict[Hashable, PartitionOffsets] = {}

    def add(self, tp: Hashable, offset: int) -> None:
        self._parts.setdefault(tp, PartitionOffsets()).add(offset)

    def done(self, tp: Hashable, offset: int) -> None:
        part = self._parts.get(tp)
        if part is not None:
            part.done(offset)

    def committable(self, tp: Hashable) -> int | None:
        """The offset ``tp`` may be committed up to now: its lowest unfinished one."""
        part = self._parts.get(tp)
        return part.committable() if part is not None else None

    def in_flight(self, tp: Hashable | None = None) -> int:
        if tp is not None:
            part = self._parts.get(tp)
            return len(part.pending) if part else 0
        return sum(len(p.pending) for p in self._parts.values())

    def to_commit(self) -> dict[Hashable, int]:
        """Offsets that advanced since the last :meth:`mark_committed`."""
        out: dict[Hashable, int] = {}
        for tp, part in self._parts.items():
            offset = part.committable()
            if offset is not None and (part.committed is None or offset > part.committed):
                out[tp] = offset
        return out

    def mark_committed(self, offsets: dict[Hashable, int]) -> None:
        for tp, offset in offsets.items():
            part = self._parts.get(tp)
            if part is not None:
                part.committed = offset

    def forget(self, tp: Hashable) -> None:
        self._parts.pop(tp, None)

    def partitions(self) -> list[Hashable]:
        return list(self._parts)


class KeyedChains:
    """Per-key ordering: :meth:`wait_turn` returns once the key's predecessor is done."""

    def __init__(self) -> None:
        self._tails: dict[Hashable, asyncio.Future[None]] = {}

    def enqueue(self, key: Hashable) -> tuple[asyncio.Future[None] | None, asyncio.Future[None]]:
        """Reserve a place in ``key``'s chain. Returns (predecessor, own completion)."""
        loop = asyncio.get_running_loop()
        mine: asyncio.Future[None] = loop.create_future()
        previous = self._tails.get(key)
        self._tails[key] = mine
        return previous, mine

    def release(self, key: Hashable, mine: asyncio.Future[None]) -> None:
        if not mine.done():
            mine.set_result(None)
        if self._tails.get(key) is mine:
            del self._tails[key]

    def __len__(self) -> int:
        return len(self._tails)
