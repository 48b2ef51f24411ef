"""Avro schemas generated from the contracts, and the checked-in files that pin them.

::

    ContractVersion ──avro_schema_for──► value schema of <pipeline>.valid
                    └─write_schema_files / check_schema_files──► avro/<name>/v<N>.avsc
    validated model ──to_avro_datum──► dict for fastavro (the caller adds "provenance")

The value schema is a record named after the model, in namespace
``contracts.<name>.v<N>``, with the contract's fields at top level and a final
``provenance`` field (:data:`PROVENANCE_SCHEMA`). Types map as follows:

================================  ===========================================================
pydantic                          Avro
================================  ===========================================================
str, str Enum, Literal of str     ``string``
int, int Enum, Literal of int     ``long``
float / bool / bytes              ``double`` / ``boolean`` / ``bytes``
Decimal                           ``bytes`` + ``decimal``; precision and scale from the field's
                                  ``max_digits`` and ``decimal_places``, which are required
date / datetime                   ``int`` + ``date`` / ``long`` + ``timestamp-micros`` (lossless)
UUID                              ``string`` + ``uuid``
nested BaseModel                  a record in the same namespace (named once, then referenced)
list[T], tuple[T, ...], set[T]    ``array``
dict[str, T]                      ``map``
T | None                          ``["null", T]`` with ``default: null``
================================  ===========================================================

Anything else raises :class:`~streams.errors.ConfigError` when the schema is
generated, which happens at start-up, never per record.
"""

from __future__ import annotations

import copy
import enum
import inspect
import json
import re
import types
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from contracts import ContractVersion, all_contracts
from streams.errors import ConfigError

__all__ = [
    "PROVENANCE_SCHEMA",
    "avro_schema_for",
    "check_schema_files",
    "schema_path",
    "to_avro_datum",
    "write_schema_files",
]

#: The provenance record every valid record carries. Treat as read-only: the
#: value schemas embed deep copies of it.
PROVENANCE_SCHEMA: Final[dict[str, Any]] = {
    "type": "record",
    "name": "Provenance",
    "namespace": "streams.provenance",
    "doc": "Where a record came from, what it cost and how it was produced.",
    "fields": [
        {"name": "pipeline", "type": "string", "doc": "Name of the pipeline that produced it."},
        {"name": "contract", "type": "string", "doc": "Name of the contract it satisfies."},
        {"name": "contract_version", "type": "int", "doc": "Version of that contract."},
        {
            "name": "schema_id",
            "type": ["null", "int"],
            "default": None,
            "doc": "Schema Registry id of this value schema; null when not registered.",
        },
        {
            "name": "prompt_version",
            "type": "string",
            "doc": "Hash of the prompt (instructions and examples) that was sent.",
        },
        {"name": "provider", "type": "string", "doc": "Model provider that answered."},
        {"name": "model_requested", "type": "string", "doc": "Model name the request asked for."},
        {
            "name": "model_reported",
            "type": "string",
            "doc": "Model name and version the provider reported in its response.",
        },
        {
            "name": "attempts",
            "type": "int",
            "doc": "Model calls made for this record, re-asks included; 0 on a cache hit.",
        },
        {
            "name": "input_tokens",
            "type": "long",
            "doc": "Prompt tokens used, summed over all attempts.",
        },
        {
            "name": "output_tokens",
            "type": "long",
            "doc": "Completion tokens used, summed over all attempts.",
        },
        {"name": "cost_usd", "type": "double", "doc": "Cost of all attempts, in US dollars."},
        {
            "name": "latency_ms",
            "type": "double",
            "doc": "Wall time from the first call to the valid answer, in milliseconds.",
        },
        {
            "name": "cache_hit",
            "type": "boolean",
            "doc": "True when the answer came from the cache and no model call was made.",
        },
        {
            "name": "repairs",
            "type": {"type": "array", "items": "string"},
            "doc": "Deterministic repairs applied to the model output, in order.",
        },
        {"name": "source_topic", "type": "string", "doc": "Topic of the input record."},
        {"name": "source_partition", "type": "int", "doc": "Partition of the input record."},
        {"name": "source_offset", "type": "long", "doc": "Offset of the input record."},
        {
            "name": "source_key",
            "type": ["null", "string"],
            "default": None,
            "doc": "Key of the input record, decoded as UTF-8; null when it had none.",
        },
        {
            "name": "input_sha256",
            "type": "string",
            "doc": "Hex SHA-256 of the normalised input text.",
        },
        {
            "name": "processed_at",
            "type": {"type": "long", "logicalType": "timestamp-millis"},
            "doc": "When the record was produced (UTC).",
        },
    ],
}

