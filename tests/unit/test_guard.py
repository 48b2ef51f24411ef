"""The guard's outage judgement: distinct records, latest result, sliding window, suspects."""

from __future__ import annotations

from streams.guard import GuardState, ProviderGuard
from tests.fakes import FakeClock


def test_a_record_that_recovered_is_not_failing() -> None:
    """Only each record's latest result counts: a failure followed by a success is healthy."""
    guard = ProviderGuard(min_records=2, failure_ratio=0.5, clock=FakeClock())
    guard.failure("a", 0)
    guard.success("a")
    guard.failure("b", 0)
    assert guard.state is GuardState.CLOSED  # one failing record of two distinct ones


def test_opens_on_the_ratio_of_distinct_failing_records() -> None:
    """Three distinct failing records out of four open the breaker (ratio 0.5, minimum 3)."""
    guard = ProviderGuard(min_records=3, failure_ratio=0.5, clock=FakeClock())
    guard.success("ok")
    for record in ("a", "b"):
        guard.failure(record, 0)
    assert not guard.is_open
    guard.failure("c", 0)
    assert guard.is_open
    assert guard.trips == 1


def test_results_older_than_the_window_are_forgotten() -> None:
    """Failures that left the sliding window are no evidence any more."""
    clock = FakeClock()
    guard = ProviderGuard(min_records=3, window_s=10.0, clock=clock)
    guard.failure("a", 0)
    guard.failure("b", 0)
    clock.now += 11.0
    guard.failure("c", 0)
    assert not guard.is_open


def test_one_record_failing_many_times_is_one_record() -> None:
    """A record's repeated failures count once, so one poison document cannot open it."""
    guard = ProviderGuard(min_records=3, clock=FakeClock())
    for _ in range(50):
        guard.failure("poison", 0)
    assert not guard.is_open


def test_suspects_are_no_evidence_of_an_outage() -> None:
    """Records already failing on their own fault do not feed the breaker."""
    guard = ProviderGuard(min_records=3, clock=FakeClock())
    for record in ("a", "b", "c", "d"):
        guard.failure(record, 0, suspect=True)
    assert not guard.is_open


def test_judging_stays_linear_in_the_number_of_requests() -> None:
    """Four times as many results in the window cost about four times the work, not 16."""
    import time

    def run(n: int) -> float:
        guard = ProviderGuard(min_records=10**9, clock=FakeClock())
        started = time.perf_counter()
        for i in range(n):
            guard.success(i)
            guard.failure(("f", i), 0)
        return time.perf_counter() - started

    run(2000)  # warm up
    small, large = min(run(10_000) for _ in range(3)), min(run(40_000) for _ in range(3))
    assert large < small * 9  # linear is ~4x, quadratic ~16x
