"""A spend cap per pipeline and per tenant per time window, shared through Kafka.

Kafka is the sequencer; there is no coordinator of our own. Workers claim
budget in chunks by appending a claim to a single-partition topic. Every worker
reads that log in the same order and applies the same rule: a claim is granted
if the claims granted before it in that window and scope, plus its amount,
stay within the cap it states. So every worker reaches the same decision for
every claim, the granted total never exceeds the cap, and a restarted worker
rebuilds the totals by reading the log again.

A worker then spends from its granted balance locally: each model call
reserves its worst-case cost first and refunds the unused part afterwards.
Actual spend is therefore bounded by granted claims, which are bounded by
the cap, as long as no call costs more than its reservation (the input
estimate is an upper bound of the tokenizer's count, and the provider stops at
``max_output_tokens``). One that does is still settled at its actual cost: the
balance goes negative, the scope's next reservation must claim the debt too,
and the cap is passed by at most the overruns of the calls in flight.
The price of that guarantee: a worker's unspent balance is stranded
when it stops, and near the cap one worker may refuse a record while another
still holds balance.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from streams.errors import StateStoreError
from streams.kafka.clients import KafkaTarget
from streams.protocols import Reservation
from streams.state._base import TopicBacked
from streams.state.admin import TopicSpec, topic_partitions

__all__ = ["SpendCaps", "SpendLedger"]

log = logging.getLogger("streams.state.spend")

Clock = Callable[[], float]


@dataclass(frozen=True)
class SpendCaps:
    """Caps in USD per window. ``None`` means no cap for that scope."""

    pipeline_usd: float | None = None
    tenant_default_usd: float | None = None
    tenants: tuple[tuple[str, float], ...] = ()
    window_s: int = 3600
    claim_usd: float | None = None

    def cap_for(self, scope: str) -> float | None:
        if scope == "pipeline":
            return self.pipeline_usd
        if scope.startswith("tenant:"):
            tenant = scope.removeprefix("tenant:")
            return dict(self.tenants).get(tenant, self.tenant_default_usd)
        return None

    def chunk(self, cap: float) -> float:
        return self.claim_usd if self.claim_usd is not None else cap / 50


class SpendLedger(TopicBacked):
    """Implements :class:`streams.protocols.SpendGuard` over a Kafka claim log."""

    poll_ms = 200

    def __init__(
        self,
        kafka: KafkaTarget,
        topic: str,
        caps: SpendCaps,
        *,
        worker_id: str | None = None,
        clock: Clock = time.time,
        retention_windows: int = 4,
    ) -> None:
        super().__init__(kafka, topic)
        self.caps = caps
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self._clock = clock
        self._retention_ms = max(1, retention_windows) * caps.window_s * 1000
        self._granted: dict[tuple[int, str], float] = {}  # all workers, from the log
        self._balance: dict[tuple[int, str], float] = {}  # this worker's unspent grants
        self.spent: dict[tuple[int, str], float] = {}  # this worker's actual spend
        self._waiting: dict[str, asyncio.Future[bool]] = {}
        self._locks: dict[tuple[int, str], asyncio.Lock] = {}
        self._tp = TopicPartition(topic, 0)

    def window(self) -> int:
        return math.floor(self._clock() / self.caps.window_s) * self.caps.window_s

    def granted(self, scope: str, window: int | None = None) -> float:
        """Total granted to all workers for ``scope`` in ``window`` (default: now)."""
        return self._granted.get((self.window() if window is None else window, scope), 0.0)

    # -- SpendGuard --------------------------------------------------------------------

    def remaining(self, scope: str) -> float | None:
        cap = self.caps.cap_for(scope)
        return None if cap is None else max(0.0, cap - self.granted(scope))

    async def reserve(self, scopes: tuple[str, ...], amount_usd: float) -> Reservation:
        window = self.window()
        taken: list[str] = []
        for scope in scopes:
            cap = self.caps.cap_for(scope)
            if cap is None:
                continue
            ok = await self._take(window, scope, amount_usd, cap)
            if not ok:
                for done in taken:  # give back what the other scopes reserved
                    self._balance[(window, done)] += amount_usd
                return Reservation(scopes, amount_usd, window, denied=scope, limit=cap)
            taken.append(scope)
        return Reservation(tuple(taken), amount_usd, window)

    def settle(self, reservation: Reservation, actual_usd: float) -> None:
        refund = reservation.amount_usd - actual_usd
        for scope in reservation.scopes:
            key = (reservation.window, scope)
            self._balance[key] = self._balance.get(key, 0.0) + refund
            self.spent[key] = self.spent.get(key, 0.0) + actual_usd

    # -- claims ------------------------------------------------------------------------

    async def _take(self, window: int, scope: str, amount: float, cap: float) -> bool:
        key = (window, scope)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            need = amount - self._balance.get(key, 0.0)
            if need > 0:
                headroom = cap - self._granted.get(key, 0.0)
                want = min(max(self.caps.chunk(cap), need), headroom) if headroom > need else need
                granted = await self._claim(window, scope, want, cap)
                if not granted and want > need:
                    # A whole chunk no longer fits; claim exactly what this call needs.
                    granted = await self._claim(window, scope, need, cap)
                if not granted:
                    return False
            self._balance[key] = self._balance.get(key, 0.0) - amount
            return True

    async def _claim(self, window: int, scope: str, amount: float, cap: float) -> bool:
        if self._producer is None:
            raise StateStoreError("spend ledger is not started")
        claim_id = uuid.uuid4().hex
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[claim_id] = fut
        body = {
            "id": claim_id,
            "worker": self.worker_id,
            "window": window,
            "scope": scope,
            "amount": amount,
            "cap": cap,
        }
        try:
            await self._producer.send_and_wait(
                self.topic, json.dumps(body).encode(), key=scope.encode()
            )
            granted = await asyncio.wait_for(fut, timeout=30)
        except (KafkaError, TimeoutError) as exc:
            raise StateStoreError(f"spend claim failed: {exc}") from exc
        finally:
            self._waiting.pop(claim_id, None)
        if granted:
            key = (window, scope)
            self._balance[key] = self._balance.get(key, 0.0) + amount
        return granted

    def _apply(self, value: bytes) -> None:
        try:
            claim = json.loads(value)
            key = (int(claim["window"]), str(claim["scope"]))
            amount, cap = float(claim["amount"]), float(claim["cap"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed spend claim")
            return
        total = self._granted.get(key, 0.0)
        granted = total + amount <= cap + 1e-9
        if granted:
            self._granted[key] = total + amount
        fut = self._waiting.get(str(claim.get("id")))
        if fut is not None and not fut.done():
            fut.set_result(granted)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Create the claim log if needed, replay it, then follow it."""
        await self._open(
            TopicSpec(
                self.topic,
                1,
                config={"cleanup.policy": "delete", "retention.ms": str(self._retention_ms)},
            )
        )

    async def _load(self) -> None:
        assert self._consumer is not None
        await topic_partitions(self.kafka, self.topic)
        self._consumer.assign([self._tp])
        await self._consumer.seek_to_beginning(self._tp)
        end = (await self._consumer.end_offsets([self._tp]))[self._tp]
        while await self._consumer.position(self._tp) < end:
            self._apply_batch(await self._consumer.getmany(self._tp, timeout_ms=500))

    def _apply_batch(self, batches: dict[TopicPartition, list[Any]]) -> int:
        n = 0
        for records in batches.values():
            for rec in records:
                value = getattr(rec, "value", None)
                if value is not None:
                    self._apply(value)
                    n += 1
        return n
