"""The terminal table: one column per configuration, a diff column when there are two."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Cell = Callable[[dict[str, Any]], str]

__all__ = ["comparison", "disagreements", "render_table"]


def render_table(title: str, summaries: Sequence[dict[str, Any]]) -> str:
    """The report as printed: headline figures, per-field match, reasons, disagreements."""
    labels = [s["label"] for s in summaries]
    two = len(summaries) == 2
    width = max(12, *(len(label) + 2 for label in labels))
    lines = [title, ""]

    def row(name: str, cells: Sequence[str], diff: str = "") -> None:
        text = f"{name:<26}" + "".join(f"{c:>{width}}" for c in cells)
        lines.append(f"{text}{diff:>9}" if diff else text)

    row("", labels, "diff" if two else "")
    headline: list[tuple[str, Cell, str]] = [
        ("valid rate", lambda s: _pct(s["valid_rate"]), "valid_rate"),
        ("field exact (valid)", lambda s: _pct(s["field_exact"]), "field_exact"),
        ("field normalised (valid)", lambda s: _pct(s["field_normalised"]), "field_normalised"),
        ("grounding coverage", lambda s: _pct(s["grounding_coverage"]), "grounding_coverage"),
    ]
    for name, cell, key in headline:
        row(name, [cell(s) for s in summaries], _diff(summaries, key) if two else "")
    row(
        "routes valid/inv/ob/dlq",
        ["/".join(str(v) for v in s["routes"].values()) for s in summaries],
    )
    row(
        "attempts mean / p90",
        [f"{s['attempts']['mean']:.2f} / {s['attempts']['p90']:.0f}" for s in summaries],
    )
    row("tokens per document", [f"{s['tokens']['per_document']:,.0f}" for s in summaries])
    row("cost USD", [f"{s['cost_usd']:.4f}" for s in summaries])
    row(
        "s/doc p50 / p90",
        [f"{s['seconds']['p50']:.1f} / {s['seconds']['p90']:.1f}" for s in summaries],
    )
    row(
        "s/doc p99 / mean",
        [f"{s['seconds']['p99']:.1f} / {s['seconds']['mean']:.1f}" for s in summaries],
    )

    lines += ["", "exact match per field (valid samples)"]
    paths = sorted({p for s in summaries for p in s["fields"]})
    for path in paths:
        rates = [s["fields"].get(path, {}).get("exact_rate") for s in summaries]
        cells = ["-" if r is None else _pct(r) for r in rates]
        diff = ""
        if two and None not in rates:
            diff = f"{(float(rates[1] or 0) - float(rates[0] or 0)) * 100:+.1f}"
        row(f"  {path}", cells, diff)

    lines += ["", "most often wrong"]
    for s in summaries:
        wrong = ", ".join(f"{w['field']} ({w['wrong']})" for w in s["most_wrong"]) or "none"
        lines.append(f"  {s['label']}: {wrong}")
    lines += ["", "not valid: reasons"]
    for s in summaries:
        reasons = ", ".join(f"{k} {v}" for k, v in s["invalid_reasons"].items()) or "none"
        lines.append(f"  {s['label']}: {reasons}")
    if two:
        rows = disagreements(summaries[0], summaries[1])
        lines += ["", f"samples where {labels[0]} and {labels[1]} disagree: {len(rows)}"]
        for d in rows:
            lines.append(f"  {d['name']}: {d[labels[0]]}  ->  {d[labels[1]]}")
    return "\n".join(lines) + "\n"


def comparison(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Per-field difference (b minus a, exact rate) and the disagreeing samples, for JSON."""
    fields = {}
    for path in sorted(set(a["fields"]) | set(b["fields"])):
        ra = a["fields"].get(path, {}).get("exact_rate")
        rb = b["fields"].get(path, {}).get("exact_rate")
        fields[path] = None if ra is None or rb is None else rb - ra
    return {
        "a": a["label"],
        "b": b["label"],
        "valid_rate_diff": b["valid_rate"] - a["valid_rate"],
        "field_exact_diff": b["field_exact"] - a["field_exact"],
        "fields": fields,
        "disagreements": disagreements(a, b),
    }


def disagreements(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, str]]:
    """Samples whose route, or set of wrong fields, differs between two configurations."""
    out = []
    by_name = {s["name"]: s for s in b["per_sample"]}
    for sa in a["per_sample"]:
        sb = by_name.get(sa["name"])
        if sb is None:
            continue
        if (sa["route"], sa["wrong_fields"]) != (sb["route"], sb["wrong_fields"]):
            out.append({"name": sa["name"], a["label"]: _verdict(sa), b["label"]: _verdict(sb)})
    return out


def _verdict(sample: dict[str, Any]) -> str:
    if sample["route"] != "valid":
        kinds = sorted({e.rpartition(":")[2] for e in sample["errors"]}) or [sample["reason"]]
        return f"{sample['route']} ({', '.join(kinds)[:60]})"
    wrong = sample["wrong_fields"]
    return "valid, all fields right" if not wrong else f"valid, wrong: {', '.join(wrong)[:60]}"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _diff(summaries: Sequence[dict[str, Any]], key: str) -> str:
    return f"{(summaries[1][key] - summaries[0][key]) * 100:+.1f}"
