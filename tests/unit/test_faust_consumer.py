"""The faust engine's consumer never commits past an unfinished offset; faust's own does.

Drives the real faust ``Consumer`` (aiokafka driver) and :class:`SafeConsumer` through
``Consumer.commit()``, faust's own code path from the ack lists to the committed offset.
Only the broker call (``_commit``) and the assignment are given by the test, so no broker
runs. The stock case is the canary for a faust upgrade: if faust fixes issue 606, it
fails, and the override in ``streams/faust_app/_consumer.py`` can be reconsidered.
"""

from __future__ import annotations

import random
from typing import Any

import faust
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

from streams.faust_app._consumer import SafeConsumer

TOPIC = "in"
PARTITIONS = (TP(TOPIC, 0), TP(TOPIC, 1))
TRIALS = 200
RECORDS = 24


_APP = faust.App("faust-consumer-test", broker="kafka://127.0.0.1:1")
_APP.topics._acking_topics.add(TOPIC)


def _consumer(base: type[Any]) -> Any:
    """A real faust consumer of ``base`` whose commits go nowhere instead of to a broker."""

    class NoBroker(base):  # type: ignore[misc, valid-type]
        async def _commit(self, offsets: dict[TP, int]) -> bool:
            return True

        def assignment(self) -> set[TP]:
            return set(PARTITIONS)

    transport = faust_aiokafka.Transport(_APP.conf.broker_consumer, _APP)

    async def nothing(*_a: Any) -> None:
        return None

    consumer = NoBroker(
        transport,
        callback=nothing,
        on_partitions_revoked=nothing,
        on_partitions_assigned=nothing,
    )
    if isinstance(consumer, SafeConsumer):
        consumer.owned_topics.add(TOPIC)
    return consumer


async def _trial(base: type[Any], rng: random.Random, start: int | None) -> list[str]:
    """One random run; the violations it saw (a commit past an unfinished offset, or a
    final commit short of the end)."""
    consumer = _consumer(base)
    first = start or 0
    unfinished: dict[TP, set[int]] = {}
    messages: list[Message] = []
    for tp in PARTITIONS:
        if start is not None:
            consumer._committed_offset[tp] = start
        unfinished[tp] = set(range(first, first + RECORDS))
        for offset in range(first, first + RECORDS):
            message = Message(TOPIC, tp.partition, offset, 0.0, 0, None, b"k", b"v", None)
            messages.append(message)
            if isinstance(consumer, SafeConsumer):
                consumer.fetched(tp, offset)  # what its getmany does for each record
            else:
                consumer.track_message(message)
    violations: list[str] = []
    order = list(messages)
    rng.shuffle(order)
    for message in order:
        if rng.random() < 0.2:
            # A skip-ack: faust acks a message no agent finished (streams.py, skipped_value).
            victim = rng.choice(messages)
            if victim.offset in unfinished[victim.tp]:
                consumer.ack(victim)
        unfinished[message.tp].discard(message.offset)
        if isinstance(consumer, SafeConsumer):
            consumer.release(message)
        else:
            consumer.ack(message)  # what a stock agent's stream does when a record is done
        if rng.random() < 0.5:
            await consumer.commit()
            for tp in PARTITIONS:
                committed = consumer._committed_offset[tp]
                lowest = min(unfinished[tp], default=first + RECORDS)
                if committed is not None and committed > lowest:
                    violations.append(
                        f"{tp.partition}: committed {committed} > unfinished {lowest}"
                    )
    await consumer.commit()
    for tp in PARTITIONS:
        if consumer._committed_offset[tp] != first + RECORDS:
            violations.append(f"{tp.partition}: ends at {consumer._committed_offset[tp]}")
    consumer._thread.thread_loop.close()  # the driver's thread loop, never started here
    return violations


@pytest.mark.parametrize("start", [None, 0, 1000])
async def test_safe_consumer_never_commits_past_an_unfinished_offset(start: int | None) -> None:
    """Random completions and skip-acks: each commit <= lowest unfinished; ends at the end."""
    rng = random.Random(606 + (start or 0))
    failed = [v for _ in range(TRIALS) for v in await _trial(SafeConsumer, rng, start)]
    assert failed == []


@pytest.mark.parametrize("start", [None, 0, 1000])
async def test_stock_consumer_commits_past_an_unfinished_offset(start: int | None) -> None:
    """The same runs against faust's stock consumer do commit past in-flight offsets (issue 606)."""
    rng = random.Random(606 + (start or 0))
    bad = 0
    for _ in range(TRIALS):
        if any("unfinished" in v for v in await _trial(faust_aiokafka.Consumer, rng, start)):
            bad += 1
    assert bad > TRIALS // 2, f"only {bad} of {TRIALS} trials committed past an unfinished offset"
