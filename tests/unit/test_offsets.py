"""Commit only below the lowest unfinished offset; same key, same order."""

from __future__ import annotations

import asyncio

from streams.offsets import KeyedChains, OffsetTracker


def test_commit_stops_at_lowest_unfinished() -> None:
    """Finishing later offsets first does not move the commit past an unfinished one."""
    t = OffsetTracker()
    for off in (10, 11, 12, 13):
        t.add("p0", off)
    t.done("p0", 12)
    t.done("p0", 13)
    assert t.to_commit() == {"p0": 10}
    t.done("p0", 10)
    assert t.to_commit() == {"p0": 11}
    t.done("p0", 11)
    assert t.to_commit() == {"p0": 14}


def test_nothing_new_to_commit_after_mark() -> None:
    """An offset is proposed once; after mark_committed it is not proposed again."""
    t = OffsetTracker()
    t.add("p0", 0)
    t.done("p0", 0)
    offsets = t.to_commit()
    t.mark_committed(offsets)
    assert t.to_commit() == {}
    assert t.in_flight() == 0


def test_partitions_are_independent() -> None:
    """A stuck record in one partition does not hold back another."""
    t = OffsetTracker()
    t.add("a", 5)
    t.add("b", 7)
    t.done("b", 7)
    assert t.to_commit() == {"a": 5, "b": 8}
    assert t.in_flight("a") == 1


async def test_keyed_chains_run_in_order() -> None:
    """Tasks on one key run strictly in enqueue order even if later ones are faster."""
    chains = KeyedChains()
    seen: list[int] = []

    async def job(i: int, delay: float) -> None:
        prev, mine = chains.enqueue("k")
        try:
            if prev is not None:
                await prev
            await asyncio.sleep(delay)
            seen.append(i)
        finally:
            chains.release("k", mine)

    await asyncio.gather(*(job(i, 0.02 if i == 0 else 0.0) for i in range(5)))
    assert seen == [0, 1, 2, 3, 4]
    assert len(chains) == 0
