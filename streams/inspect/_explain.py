"""``streams explain``: one key's journey from the raw topic to its outcome topics."""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from streams.inspect._decode import (
    ROUTES,
    Schemas,
    _envelope,
    _field_errors,
    _plain,
    _route_of,
    _short,
)
from streams.inspect._read import Record, _Progress, _Reader
from streams.settings import Price, Settings

TEXT_PREVIEW = 300


@dataclass
class _Journey:
    raw: Record | None
    outcomes: list[tuple[Record, dict[str, Any]]]


def explain(
    settings: Settings,
    pipeline: str,
    key: str,
    *,
    schemas_root: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print the journey of every input with ``key`` through ``pipeline``; 1 if none."""
    out, err = out or sys.stdout, err or sys.stderr
    cfg = settings.pipeline(pipeline)
    schemas = Schemas(settings, schemas_root, err)
    wanted = key.encode("utf-8")
    reader = _Reader(settings.kafka)
    try:
        journeys: dict[tuple[int, int], _Journey] = {}
        orphans: list[_Journey] = []
        for route in ROUTES:
            for record in _scan_for(reader, cfg.topic(route), wanted, err):
                detail = _outcome_detail(record, route, schemas)
                source = detail.get("source") or {}
                if source.get("topic") == cfg.input_topic and source.get("offset") is not None:
                    coords = (int(source["partition"]), int(source["offset"]))
                    journeys.setdefault(coords, _Journey(None, [])).outcomes.append(
                        (record, detail)
                    )
                else:
                    orphans.append(_Journey(None, [(record, detail)]))
        for record in _scan_for(reader, cfg.input_topic, wanted, err):
            journeys.setdefault((record.partition, record.offset), _Journey(None, [])).raw = record
        for (partition, offset), journey in journeys.items():
            if journey.raw is None:  # keyed differently (an envelope id), or redriven
                journey.raw = reader.fetch(cfg.input_topic, partition, offset)
    finally:
        reader.close()
    if not journeys and not orphans:
        topics = ", ".join([cfg.input_topic, *(cfg.topic(r) for r in ROUTES)])
        print(f"no record with key {key!r} in {topics}", file=err)
        return 1
    price = settings.pricing.get(settings.llm.model)
    for i, journey in enumerate([journeys[c] for c in sorted(journeys)] + orphans):
        print(
            ("\n" if i else "") + f"journey of key {key!r} through pipeline {cfg.name!r}", file=out
        )
        for line in _journey_lines(journey, price):
            print(line, file=out)
    return 0


def _scan_for(reader: _Reader, topic: str, key: bytes, err: TextIO) -> Iterator[Record]:
    marks = reader.partitions(topic, missing_ok=True)
    if not marks:
        print(f"{topic}: no such topic (yet); skipped", file=err)
        return
    starts = {p: low for p, (low, _high) in marks.items()}
    ends = {p: high for p, (_low, high) in marks.items()}
    progress = _Progress(err, topic, sum(ends[p] - starts[p] for p in marks))
    for record in reader.read(topic, starts, ends, progress=progress):
        if record.key == key:
            yield record
    progress.done()


def _outcome_detail(record: Record, route: str, schemas: Schemas) -> dict[str, Any]:
    """The outcome's facts: envelope body, or the valid record's provenance as ``source``."""
    try:
        if route != "valid":
            return _envelope(record)
        datum = schemas.decode(record)
    except (ValueError, KeyError, TypeError, EOFError) as exc:
        return {"problem": str(exc) or type(exc).__name__}
    prov = _plain(datum.get("provenance") or {})
    grounding = datum.get("grounding") or {}
    return {
        "provenance": prov,
        "coverage": grounding.get("coverage") if isinstance(grounding, dict) else None,
        "source": {
            "topic": prov.get("source_topic"),
            "partition": prov.get("source_partition"),
            "offset": prov.get("source_offset"),
        },
    }


def _input_lines(raw: Record | None, detail: dict[str, Any]) -> list[str]:
    if raw is None:
        doc = detail.get("document")
        if not isinstance(doc, dict):
            return ["input   (no longer on the raw topic)"]
        return ["input   (raw record gone; text from the envelope)", *_preview(doc.get("text"))]
    if raw.value is None:
        return [f"input   {raw.where}  {_when(raw.timestamp_ms)}  tombstone (no value)"]
    head = f"input   {raw.where}  {_when(raw.timestamp_ms)}  {len(raw.value)} bytes"
    lineage = [
        f"        {name}: {raw.headers[name].decode(errors='replace')}"
        for name in ("streams.redrive-of", "streams.redrive-reason")
        if name in raw.headers
    ]
    try:
        text = raw.value.decode("utf-8")
        body = json.loads(text) if text.lstrip().startswith("{") else None
    except UnicodeDecodeError:
        b64 = base64.b64encode(raw.value[:48]).decode()
        return [f"{head}, not UTF-8", *lineage, f"        base64: {b64}"]
    except json.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("text"), str):
        head += f", envelope id={body.get('id')!r}"
        head += f" tenant={body['tenant']!r}" if body.get("tenant") else ""
        return [head, *lineage, *_preview(body["text"])]
    return [head + ", plain text", *lineage, *_preview(text)]


def _preview(text: Any) -> list[str]:
    """The first TEXT_PREVIEW characters, never the whole document."""
    text = str(text or "")
    lines = [f"      | {line}" for line in text[:TEXT_PREVIEW].splitlines()] or ["      |"]
    if len(text) > TEXT_PREVIEW:
        lines.append(f"      … first {TEXT_PREVIEW} of {len(text)} characters")
    return lines


def _attempt_line(a: dict[str, Any]) -> str:
    line = (
        f"attempt {a.get('number')}  tokens {a.get('input_tokens')} in / "
        f"{a.get('output_tokens')} out  finish={a.get('finish_reason')}  outcome={a.get('outcome')}"
    )
    if a.get("transient_retries"):
        line += f"  transient_retries={a['transient_retries']}"
    errors = _field_errors(a.get("errors") or [], limit=5)
    return line + (f"  errors={','.join(errors)}" if errors else "")


def _cost(detail: dict[str, Any], price: Price | None) -> str:
    attempts = detail.get("attempts") or []
    if not attempts and not float(detail.get("cost_usd") or 0):
        return "$0 (no model call)"
    if "cost_usd" in detail:
        return f"${float(detail['cost_usd']):.8f}"
    tokens_in = sum(int(a.get("input_tokens", 0)) for a in attempts)
    tokens_out = sum(int(a.get("output_tokens", 0)) for a in attempts)
    if price is None:
        return f"unknown ({tokens_in} in / {tokens_out} out tokens; no [pricing] for the model)"
    usd = (tokens_in * price.input_per_mtok + tokens_out * price.output_per_mtok) / 1e6
    return f"${usd:.8f} (from {tokens_in} in / {tokens_out} out tokens at [pricing])"


def _journey_lines(journey: _Journey, price: Price | None) -> Iterator[str]:
    yield from _input_lines(journey.raw, journey.outcomes[0][1] if journey.outcomes else {})
    if not journey.outcomes:
        yield "outcome (none yet: not processed, or not committed)"
    for record, d in journey.outcomes:
        route = _route_of(record)
        if "problem" in d:
            yield f"outcome {route} -> {record.where}  (undecodable: {d['problem']})"
            continue
        prov = d.get("provenance", {})
        if route == "valid":
            yield (
                f"attempts {prov.get('attempts')} (tokens {prov.get('input_tokens')} in / "
                f"{prov.get('output_tokens')} out in total; per-attempt detail is kept on "
                "invalid, over-budget and dlq envelopes only)"
            )
        yield from (_attempt_line(a) for a in d.get("attempts") or [])
        yield f"outcome {route} -> {record.where}  {_when(record.timestamp_ms)}"
        if route == "valid":
            yield "reason  valid"
            yield f"cost    ${float(prov.get('cost_usd') or 0):.8f}"
            if d.get("coverage") is not None:
                yield f"grounding coverage {float(d['coverage']):.2f}"
            yield "provenance"
            yield from (f"        {k}: {v}" for k, v in sorted(prov.items()))
            continue
        yield f"reason  {d.get('reason')}  ({d.get('error_type')})"
        if d.get("message"):
            yield f"        {_short(str(d['message']), 200)}"
        if isinstance(budget := d.get("budget"), dict):
            yield f"budget  {budget.get('name')}: {budget.get('used')} over {budget.get('limit')}"
        if d.get("provider_status") is not None:
            yield f"provider status {d['provider_status']}"
        if errors := _field_errors(d.get("errors") or [], limit=10):
            yield f"errors  {', '.join(errors)}"
        yield f"cost    {_cost(d, price)}"
        yield (
            f"provenance contract {d.get('contract')}.v{d.get('contract_version')} "
            f"prompt {d.get('prompt_version')}"
        )


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")
