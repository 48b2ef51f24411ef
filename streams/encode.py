"""Encoders for the four output topics.

* ``.valid``: Avro in the Schema Registry wire format (magic byte 0, 4-byte
  big-endian schema id, Avro binary body), so a stock ``AvroDeserializer``,
  Kafka Connect or Flink can read it. Provenance is inside the value.
* ``.invalid`` / ``.over-budget`` / ``.dlq``: a versioned JSON envelope that
  carries the reason, the field errors and enough input to redrive it.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import fastavro
import httpx
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams._avro_writer import Unsupported, compile_writer
from streams._avro_writer import zigzag_long as _long
from streams.avro_schema import GROUNDING_SCHEMA, avro_schema_for, to_avro_datum
from streams.contract import ContractVersion
from streams.errors import ConfigError, EncodingError

__all__ = ["ENVELOPE_VERSION", "AvroWireEncoder", "decode_wire", "envelope_bytes"]

ENVELOPE_VERSION = 1
_MAGIC = 0


class AvroWireEncoder:
    """Encodes valid records of one contract version under one registry subject."""

    def __init__(
        self,
        contract: ContractVersion,
        registry: SchemaRegistryClient,
        subject: str,
        *,
        manage_compatibility: bool = True,
    ) -> None:
        self.contract = contract
        #: Set the subject's compatibility level to the contract's before registering.
        #: Off for the in-process ``mock://`` registry, which does not implement it.
        self.manage_compatibility = manage_compatibility
        self.subject = subject
        self.schema_dict = avro_schema_for(contract)
        self.parsed = fastavro.parse_schema(self.schema_dict)
        self._registry = registry
        self._schema_id: int | None = None
        #: fastavro's bytes, written by closures compiled for this schema (None: a type
        #: the compiled writer leaves to fastavro, see streams._avro_writer).
        self._writer: Callable[[Any], bytes] | None
        try:
            self._writer = compile_writer(self.schema_dict)
        except Unsupported:
            self._writer = None
        self._has_grounding = any(f["name"] == "grounding" for f in self.schema_dict["fields"])
        last = self.schema_dict["fields"][-1]
        #: The grounding is the value's last field, in the shape this module writes by
        #: hand (fastavro spends most of a valid record's encoding time on it: it
        #: validates the union's whole subtree before writing it).
        self._grounding_last = last["name"] == "grounding" and last["type"] == [
            "null",
            GROUNDING_SCHEMA,
        ]

    @property
    def schema_id(self) -> int:
        if self._schema_id is None:
            self._schema_id = self.register()
        return self._schema_id

    def register(self) -> int:
        """Register (or look up) the schema under the subject; fail fast at start-up."""
        schema = Schema(json.dumps(self.schema_dict), "AVRO")
        level = self.contract.compatibility
        try:
            if not self.manage_compatibility:
                schema_id = self._registry.register_schema(self.subject, schema)
            else:
                # The subject's level is the contract's declared one, so the registry
                # itself refuses an incompatible version of this contract line.
                try:
                    self._registry.set_compatibility(subject_name=self.subject, level=level)
                    schema_id = self._registry.register_schema(self.subject, schema)
                except SchemaRegistryError as exc:
                    if exc.http_status_code != 404:
                        raise
                    # Apicurio refuses per-subject config before the subject exists; a
                    # first version has nothing to be compatible with, so register first.
                    schema_id = self._registry.register_schema(self.subject, schema)
                    self._registry.set_compatibility(subject_name=self.subject, level=level)
        except SchemaRegistryError as exc:
            if exc.http_status_code in (401, 403):
                raise ConfigError(
                    f"schema registry refused the credentials for {self.subject} "
                    f"(HTTP {exc.http_status_code}); check registry.username and "
                    "registry.password (STREAMS_REGISTRY__PASSWORD), or registry.bearer_token"
                ) from exc
            raise ConfigError(
                f"schema registry refused {self.subject}: {exc.error_message} "
                f"(HTTP {exc.http_status_code}); check registry.url and compatibility"
            ) from exc
        except (httpx.HTTPError, OSError) as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise ConfigError(
                    f"TLS with the schema registry failed for {self.subject}: its certificate "
                    "did not verify; point registry.ca_file at the CA that signed it"
                ) from exc
            raise ConfigError(
                f"schema registry unreachable for {self.subject}: {exc}; check registry.url"
            ) from exc
        self._schema_id = int(schema_id)
        return self._schema_id

    def encode(
        self, record: Any, provenance: dict[str, Any], grounding: dict[str, Any] | None = None
    ) -> bytes:
        datum = to_avro_datum(record)
        datum["provenance"] = {**provenance, "schema_id": self.schema_id}
        tail = b""
        if self._grounding_last and grounding is not None:
            # fastavro writes the union's null branch (one 0 byte, last in the value);
            # it is replaced by branch 1 and the grounding, written the same way.
            datum["grounding"] = None
            try:
                tail = grounding_bytes(grounding)
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
                raise EncodingError(f"Avro encoding failed: grounding: {exc}") from exc
        elif self._has_grounding:
            datum["grounding"] = grounding
        header = struct.pack(">bI", _MAGIC, self.schema_id)
        body = self._compiled(datum)
        if body is None:
            buf = io.BytesIO()
            try:
                fastavro.schemaless_writer(buf, self.parsed, datum)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise EncodingError(f"Avro encoding failed: {exc}") from exc
            body = buf.getvalue()
        if not tail:
            return header + body
        if body[-1] != 0:  # pragma: no cover - the null branch is always one 0 byte
            raise EncodingError("Avro encoding failed: grounding is not the value's last field")
        return header + body[:-1] + tail

    def _compiled(self, datum: dict[str, Any]) -> bytes | None:
        """The compiled writer's bytes, or None: fastavro writes this value (or says why not)."""
        if self._writer is None:
            return None
        try:
            return self._writer(datum)
        except (Unsupported, ValueError, TypeError, KeyError, AttributeError, OverflowError):
            return None


