"""``streams tail`` and ``streams explain``: read the output topics as a person would.

Usage::

    streams tail invoices.valid --from-beginning --max 20
    streams tail invoices.invalid --format json --follow
    streams explain invoices 01-acme-industrial-usd --config streams.toml

``tail`` prints one row per record of any of the four output topics. A
``.valid`` value is decoded from the Schema Registry wire format: the schema id
after the magic byte is looked up in the registry when ``registry.url`` is
http(s); otherwise (or if the registry cannot answer) the checked-in schema
``avro/<contract>/v<N>.avsc`` of the contract named in the ``streams.contract``
header is used, and, for records whose headers a sink dropped, the contract of
the pipeline that writes the topic. The other three topics carry JSON envelopes.

``explain`` scans the pipeline's raw topic and its four output topics for one
key and prints each input's journey: the input (its first 300 characters), the
attempts, the outcome topic, the reason, the cost and the provenance.

Both read with their own throwaway consumer (no group offsets are committed)
and report progress of long scans on stderr.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import io
import json
import re
import struct
import sys
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import fastavro
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.errors import ConfigError
from streams.settings import Price, Settings

__all__ = ["Record", "Row", "Schemas", "explain", "register", "row_for", "tail"]

ROUTES = ("valid", "invalid", "over-budget", "dlq")
TEXT_PREVIEW = 300
DEFAULT_TAIL = 20
#: How long to wait for the broker's metadata before calling it unreachable.
METADATA_TIMEOUT_S = 10.0
_CONTRACT_REF = re.compile(r"^(?P<name>[A-Za-z0-9_]+)\.v(?P<version>\d+)$")
_NOT_CONTRACT = {"provenance", "grounding"}


# -- reading topics ---------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One consumed record, independent of the client library."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    timestamp_ms: int | None

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def key_text(self) -> str:
        return "-" if self.key is None else self.key.decode("utf-8", errors="backslashreplace")


class _Progress:
    """Scan progress on stderr, at most once a second, only for scans that take a while."""

    def __init__(self, err: TextIO, label: str, total: int) -> None:
        self.err, self.label, self.total = err, label, total
        self.started = self.last = time.monotonic()
        self.seen = 0

    def tick(self) -> None:
        self.seen += 1
        now = time.monotonic()
        if now - self.last >= 1.0:
            self.last = now
            print(f"scanning {self.label}: {self.seen}/{self.total} records", file=self.err)

    def done(self) -> None:
        if time.monotonic() - self.started >= 1.0:
            print(f"scanned {self.label}: {self.seen} records", file=self.err)


class _Reader:
    """Consumers without a group position: assign, read, close. No offsets are committed."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.consumer = self._new_consumer()  # metadata and watermarks

    def _new_consumer(self) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"streams-inspect-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )

    def close(self) -> None:
        self.consumer.close()

    def partitions(self, topic: str, *, missing_ok: bool = False) -> dict[int, tuple[int, int]]:
        """partition -> (low, high) watermarks; a missing topic is a :class:`ConfigError`."""
        try:
            meta = self.consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S).topics.get(topic)
            if meta is None or meta.error is not None:
                if missing_ok:
                    return {}
                raise ConfigError(
                    f"topic {topic!r} does not exist on {self.bootstrap}; "
                    "check the topic name and --bootstrap"
                )
            return {
                p: self.consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=METADATA_TIMEOUT_S
                )
                for p in sorted(meta.partitions)
            }
        except KafkaException as exc:
            raise ConfigError(
                f"cannot read {topic!r} from Kafka at {self.bootstrap} ({exc.args[0]}); "
                "check --bootstrap or kafka.bootstrap_servers"
            ) from None

    def read(
        self,
        topic: str,
        starts: dict[int, int],
        ends: dict[int, int],
        *,
        follow: bool = False,
        progress: _Progress | None = None,
    ) -> Generator[Record, None, None]:
        """Records from ``starts`` up to ``ends`` (or forever, with ``follow``)."""
        remaining = {p: end for p, end in ends.items() if follow or starts[p] < end}
        if not remaining:
            return
        # A fresh consumer per read: re-assigning a used one stalls for seconds per topic.
        consumer = self._new_consumer()
        try:
            consumer.assign([TopicPartition(topic, p, starts[p]) for p in remaining])
            while remaining or follow:
                msg = consumer.poll(0.5)
                if msg is None:
                    # Transaction markers take offsets but are never delivered: compare positions.
                    for tp in consumer.position([TopicPartition(topic, p) for p in remaining]):
                        if tp.offset >= remaining.get(tp.partition, 1 << 62):
                            remaining.pop(tp.partition, None)
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        remaining.pop(msg.partition() or 0, None)
                        continue
                    raise ConfigError(f"reading {topic!r} failed: {err.str()}")
                record = _record(msg, topic)
                if record.offset + 1 >= remaining.get(record.partition, 1 << 62):
                    remaining.pop(record.partition, None)
                if progress is not None:
                    progress.tick()
                yield record
        finally:
            consumer.close()

    def fetch(self, topic: str, partition: int, offset: int) -> Record | None:
        """The one record at ``topic[partition]@offset``, if it is still there."""
        low, high = self.partitions(topic).get(partition, (0, 0))
        if not low <= offset < high:
            return None
        with contextlib.closing(
            self.read(topic, {partition: offset}, {partition: offset + 1})
        ) as it:
            return next((r for r in it if r.offset == offset), None)