_PROVENANCE_FIELD_DOC = "How this record was produced: pipeline, model, cost and source."
_AVRO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_SEQUENCES: Final[tuple[Any, ...]] = (list, tuple, set, frozenset, Sequence)
_MAPPINGS: Final[tuple[Any, ...]] = (dict, Mapping)

AvroSchema = Any  # a type name (str), a union (list) or a complex type (dict)


def avro_schema_for(contract: ContractVersion) -> dict[str, Any]:
    """The value schema of a contract's valid topic: its fields, then ``provenance``.

    Raises :class:`ConfigError` if the model uses a type Avro cannot carry.
    """
    for part in ("contracts", contract.name, f"v{contract.version}"):
        if not _AVRO_NAME.match(part):
            raise ConfigError(
                f"contract {contract.ref}: {part!r} is not a valid Avro namespace part; "
                "use letters, digits and underscores"
            )
    schema, _ = _model_schema(contract.model, f"contracts.{contract.name}.v{contract.version}")
    schema = copy.deepcopy(schema)
    if any(f["name"] == "provenance" for f in schema["fields"]):
        raise ConfigError(
            f"contract {contract.ref}: the field name 'provenance' is reserved for the "
            "record's provenance; rename the field"
        )
    if contract.description:
        schema["doc"] = contract.description
    schema["fields"].append(
        {
            "name": "provenance",
            "type": copy.deepcopy(PROVENANCE_SCHEMA),
            "doc": _PROVENANCE_FIELD_DOC,
        }
    )
    return schema


def to_avro_datum(record: BaseModel) -> dict[str, Any]:
    """The dict fastavro writes for a validated record, without ``provenance``.

    Dates and datetimes stay objects (fastavro applies the logical types),
    Decimals are quantized to the schema's scale, enums become their values.
    The caller adds ``datum["provenance"]`` before writing with
    :func:`avro_schema_for`'s schema.
    """
    schema, names = _model_schema(type(record), "")
    datum = _datum(record, schema, names)
    assert isinstance(datum, dict)
    return datum


def schema_path(root: Path, contract: ContractVersion) -> Path:
    """Where a contract version's schema is checked in: ``root/avro/<name>/v<N>.avsc``."""
    return root / "avro" / contract.name / f"v{contract.version}.avsc"


def write_schema_files(root: Path) -> list[Path]:
    """Write ``avro/<name>/v<N>.avsc`` under ``root`` for every registered contract.

    Files already up to date are left untouched. Returns every schema path, in
    contract order.
    """
    paths = []
    for contract in all_contracts():
        path = schema_path(root, contract)
        text = _render(avro_schema_for(contract))
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def check_schema_files(root: Path) -> list[str]:
    """Problems with the checked-in schemas under ``root``, one line each; empty when fine.

    Reports contracts Avro cannot carry, missing files, files that differ from
    their model, files that match but are not in the generated formatting, and
    files without a registered contract.
    """
    problems: list[str] = []
    expected: set[Path] = set()
    for contract in all_contracts():
        path = schema_path(root, contract)
        expected.add(path)
        rel = path.relative_to(root).as_posix()
        try:
            want = avro_schema_for(contract)
        except ConfigError as exc:
            problems.append(f"{rel}: cannot generate a schema for {contract.ref}: {exc}")
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(f"{rel}: missing; generate it for {contract.ref}")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{rel}: unreadable ({exc})")
            continue
        try:
            have = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(f"{rel}: not valid JSON ({exc})")
            continue
        if have != want:
            problems.append(
                f"{rel}: differs from the model {contract.ref}: {_describe(have, want)}"
            )
        elif text != _render(want):
            problems.append(f"{rel}: matches {contract.ref} but is not formatted as generated")
    for path in sorted((root / "avro").glob("*/*.avsc")):
        if path not in expected:
            rel = path.relative_to(root).as_posix()
            problems.append(f"{rel}: no registered contract {path.parent.name}.{path.stem}")
    return problems


