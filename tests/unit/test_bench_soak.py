"""The soak's summary: the RSS criterion, lag, /readyz and breaker figures from its samples."""

from __future__ import annotations

from typing import Any

from bench.notes import soak_section
from bench.soak import rss_at, scrape, summarise


def _row(t_s: float, rss: float | None, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"t_s": t_s, "rss_mb": rss, "lag": 0, "readyz": 200, "guard": "closed"}
    row.update(trips=0, circuit_open=0)
    row.update(extra)
    return row


def test_rss_at_takes_the_first_sample_at_or_after_the_time() -> None:
    """The 5-minute figure is the first sample at or after 300 s that has an RSS."""
    samples = [_row(290, 100), _row(300, None), _row(310, 104), _row(320, 200)]
    assert rss_at(samples, 300) == 104
    assert rss_at(samples, 400) is None


def test_criterion_holds_within_ten_percent_and_fails_beyond() -> None:
    """RSS(30) may exceed RSS(5) by the cache bound plus 10% of RSS(5), not more."""
    ok = summarise([_row(300, 100), _row(1800, 110)], cache_bound_mb=0)
    assert ok["rss_mb_limit"] == 110
    assert ok["rss_criterion_held"] is True
    grown = summarise([_row(300, 100), _row(1800, 110.5)], cache_bound_mb=0)
    assert grown["rss_criterion_held"] is False
    bounded = summarise([_row(300, 100), _row(1800, 114)], cache_bound_mb=5)
    assert bounded["rss_mb_limit"] == 115
    assert bounded["rss_criterion_held"] is True


def test_a_short_run_leaves_the_criterion_unevaluated() -> None:
    """A run that ends before 30 minutes says so (None), never passes."""
    result = summarise([_row(0, 90), _row(60, 95)])
    assert result["rss_mb_at_30min"] is None
    assert result["rss_criterion_held"] is None


def test_lag_readyz_and_breaker_figures() -> None:
    """Max lag skips unanswered samples; non-200 and open-circuit samples are counted."""
    samples = [
        _row(0, 90, lag=5, trips=1),
        _row(10, 90, lag=None, readyz=None, guard=None),
        _row(20, 90, lag=12, readyz=503, circuit_open=1, guard="open", trips=2),
        _row(30, 90, lag=0, trips=3),
    ]
    result = summarise(samples)
    assert result["max_lag"] == 12
    assert result["readyz_non_200"] == 2
    assert result["readyz_statuses"] == {"200": 2, "503": 1, "None": 1}
    assert result["circuit_trips"] == 3
    assert result["circuit_opens_seen_by_sampling"] == 1
    assert result["guard_states"] == {"closed": 2, "open": 1, "None": 1}


def test_scrape_reads_routes_and_the_breaker_from_metrics_text() -> None:
    """Records out per outcome, trips and the open gauge come from the exposition text."""
    text = "\n".join(
        [
            "# TYPE streams_records_out counter",
            'streams_records_out_total{pipeline="soak",outcome="valid"} 7.0',
            'streams_records_out_total{pipeline="soak",outcome="dlq"} 2.0',
            "# TYPE streams_circuit_trips counter",
            'streams_circuit_trips_total{pipeline="soak"} 3.0',
            "# TYPE streams_circuit_open gauge",
            'streams_circuit_open{pipeline="soak",provider="openai"} 1.0',
            "",
        ]
    )
    assert scrape(text) == {"out": {"dlq": 2, "valid": 7}, "trips": 3, "circuit_open": 1}


def test_soak_section_is_empty_without_a_soak_run() -> None:
    """BENCHMARKS.md has no Soak section until bench/soak.json exists."""
    assert soak_section(None) == ""