def _record(msg: Message, topic: str) -> Record:
    _kind, ts = msg.timestamp()
    raw_headers = msg.headers() or []
    pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
    return Record(
        topic=msg.topic() or topic,
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=msg.key(),
        value=msg.value(),
        headers={k: v if isinstance(v, bytes) else (v or "").encode() for k, v in pairs},
        timestamp_ms=ts if ts > 0 else None,
    )


# -- decoding ---------------------------------------------------------------------------


class Schemas:
    """Finds the writer schema of a wire-format value: registry first, then avro/ files."""

    def __init__(
        self, settings: Settings, root: Path | None = None, err: TextIO | None = None
    ) -> None:
        self.settings = settings
        self.roots = [root] if root else [Path.cwd(), Path(__file__).resolve().parents[1]]
        self.err = err or sys.stderr
        self._by_id: dict[int, Any] = {}
        self._by_ref: dict[str, Any] = {}
        self._registry: Any = None
        self._registry_failed = False
        if settings.registry.url.startswith(("http://", "https://")):
            from confluent_kafka.schema_registry import SchemaRegistryClient

            # A CLI: one quick try, then the checked-in schemas.
            self._registry = SchemaRegistryClient(
                {"url": settings.registry.url, "timeout": 5, "max.retries": 1}
            )

    def decode(self, record: Record) -> dict[str, Any]:
        value = record.value or b""
        if len(value) < 5 or value[0] != 0:
            raise ValueError("not Schema Registry wire format (no magic byte 0)")
        (schema_id,) = struct.unpack(">I", value[1:5])
        schema = self._from_registry(schema_id) or self._checked_in(record)
        datum = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)
        if not isinstance(datum, dict):
            raise ValueError("Avro datum is not a record")
        return datum

    def _from_registry(self, schema_id: int) -> Any:
        if self._registry is None or self._registry_failed:
            return None
        if schema_id not in self._by_id:
            try:
                schema = self._registry.get_schema(schema_id)
            except Exception as exc:  # the registry client raises assorted network errors
                self._registry_failed = True
                print(
                    f"registry {self.settings.registry.url} did not answer for schema id "
                    f"{schema_id} ({exc}); using the checked-in schemas",
                    file=self.err,
                )
                return None
            self._by_id[schema_id] = fastavro.parse_schema(json.loads(schema.schema_str))
        return self._by_id[schema_id]

    def _checked_in(self, record: Record) -> Any:
        ref = record.headers.get("streams.contract", b"").decode() or self._ref_for(record.topic)
        match = _CONTRACT_REF.match(ref)
        if match is None:
            raise ValueError(
                f"no streams.contract header and no pipeline writes {record.topic}; "
                "pass --config with that pipeline"
            )
        if ref not in self._by_ref:
            name, version = match["name"], int(match["version"])
            for root in self.roots:
                path = root / "avro" / name / f"v{version}.avsc"
                if path.is_file():
                    schema = json.loads(path.read_text(encoding="utf-8"))
                    break
            else:
                import contracts
                from streams.avro_schema import avro_schema_for

                try:
                    schema = avro_schema_for(contracts.get_contract(name, version))
                except KeyError as exc:
                    raise ValueError(str(exc.args[0])) from None
            self._by_ref[ref] = fastavro.parse_schema(schema)
        return self._by_ref[ref]

    def _ref_for(self, topic: str) -> str:
        for p in self.settings.pipelines:
            if p.topic("valid") == topic:
                return f"{p.contract}.v{p.contract_version}"
        return ""