def _render(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _describe(have: Any, want: dict[str, Any]) -> str:
    """A one-line summary of how a checked-in schema differs from the generated one."""
    if not isinstance(have, dict) or not isinstance(have.get("fields"), list):
        return "not an Avro record schema"
    have_fields = {f.get("name"): f for f in have["fields"] if isinstance(f, dict)}
    want_fields = {f["name"]: f for f in want["fields"]}
    parts = []
    if added := [n for n in want_fields if n not in have_fields]:
        parts.append("fields only in the model: " + ", ".join(added))
    if removed := [str(n) for n in have_fields if n not in want_fields]:
        parts.append("fields only in the file: " + ", ".join(removed))
    if changed := [n for n in want_fields if n in have_fields and have_fields[n] != want_fields[n]]:
        parts.append("fields that differ: " + ", ".join(changed))
    if not parts:
        parts.append("field order or record attributes (name, namespace, doc) differ")
    return "; ".join(parts)


# -- schema generation ------------------------------------------------------------------


@cache
def _model_schema(
    model: type[BaseModel], namespace: str
) -> tuple[dict[str, Any], Mapping[str, dict[str, Any]]]:
    """The record schema of ``model`` and its named types by name. Shared: do not mutate."""
    builder = _Builder(namespace)
    schema = builder.record(model)
    assert isinstance(schema, dict)
    return schema, types.MappingProxyType(builder.named)


class _Builder:
    """Walks a model's annotations once; names each nested model once, then references it."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.models: dict[str, type[BaseModel]] = {}
        self.named: dict[str, dict[str, Any]] = {}

    def record(self, model: type[BaseModel]) -> AvroSchema:
        name = model.__name__
        if not _AVRO_NAME.match(name):
            raise ConfigError(f"model {model.__qualname__}: {name!r} is not a valid Avro name")
        if name in self.models:
            if self.models[name] is not model:
                raise ConfigError(
                    f"two different models are named {name}; Avro needs distinct record names"
                )
            return f"{self.namespace}.{name}" if self.namespace else name
        self.models[name] = model
        schema: dict[str, Any] = {"type": "record", "name": name}
        if self.namespace:
            schema["namespace"] = self.namespace
        if doc := _model_doc(model):
            schema["doc"] = doc
        schema["fields"] = [
            self.field(model, name, info) for name, info in model.model_fields.items()
        ]
        self.named[name] = schema
        if self.namespace:
            self.named[f"{self.namespace}.{name}"] = schema
        return schema

    def field(self, model: type[BaseModel], name: str, info: FieldInfo) -> dict[str, Any]:
        where = f"{model.__name__}.{name}"
        if not _AVRO_NAME.match(name):
            raise ConfigError(f"{where}: {name!r} is not a valid Avro field name")
        avro_type = self.type_of(info.annotation, list(info.metadata), where)
        entry: dict[str, Any] = {"name": name, "type": avro_type}
        if info.description:
            entry["doc"] = info.description
        if isinstance(avro_type, list) and avro_type[0] == "null":
            entry["default"] = None
        elif not info.is_required():
            default = _avro_default(info.get_default(call_default_factory=True), avro_type)
            if default is not _NO_DEFAULT:
                entry["default"] = default
        return entry

    def type_of(self, tp: Any, metadata: list[Any], where: str) -> AvroSchema:
        origin = get_origin(tp)
        if origin is Annotated:
            base, *extra = get_args(tp)
            return self.type_of(base, [*metadata, *_flatten_metadata(extra)], where)
        if origin is Union or origin is types.UnionType:
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                raise ConfigError(f"{where}: only `T | None` unions map to Avro, not {tp}")
            return ["null", self.type_of(members[0], metadata, where)]
        if origin is Literal:
            return _literal_type(get_args(tp), where)
        if origin in _SEQUENCES:
            args = get_args(tp)
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                raise ConfigError(f"{where}: only tuple[T, ...] maps to an Avro array, not {tp}")
            return {"type": "array", "items": self.type_of(args[0], [], where)}
        if origin in _MAPPINGS:
            key, value = get_args(tp)
            if key is not str:
                raise ConfigError(f"{where}: Avro maps need str keys, not {key}")
            return {"type": "map", "values": self.type_of(value, [], where)}
        if origin is not None or not isinstance(tp, type):
            raise ConfigError(f"{where}: no Avro type for {tp}")
        return self.plain_type(tp, metadata, where)

    def plain_type(self, tp: type, metadata: list[Any], where: str) -> AvroSchema:
        if issubclass(tp, BaseModel):
            return self.record(tp)
        if issubclass(tp, enum.Enum):
            return _literal_type(tuple(member.value for member in tp), where)
        # Order matters: bool is an int and datetime is a date.
        for python_type, avro in _SCALARS:
            if issubclass(tp, python_type):
                return copy.deepcopy(avro)
        if issubclass(tp, Decimal):
            return _decimal_type(metadata, where)
        raise ConfigError(f"{where}: no Avro type for {tp.__qualname__}")


_SCALARS: Final[tuple[tuple[type, AvroSchema], ...]] = (
    (bool, "boolean"),
    (int, "long"),
    (float, "double"),
    (str, "string"),
    (bytes, "bytes"),
    (datetime, {"type": "long", "logicalType": "timestamp-micros"}),
    (date, {"type": "int", "logicalType": "date"}),
    (uuid.UUID, {"type": "string", "logicalType": "uuid"}),
)


def _decimal_type(metadata: list[Any], where: str) -> dict[str, Any]:
    precision = _last_attr(metadata, "max_digits")
    scale = _last_attr(metadata, "decimal_places")
    if not isinstance(precision, int) or not isinstance(scale, int):
        raise ConfigError(
            f"{where}: a Decimal needs Field(max_digits=..., decimal_places=...) "
            "to become an Avro decimal"
        )
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


def _literal_type(values: Iterable[Any], where: str) -> str:
    kinds = {type(v) for v in values}
    if kinds == {str}:
        return "string"
    if kinds == {int}:
        return "long"
    if kinds == {bool}:
        return "boolean"
    raise ConfigError(f"{where}: literal or enum values must all be str, int or bool")


def _flatten_metadata(items: Iterable[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in items:
        if isinstance(item, FieldInfo):
            flat.extend(item.metadata)
        else:
            flat.append(item)
    return flat


def _last_attr(metadata: list[Any], attr: str) -> Any:
    # The innermost (last) constraint wins, as it does in pydantic.
    for item in reversed(metadata):
        value = getattr(item, attr, None)
        if value is not None:
            return value
    return None


def _model_doc(model: type[BaseModel]) -> str | None:
    doc = model.__doc__
    return inspect.cleandoc(doc) if doc and doc.strip() else None


_NO_DEFAULT: Final = object()


def _avro_default(value: Any, avro_type: AvroSchema) -> Any:
    """An Avro default for a pydantic default, when one is simple enough to carry."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(avro_type, str):
        accepts = _DEFAULT_CHECKS.get(avro_type)
        return value if accepts is not None and accepts(value) else _NO_DEFAULT
    kind = avro_type.get("type") if isinstance(avro_type, dict) else None
    if kind == "array" and isinstance(value, list | tuple | set | frozenset) and not value:
        return []
    if kind == "map" and isinstance(value, dict) and not value:
        return {}
    return _NO_DEFAULT


_DEFAULT_CHECKS: Final[Mapping[str, Callable[[Any], bool]]] = {
    "boolean": lambda v: isinstance(v, bool),
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
}


# -- datum conversion -------------------------------------------------------------------


def _datum(value: Any, schema: AvroSchema, names: Mapping[str, dict[str, Any]]) -> Any:
    """Convert ``value`` guided by its Avro ``schema``, so data and schema never disagree."""
    if isinstance(schema, str):
        if schema not in _PRIMITIVES:
            return _datum(value, names[schema], names)
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(schema, list):
        return None if value is None else _datum(value, schema[1], names)
    kind = schema["type"]
    if kind == "record":
        return {
            f["name"]: _datum(getattr(value, f["name"]), f["type"], names) for f in schema["fields"]
        }
    if kind == "array":
        return [_datum(v, schema["items"], names) for v in value]
    if kind == "map":
        return {k: _datum(v, schema["values"], names) for k, v in value.items()}
    if schema.get("logicalType") == "decimal":
        return _quantize(value, schema["scale"])
    return value


def _quantize(value: Decimal, scale: int) -> Decimal:
    quantized = value.quantize(Decimal(1).scaleb(-scale))
    if quantized != value:
        # Validation caps decimal places, so only a record built around
        # validation (model_construct) can get here; never round silently.
        raise ValueError(f"{value} has more than {scale} decimal places")
    return quantized
