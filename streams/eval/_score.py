"""Scoring: per-field exact and normalised match, routes, costs, latency percentiles.

A field is compared on the valid samples only (an invalid sample has no record);
``field_exact`` is over every compared field of every valid sample. Lists of
objects are also scored per sub-field and position (``line_items[].amount``), so
one wrong line does not hide behind "the list differs".

* **exact**: the same JSON value after typing: numbers compare as decimals
  (``12.5`` equals ``12.50``), dates as ISO text;
* **normalised**: strings also compared after Unicode NFKC, case folding,
  collapsing whitespace and trimming surrounding punctuation.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from streams.eval._run import SampleResult

__all__ = ["compare_fields", "percentile", "summarise"]

_SPACE = re.compile(r"\s+")
_EDGE = " \t.,;:!?\"'()[]{}"


def summarise(label: str, results: Sequence[SampleResult]) -> dict[str, Any]:
    """One configuration's figures, JSON-ready."""
    total = len(results)
    routes = Counter(r.route for r in results)
    valid = [r for r in results if r.route == "valid"]
    reasons: Counter[str] = Counter()
    for r in results:
        if r.route != "valid":
            reasons.update(_error_kinds(r) or [r.reason])
    fields: dict[str, dict[str, int]] = {}
    per_sample: list[dict[str, Any]] = []
    for r in results:
        matches = compare_fields(r.expected, r.record) if r.record is not None else {}
        for path, (exact, normal) in matches.items():
            row = fields.setdefault(path, {"n": 0, "exact": 0, "normalised": 0})
            row["n"] += 1
            row["exact"] += exact
            row["normalised"] += normal
        per_sample.append(
            {
                "name": r.name,
                "route": r.route,
                "reason": r.reason,
                "errors": list(r.errors),
                "wrong_fields": sorted(p for p, (exact, _) in matches.items() if not exact),
                "attempts": r.attempts,
                "tokens": r.input_tokens + r.output_tokens,
                "cost_usd": r.cost_usd,
                "seconds": round(r.seconds, 3),
                "coverage": r.coverage,
                "repairs": list(r.repairs),
            }
        )
    compared = sum(f["n"] for f in fields.values())
    seconds = [r.seconds for r in results]
    coverages = [r.coverage for r in valid if r.coverage is not None]
    most_wrong = sorted(
        ((p, f["n"] - f["exact"]) for p, f in fields.items() if f["exact"] < f["n"]),
        key=lambda item: (-item[1], item[0]),
    )
    return {
        "label": label,
        "samples": total,
        "routes": {route: routes.get(route, 0) for route in ("valid", "invalid", "over-budget")}
        | {"dlq": routes.get("dlq", 0)},
        "valid_rate": len(valid) / total if total else 0.0,
        "invalid_reasons": dict(reasons.most_common()),
        "field_exact": _ratio(sum(f["exact"] for f in fields.values()), compared),
        "field_normalised": _ratio(sum(f["normalised"] for f in fields.values()), compared),
        "fields": {
            path: {
                **f,
                "exact_rate": _ratio(f["exact"], f["n"]),
                "normalised_rate": _ratio(f["normalised"], f["n"]),
            }
            for path, f in sorted(fields.items())
        },
        "most_wrong": [{"field": p, "wrong": n} for p, n in most_wrong[:5]],
        "attempts": _spread([float(r.attempts) for r in results]),
        "tokens": {
            "input": sum(r.input_tokens for r in results),
            "output": sum(r.output_tokens for r in results),
            "per_document": _ratio(sum(r.input_tokens + r.output_tokens for r in results), total),
        },
        "cost_usd": sum(r.cost_usd for r in results),
        "seconds": _spread(seconds) | {"total": round(sum(seconds), 3)},
        "grounding_coverage": _ratio(sum(coverages), len(coverages)),
        "per_sample": per_sample,
    }


def compare_fields(
    expected: dict[str, Any], record: dict[str, Any]
) -> dict[str, tuple[bool, bool]]:
    """``path -> (exact, normalised)`` for every field of ``expected`` (and of ``record``)."""
    out: dict[str, tuple[bool, bool]] = {}
    for name in sorted(set(expected) | set(record)):
        want, got = expected.get(name), record.get(name)
        out[name] = _match(want, got)
        for path, sub_want, sub_got in _sub_fields(name, want, got):
            exact, normal = _match(sub_want, sub_got)
            old = out.get(path, (True, True))
            # a sub-field is right only if it is right at every position
            out[path] = (old[0] and exact, old[1] and normal)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _sub_fields(name: str, want: Any, got: Any) -> Iterator[tuple[str, Any, Any]]:
    if not isinstance(want, list) or not all(isinstance(w, dict) for w in want):
        return
    got_list = got if isinstance(got, list) else []
    keys = sorted({k for w in want for k in w})
    for i in range(max(len(want), len(got_list))):
        w = want[i] if i < len(want) else {}
        g = got_list[i] if i < len(got_list) and isinstance(got_list[i], dict) else {}
        for key in keys:
            yield f"{name}[].{key}", w.get(key), g.get(key)


def _match(want: Any, got: Any) -> tuple[bool, bool]:
    exact = _plain(want) == _plain(got)
    return exact, exact or _normal(want) == _normal(got)


def _plain(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        return _decimal(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    return str(value)


def _normal(value: Any) -> Any:
    plain = _plain(value)
    if isinstance(plain, str):
        text = unicodedata.normalize("NFKC", plain).casefold()
        return _SPACE.sub(" ", text).strip(_EDGE)
    if isinstance(plain, list):
        return [_normal(v) for v in plain]
    if isinstance(plain, dict):
        return {k: _normal(v) for k, v in plain.items()}
    return plain


def _decimal(value: int | float | Decimal) -> Decimal | str:
    try:
        return Decimal(str(value)).normalize()
    except InvalidOperation:
        return str(value)


def _error_kinds(result: SampleResult) -> list[str]:
    """``decimal_max_places`` and friends, once per kind per sample."""
    return sorted({e.rpartition(":")[2] for e in result.errors if e.rpartition(":")[2]})


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": round(_ratio(sum(values), len(values)), 3),
        "p50": round(percentile(values, 50), 3),
        "p90": round(percentile(values, 90), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values, default=0.0), 3),
    }


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0
