"""``streams tail``: one readable row per record of an output topic."""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from streams.errors import ConfigError
from streams.inspect._decode import (
    Schemas,
    _envelope,
    _field_errors,
    _plain,
    _route_of,
    _short,
)
from streams.inspect._read import Record, _Progress, _Reader
from streams.settings import Settings

DEFAULT_TAIL = 20
_NOT_CONTRACT = {"provenance", "grounding"}


@dataclass(frozen=True)
class Row:
    """What ``tail`` prints for one record; ``data`` is the JSON form."""

    record: Record
    route: str
    data: dict[str, Any]

    def table(self) -> str:
        d = self.data
        if "problem" in d:
            detail = f"undecodable: {d['problem']}"
        elif self.route == "valid":
            fields = " ".join(f"{k}={_short(v)}" for k, v in d["fields"].items())
            detail = (
                f"{fields} | model={d['model']} attempts={d['attempts']} "
                f"cost=${d['cost_usd']:.6f} cache_hit={'yes' if d['cache_hit'] else 'no'}"
            )
        else:
            detail = f"reason={d['reason']} error_type={d['error_type']}"
            if d["errors"]:
                detail += " errors=" + ",".join(d["errors"])
        loc = f"{self.record.partition}@{self.record.offset}"
        return f"{loc:<10} {_short(self.record.key_text, 32):<32} {self.route:<11} {detail}"


TABLE_HEADER = f"{'PART@OFF':<10} {'KEY':<32} {'ROUTE':<11} DETAIL"


def row_for(record: Record, schemas: Schemas) -> Row:
    """Decode one output record into a :class:`Row`; never raises for bad data."""
    route = _route_of(record)
    data: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key": None if record.key is None else record.key_text,
        "route": route,
    }
    try:
        if route == "valid":
            datum = schemas.decode(record)
            prov = datum.get("provenance") or {}
            scalars = {
                k: _plain(v)
                for k, v in datum.items()
                if k not in _NOT_CONTRACT and not isinstance(v, dict | list)
            }
            data["fields"] = dict(list(scalars.items())[:4])
            data["model"] = prov.get("model_reported")
            data["attempts"] = prov.get("attempts")
            data["cost_usd"] = float(prov.get("cost_usd") or 0.0)
            data["cache_hit"] = bool(prov.get("cache_hit"))
        else:
            body = _envelope(record)
            data["reason"] = body.get("reason")
            data["error_type"] = body.get("error_type")
            data["errors"] = _field_errors(body.get("errors") or [])
            if "budget" in body:
                data["budget"] = body["budget"]
    except (ValueError, KeyError, TypeError, EOFError, StopIteration) as exc:
        data["problem"] = str(exc) or type(exc).__name__
    return Row(record, route, data)


def tail(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = False,
    max_records: int | None = None,
    follow: bool = False,
    fmt: str = "table",
    schemas_root: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Print the records of ``topic``, like ``tail -n N [-f]``.

    Without ``from_beginning``: the last ``max_records`` (default 20), then, with
    ``follow``, every new record until interrupted. With ``from_beginning``: from
    the first record, stopping after ``max_records`` rows in total (if given).
    """
    out, err = out or sys.stdout, err or sys.stderr
    if fmt not in ("table", "json"):
        raise ConfigError(f"unknown --format {fmt!r}; use table or json")
    if max_records is not None and max_records < 1:
        raise ConfigError("--max must be at least 1")
    schemas = Schemas(settings, schemas_root, err)
    reader = _Reader(settings.kafka)
    try:
        marks = reader.partitions(topic)
        last_n = None if from_beginning else (max_records or DEFAULT_TAIL)
        starts = {
            p: low if last_n is None else max(low, high - last_n)
            for p, (low, high) in marks.items()
        }
        ends = {p: high for p, (_low, high) in marks.items()}
        progress = _Progress(err, topic, sum(ends[p] - starts[p] for p in marks))
        backlog = list(reader.read(topic, starts, ends, progress=progress))
        progress.done()
        if last_n is not None:
            backlog.sort(key=lambda r: (r.timestamp_ms or 0, r.partition, r.offset))
            backlog = backlog[-last_n:]
        if fmt == "table":
            print(TABLE_HEADER, file=out)
        printed = 0
        limit = max_records if from_beginning else None

        def emit(record: Record) -> bool:
            nonlocal printed
            row = row_for(record, schemas)
            print(row.table() if fmt == "table" else json.dumps(row.data), file=out, flush=True)
            printed += 1
            return limit is None or printed < limit

        for record in backlog:
            if not emit(record):
                return 0
        if follow:
            latest = {p: high for p, (_low, high) in reader.partitions(topic).items()}
            with contextlib.closing(reader.read(topic, latest, latest, follow=True)) as new:
                for record in new:
                    if not emit(record):
                        return 0
        return 0
    finally:
        reader.close()
