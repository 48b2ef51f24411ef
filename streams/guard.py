"""Record fault or provider fault: the circuit breaker, the deployment hold, a record's clock.

One :class:`ProviderGuard` per pipeline sees the result of every model request
and decides whose fault a failure is::

    failure seen                              decision
    ----------------------------------------  --------------------------------------------
    many distinct records failing in the      provider outage: the breaker opens for
      window (ratio >= threshold, at least      ``cool_off_s``, fetching pauses, waiting
      ``min_records`` of them)                  records spend no retry budget and do not age
    one record failing while other records    the record's fault: it counts against the
      succeeded since its try began             record's ``transient_retries`` and age
    a failure while nobody else succeeded     not counted (it may be an outage too quiet
      (and the breaker is closed)               to trip the breaker); the record still ages
    failures in the window before a trip      forgiven: they were the outage's first
                                                signs (a record's verdict waits one backoff)
    401/403/404 (ProviderDeploymentFault)     the deployment's fault: the pipeline is held,
                                                a probe that spends no budget runs with
                                                backoff, and everyone resumes when it clears
    a spend-log failure (StateStoreError)     held the same way; the claim itself retries

After its cool-off the breaker closes with an empty window, so it needs fresh
evidence to open again: a worker whose only failing records are poison keeps
going, and the poison records run out their own budgets.

:class:`RecordClock` is a record's age with the paused time left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

__all__ = ["GuardState", "ProviderGuard", "RecordClock"]

log = logging.getLogger("streams.guard")

Clock = Callable[[], float]
Probe = Callable[[], Awaitable[None]]


class GuardState(enum.StrEnum):
    """What the guard is doing; the worker mirrors it in metrics and in fetch pausing."""

    CLOSED = "closed"
    OPEN = "open"
    HELD = "held"


@dataclass
class RecordClock:
    """A record's age since it started processing, not counting the time it was paused."""

    clock: Clock = time.monotonic
    started: float = 0.0
    paused_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.started:
            self.started = self.clock()

    def pause(self, seconds: float) -> None:
        self.paused_s += max(0.0, seconds)

    def age(self) -> float:
        return max(0.0, self.clock() - self.started - self.paused_s)


