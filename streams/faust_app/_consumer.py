"""A faust consumer that never commits at or past the lowest unfinished offset.

faust's ``Consumer._new_offset`` commits the first run of consecutive *acked* offsets.
With ``agent(concurrency=N)`` acks arrive out of order, and the check that should stop
at an unacked head (``min(acked) - committed > 1``) passes an ack at committed+1 while
``committed`` itself is still in flight, and is skipped entirely while the committed
offset is ``None`` or 0 (a fresh group). A crash then loses the in-flight records
(faust-streaming issue 606; PR 707, unmerged). Acks alone cannot fix it from the app
either: a stream acks the messages it skips around a rebalance (``skipped_value`` in
``faust/streams.py``) whether or not anything processed them.

:class:`SafeConsumer` keeps its own :class:`~streams.offsets.OffsetTracker` for the
topics the extraction agents own (:attr:`SafeConsumer.owned_topics`):

* every message the driver hands out (:meth:`getmany`) is added as unfinished;
* only :meth:`release` (the agent, after the outcome's produce was acknowledged)
  finishes it; faust's own acks, skip-acks included, finish nothing;
* :meth:`_new_offset` answers the tracker's committable offset (the lowest unfinished
  one, or one past the highest finished), never faust's ack run;
* :meth:`release` acks faust's messages strictly as a contiguous prefix per partition,
  so faust's bookkeeping (``wait_empty``, its sensors) sees acks in offset order.

Topics the agents do not own keep faust's behaviour. The overridden methods are faust
internals: ``pyproject.toml`` pins faust-streaming to the minor range this was tested
on, and ``tests/unit/test_faust_consumer.py`` fails against the stock consumer, so an
upgrade that changes them shows up there first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

from streams.offsets import OffsetTracker

__all__ = ["SafeConsumer", "SafeTransport"]


class SafeConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, committing only below the lowest unfinished offset."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracker = OffsetTracker()
        #: Topics whose commits follow :attr:`tracker`; the app names its input topics.
        self.owned_topics: set[str] = set()
        #: Drains the agents' records of revoked partitions (bounded), set by the app.
        self.on_revoke: Callable[[set[TP]], Awaitable[None]] | None = None
        # Messages handed out and not yet acked to faust, per partition, by offset.
        self._held: dict[TP, dict[int, Message]] = {}

    # -- what the agents call -------------------------------------------------------------

    def fetched(self, tp: TP, offset: int) -> None:
        """``offset`` of ``tp`` was handed out: unfinished until :meth:`release`."""
        if tp.topic in self.owned_topics:
            self.tracker.add(tp, offset)

    def release(self, message: Message) -> None:
        """``message`` is finished (its outcome acknowledged); ack the finished prefix."""
        tp = message.tp
        if tp not in self.tracker.partitions():
            return  # revoked meanwhile: the partition's next owner redoes it
        self.tracker.done(tp, message.offset)
        # Behind a held head a whole partition can wait here for its ack: keep the
        # bookkeeping, not the payload.
        message.value = message.key = message.headers = None
        held = self._held.setdefault(tp, {})
        held[message.offset] = message
        limit = self.tracker.committable(tp)
        if limit is None:
            return
        for offset in sorted(o for o in held if o < limit):
            self.ack(held.pop(offset))

    # -- faust internals ------------------------------------------------------------------

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        async for tp, message in super().getmany(timeout):
            self.fetched(tp, message.offset)
            yield tp, message

    def _filter_tps_with_pending_acks(self, topics: Any = None) -> Iterator[TP]:
        stock = set(super()._filter_tps_with_pending_acks(topics))
        ours = {
            tp
            for tp in self.tracker.partitions()
            if isinstance(tp, TP) and (topics is None or tp in topics or tp.topic in topics)
        }
        return iter(stock | ours)

    def _new_offset(self, tp: TP) -> int | None:
        if tp.topic not in self.owned_topics:
            stock: int | None = super()._new_offset(tp)
            return stock
        offset = self.tracker.committable(tp)
        # faust's ack list is not consulted for owned topics; keep it from growing.
        self._acked.pop(tp, None)
        self._acked_index.pop(tp, None)
        committed = self._committed_offset[tp]
        if offset is None or (committed is not None and offset <= committed):
            return None
        return offset

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        if self.on_revoke is not None and not self.app.should_stop:
            # Finish what can finish within the bound, commit it while the partitions are
            # still ours, and leave the rest to the next owner.
            await self.on_revoke(revoked)
            await self.commit(revoked)
        self._forget(revoked)
        await super().on_partitions_revoked(revoked)

    def _forget(self, tps: Iterable[TP]) -> None:
        # The next owner (maybe this one) re-reads from the committed offset.
        for tp in tps:
            self.tracker.forget(tp)
            self._held.pop(tp, None)


class SafeTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with :class:`SafeConsumer`."""

    Consumer = SafeConsumer
