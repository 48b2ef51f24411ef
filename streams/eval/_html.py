"""A small self-contained HTML report: tables and an inline-SVG per-field bar chart.

No scripts, fonts, styles or images from elsewhere: the page opens from a CI
artifact or an e-mail attachment as it is.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

Cell = Callable[[dict[str, Any]], str]

__all__ = ["render_html"]

_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759")
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}td,th{padding:3px 10px;border-bottom:1px solid #ddd}
th{text-align:left;background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b00}.good{color:#070}svg text{font:12px system-ui,sans-serif}
"""


def render_html(title: str, report: dict[str, Any]) -> str:
    """The report as one HTML page."""
    summaries: list[dict[str, Any]] = report["configurations"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _headline(summaries),
        "<h2>Exact match per field (valid samples)</h2>",
        _chart(summaries),
        _reasons(summaries),
    ]
    comparison = report.get("comparison")
    if comparison:
        parts.append(_disagreements(comparison))
    parts.append("</body></html>\n")
    return "".join(parts)


def _headline(summaries: Sequence[dict[str, Any]]) -> str:
    rows: list[tuple[str, Cell]] = [
        ("valid rate", lambda s: _pct(s["valid_rate"])),
        ("exact field match (valid)", lambda s: _pct(s["field_exact"])),
        ("normalised field match (valid)", lambda s: _pct(s["field_normalised"])),
        ("grounding coverage", lambda s: _pct(s["grounding_coverage"])),
        (
            "routes valid / invalid / over-budget / dlq",
            lambda s: " / ".join(str(v) for v in s["routes"].values()),
        ),
        (
            "attempts mean / p90",
            lambda s: f"{s['attempts']['mean']:.2f} / {s['attempts']['p90']:.0f}",
        ),
        ("tokens per document", lambda s: f"{s['tokens']['per_document']:,.0f}"),
        ("cost USD", lambda s: f"{s['cost_usd']:.4f}"),
        (
            "seconds per document p50 / p90 / p99",
            lambda s: "{p50:.1f} / {p90:.1f} / {p99:.1f}".format(**s["seconds"]),
        ),
    ]
    head = "".join(f"<th>{_e(s['label'])}</th>" for s in summaries)
    body = "".join(
        f"<tr><td>{_e(name)}</td>"
        + "".join(f"<td class=n>{_e(cell(s))}</td>" for s in summaries)
        + "</tr>"
        for name, cell in rows
    )
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def _chart(summaries: Sequence[dict[str, Any]]) -> str:
    """Horizontal bars, one group per field, one bar per configuration, 0-100 %."""
    paths = sorted({p for s in summaries for p in s["fields"]})
    bar, gap, left, width = 14, 10, 210, 420
    group = bar * len(summaries) + gap
    legend = 24
    height = legend + group * len(paths) + 24
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 70}" '
        f'height="{height}" role="img" aria-label="exact match per field">'
    ]
    for i, s in enumerate(summaries):
        x = left + i * 160
        colour = _COLOURS[i % len(_COLOURS)]
        out.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{x + 16}" y="15">{_e(s["label"])}</text>')
    for row, path in enumerate(paths):
        y0 = legend + row * group
        out.append(f'<text x="{left - 6}" y="{y0 + group / 2}" text-anchor="end">{_e(path)}</text>')
        for i, s in enumerate(summaries):
            field = s["fields"].get(path)
            rate = field["exact_rate"] if field else 0.0
            y = y0 + i * bar
            colour = _COLOURS[i % len(_COLOURS)]
            out.append(
                f'<rect x="{left}" y="{y}" width="{width * rate:.1f}" height="{bar - 2}" '
                f'fill="{colour}"><title>{_e(s["label"])} {_e(path)} {_pct(rate)}</title></rect>'
            )
            label = _pct(rate) if field else "n/a"
            out.append(f'<text x="{left + width * rate + 4:.1f}" y="{y + bar - 4}">{label}</text>')
    axis_y = legend + group * len(paths) + 4
    out.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + width}" y2="{axis_y}" stroke="#999"/>')
    for tick in (0, 50, 100):
        tick_x = left + width * tick / 100
        out.append(f'<text x="{tick_x}" y="{axis_y + 14}" text-anchor="middle">{tick}%</text>')
    out.append("</svg>")
    return "".join(out)


def _reasons(summaries: Sequence[dict[str, Any]]) -> str:
    items = []
    for s in summaries:
        wrong = ", ".join(f"{w['field']} ({w['wrong']})" for w in s["most_wrong"]) or "none"
        reasons = ", ".join(f"{k} ({v})" for k, v in s["invalid_reasons"].items()) or "none"
        items.append(
            f"<li><b>{_e(s['label'])}</b>: most often wrong: {_e(wrong)}; "
            f"not valid because: {_e(reasons)}</li>"
        )
    return "<h2>What went wrong</h2><ul>" + "".join(items) + "</ul>"


def _disagreements(comparison: dict[str, Any]) -> str:
    a, b = comparison["a"], comparison["b"]
    rows = "".join(
        f"<tr><td>{_e(d['name'])}</td><td>{_e(d[a])}</td><td>{_e(d[b])}</td></tr>"
        for d in comparison["disagreements"]
    )
    count = len(comparison["disagreements"])
    return (
        f"<h2>Samples where {_e(a)} and {_e(b)} disagree ({count})</h2>"
        f"<table><tr><th>sample</th><th>{_e(a)}</th><th>{_e(b)}</th></tr>{rows}</table>"
    )


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