class ProviderGuard:
    """The breaker and the hold of one pipeline's provider (see the module table)."""

    def __init__(
        self,
        *,
        cool_off_s: float = 5.0,
        window_s: float = 10.0,
        failure_ratio: float = 0.5,
        min_records: int = 3,
        probe: Probe | None = None,
        probe_backoff_s: float = 1.0,
        probe_backoff_max_s: float = 30.0,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.cool_off_s = cool_off_s
        self.window_s = window_s
        self.failure_ratio = failure_ratio
        self.min_records = min_records
        self.probe = probe
        self.probe_backoff_s = probe_backoff_s
        self.probe_backoff_max_s = probe_backoff_max_s
        self._clock = clock
        self._sleep = sleep
        # Each record's latest result in the window, kept incrementally so judging an
        # outage is O(1) per failure (this runs on the hot path of every failed request).
        self._window: deque[tuple[float, int, Hashable, bool]] = deque()
        self._latest: dict[Hashable, tuple[int, bool]] = {}
        self._failing = 0
        self._seq = 0
        self._probe_delay = probe_backoff_s
        self._open_until = 0.0
        self._trip_times: deque[float] = deque(maxlen=32)
        self.successes = 0
        self.trips = 0
        self.held_reason: str | None = None
        self.state_fault: str | None = None
        self._released = asyncio.Event()
        self._released.set()
        self._prober: asyncio.Task[None] | None = None

    # -- state ------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._clock() < self._open_until

    @property
    def state(self) -> GuardState:
        if self.held_reason is not None or self.state_fault is not None:
            return GuardState.HELD
        return GuardState.OPEN if self.is_open else GuardState.CLOSED

    @property
    def paused(self) -> bool:
        """True while records must not be fetched (breaker open or pipeline held)."""
        return self.state is not GuardState.CLOSED

    @property
    def reason(self) -> str | None:
        """Why the pipeline is paused, in words for a log line or a health endpoint."""
        if self.held_reason is not None:
            return self.held_reason
        if self.state_fault is not None:
            return self.state_fault
        if self.is_open:
            return "circuit open: many records failing at once (provider outage)"
        return None

    async def admit(self) -> float:
        """Wait until a request may go out; return the seconds waited (paused time)."""
        waited = 0.0
        while True:
            if not self._released.is_set():
                started = self._clock()
                await self._released.wait()
                waited += self._clock() - started
                continue
            delay = self._open_until - self._clock()
            if delay <= 0:
                return waited
            await self._sleep(delay)
            waited += delay

    # -- evidence ---------------------------------------------------------------------

    def success(self, record: Hashable) -> None:
        self.successes += 1
        self._probe_delay = self.probe_backoff_s  # the deployment works: next hold starts low
        self._see(record, ok=True)

    def failure(self, record: Hashable, successes_before: int, *, suspect: bool = False) -> bool:
        """Report a transient failure; True when it counts against the record itself.

        ``successes_before`` is :attr:`successes` when the record's try began: the
        failure is the record's own fault only if someone else succeeded since. A
        ``suspect`` record (one already failing while others succeeded) is no evidence
        of an outage, so poison records that hold many slots cannot open the breaker.
        """
        if not suspect:
            self._see(record, ok=False)
        if self._should_open():
            now = self._clock()
            self._open_until = now + self.cool_off_s
            self._forget_window()
            self._trip_times.append(now)
            self.trips += 1
            log.warning(
                "circuit open for %.1fs: most records are failing (provider outage); "
                "fetching paused, no record spends its retry budget",
                self.cool_off_s,
            )
        if self.is_open:
            return False
        return self.successes > successes_before

    def counted(self, failure_times: list[float]) -> int:
        """How many of a record's counted failures still count: not those before a trip."""
        trips = self._trip_times
        return sum(
            1 for t in failure_times if not any(trip - self.window_s <= t <= trip for trip in trips)
        )

    def _see(self, record: Hashable, *, ok: bool) -> None:
        now = self._clock()
        self._seq += 1
        previous = self._latest.get(record)
        if previous is not None and not previous[1]:
            self._failing -= 1
        self._latest[record] = (self._seq, ok)
        if not ok:
            self._failing += 1
        self._window.append((now, self._seq, record, ok))
        horizon = now - self.window_s
        while self._window and self._window[0][0] < horizon:
            _t, seq, old, old_ok = self._window.popleft()
            if self._latest.get(old, (None, True))[0] == seq:  # its latest result left
                del self._latest[old]
                if not old_ok:
                    self._failing -= 1

    def _forget_window(self) -> None:
        self._window.clear()
        self._latest.clear()
        self._failing = 0

    def _should_open(self) -> bool:
        if self.is_open:
            return False
        failing = self._failing
        return failing >= self.min_records and failing >= self.failure_ratio * len(self._latest)

    # -- deployment and state faults ---------------------------------------------------

    def hold(self, reason: str) -> None:
        """The deployment is at fault: pause everyone and probe until it clears."""
        if self.held_reason is None:
            log.error(
                "pipeline held: %s; nothing is dead-lettered, fetching is paused and a probe "
                "that spends no budget retries with backoff (fix the key, model or permission)",
                reason,
            )
        self.held_reason = reason
        self._released.clear()
        if self._prober is None or self._prober.done():
            self._prober = asyncio.create_task(self._probe_until_clear())

    async def _probe_until_clear(self) -> None:
        # Unbounded on purpose: a deployment fault lasts until someone fixes the key, model
        # or ACL (the alert says so), and nothing may be dead-lettered meanwhile. The delay
        # keeps growing across holds with no success between them, so a probe that passes
        # while every call still fails (a key that may list models but not call them)
        # costs one request per capped backoff, not a burst per second.
        delay = self._probe_delay
        while True:
            await self._sleep(delay)
            if self.probe is None:
                break  # no probe: the next real request finds out (a 401 costs nothing)
            try:
                await self.probe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("probe: still failing (%s); next probe in %.1fs", exc, delay)
                delay = min(delay * 2, self.probe_backoff_max_s)
                continue
            break
        self._probe_delay = min(delay * 2, self.probe_backoff_max_s)
        log.warning("pipeline resumed: the probe succeeded (%s cleared)", self.held_reason)
        self.held_reason = None
        self._released.set()

    def state_failed(self, reason: str) -> None:
        if self.state_fault is None:
            log.error("pipeline held: %s; retrying with backoff, nothing is dead-lettered", reason)
        self.state_fault = reason

    def state_ok(self) -> None:
        if self.state_fault is not None:
            log.warning("pipeline resumed: state store reachable again (%s)", self.state_fault)
        self.state_fault = None

    async def close(self) -> None:
        if self._prober is not None and not self._prober.done():
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
        self._released.set()