_INT32 = 2**31


@lru_cache(maxsize=4096)
def _string(value: str) -> bytes:
    """An Avro string; cached, because paths and methods repeat from record to record."""
    data = value.encode("utf-8")
    return _long(len(data)) + data


def _optional_int(value: int | None) -> bytes:
    if value is None:
        return b"\x00"
    if not -_INT32 <= value < _INT32:
        raise ValueError(f"{value} does not fit an Avro int")
    return b"\x02" + _long(value)


def grounding_bytes(grounding: dict[str, Any]) -> bytes:
    """Branch 1 of the ``["null", Grounding]`` union and the grounding datum, as fastavro
    writes them (a test compares the two byte for byte)."""
    fields = grounding["fields"]
    parts = [b"\x02", struct.pack("<d", float(grounding["coverage"]))]
    if fields:
        parts.append(_long(len(fields)))
        for f in fields:
            parts += (
                _string(f["path"]),
                b"\x01" if f["found"] else b"\x00",
                _optional_int(f["start"]),
                _optional_int(f["end"]),
                _string(f["method"]),
            )
    parts.append(b"\x00")
    return b"".join(parts)


def decode_wire(value: bytes, reader_schema: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Split a wire-format value into (schema id, datum) using ``reader_schema``.

    Meant for tools and tests that read with a checked-in schema; production
    consumers should use a registry-aware deserializer.
    """
    if len(value) < 5 or value[0] != _MAGIC:
        raise ValueError("not Schema Registry wire format (missing magic byte 0)")
    (schema_id,) = struct.unpack(">I", value[1:5])
    parsed = fastavro.parse_schema(reader_schema)
    datum = fastavro.schemaless_reader(io.BytesIO(value[5:]), parsed, parsed)
    if not isinstance(datum, dict):
        raise ValueError("Avro datum is not a record")
    return schema_id, datum


def envelope_bytes(kind: str, body: dict[str, Any]) -> bytes:
    """Serialise a non-valid outcome's envelope as JSON (UTF-8, sorted keys)."""
    doc = {"envelope": kind, "envelope_version": ENVELOPE_VERSION, **body}
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8")


def raw_b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")
