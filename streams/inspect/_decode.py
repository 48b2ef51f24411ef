"""Decoding output records: Avro wire format on ``.valid``, JSON envelopes elsewhere."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import struct
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

import fastavro

from streams.inspect._read import Record
from streams.settings import Settings

ROUTES = ("valid", "invalid", "over-budget", "dlq")
_CONTRACT_REF = re.compile(r"^(?P<name>[A-Za-z0-9_]+)\.v(?P<version>\d+)$")


class Schemas:
    """Finds the writer schema of a wire-format value: registry first, then avro/ files."""

    def __init__(
        self, settings: Settings, root: Path | None = None, err: TextIO | None = None
    ) -> None:
        self.settings = settings
        # parents[2]: the checkout root, where avro/ lives beside streams/.
        self.roots = [root] if root else [Path.cwd(), Path(__file__).resolve().parents[2]]
        self.err = err or sys.stderr
        self._by_id: dict[int, Any] = {}
        self._by_ref: dict[str, Any] = {}
        self._registry: Any = None
        self._registry_failed = False
        if settings.registry.url.startswith(("http://", "https://")):
            from streams.kafka import clients

            # A CLI: one quick try, then the checked-in schemas.
            self._registry = clients.schema_registry_client(
                settings.registry, {"timeout": 5, "max.retries": 1}
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
                from streams.avro_schema import avro_schema_for
                from streams.contract import discover
                from streams.errors import ConfigError

                try:
                    schema = avro_schema_for(discover(self._search_path()).get(name, version))
                except ConfigError as exc:
                    raise ValueError(str(exc)) from None
            self._by_ref[ref] = fastavro.parse_schema(schema)
        return self._by_ref[ref]

    def _ref_for(self, topic: str) -> str:
        from streams.contract import resolve
        from streams.errors import ConfigError

        for p in self.settings.pipelines:
            if p.topic("valid") == topic:
                try:
                    return resolve(
                        p.contract, p.contract_version, search_path=p.contract_search_path
                    ).ref
                except ConfigError:
                    return ""
        return ""

    def _search_path(self) -> list[Path]:
        return [d for p in self.settings.pipelines for d in p.contract_search_path]


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


def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(_plain(value), ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"