def _plain(value: Any) -> Any:
    """Avro datum values as JSON data: decimals and dates as strings."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal | dt.date | dt.datetime):
        return str(value)
    return value


def _route_of(record: Record) -> str:
    header = record.headers.get("streams.route", b"").decode()
    if header in ROUTES:
        return header
    for route in ROUTES:
        if record.topic.endswith(f".{route}"):
            return route
    return "valid" if (record.value or b"")[:1] == b"\x00" else "?"


def _envelope(record: Record) -> dict[str, Any]:
    body = json.loads(record.value or b"")
    if not isinstance(body, dict):
        raise ValueError("envelope is not a JSON object")
    return body


def _field_errors(errors: list[dict[str, Any]], limit: int = 3) -> list[str]:
    return [f"{e.get('path')}:{e.get('type')}" for e in errors[:limit]]


# -- tail -------------------------------------------------------------------------------


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


def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(_plain(value), ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


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
    reader = _Reader(settings.kafka.bootstrap_servers)
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


# -- explain ----------------------------------------------------------------------------


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
    reader = _Reader(settings.kafka.bootstrap_servers)
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


# -- command line -----------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = sub.add_parser(
        "tail",
        help="print the records of an output topic, one readable row each",
        description="Decode <pipeline>.valid (Avro wire format) or the JSON envelopes of "
        ".invalid/.over-budget/.dlq. Like tail -n N [-f]: without --from-beginning, prints "
        f"the last --max records (default {DEFAULT_TAIL}), then new ones with --follow; with "
        "--from-beginning, stops after --max records in total.",
    )
    t.add_argument("topic")
    _common(t)
    t.add_argument("--from-beginning", action="store_true", help="read from the first record")
    t.add_argument(
        "--max", type=int, default=None, metavar="N", help="how many records (see above)"
    )
    t.add_argument("--follow", action="store_true", help="keep printing new records (Ctrl-C)")
    t.add_argument("--format", choices=["table", "json"], default="table")
    t.set_defaults(func=_tail_cmd)

    e = sub.add_parser(
        "explain",
        help="show one record's journey through a pipeline",
        description="Scan the pipeline's raw topic and its four output topics for KEY and "
        "print the input, each attempt, the outcome topic, the reason, the cost and the "
        "provenance.",
    )
    e.add_argument("pipeline")
    e.add_argument("key")
    _common(e)
    e.set_defaults(func=_explain_cmd)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", help="override kafka.bootstrap_servers")
    p.add_argument("--config", type=Path, default=None, help="TOML settings file")
    p.add_argument("--schemas", type=Path, default=None, help="folder holding avro/ (default .)")


def _settings(args: argparse.Namespace) -> Settings:
    from streams.settings import load_settings

    overrides: dict[str, Any] = {}
    if args.bootstrap:
        overrides["kafka"] = {"bootstrap_servers": args.bootstrap}
    return load_settings(args.config, **overrides)


def _tail_cmd(args: argparse.Namespace) -> int:
    return tail(
        _settings(args),
        args.topic,
        from_beginning=args.from_beginning,
        max_records=args.max,
        follow=args.follow,
        fmt=args.format,
        schemas_root=args.schemas,
    )


def _explain_cmd(args: argparse.Namespace) -> int:
    return explain(_settings(args), args.pipeline, args.key, schemas_root=args.schemas)
