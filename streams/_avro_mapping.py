"""How pydantic types become Avro types, and validated records become Avro datums.

The table of the mapping is in :mod:`streams.avro_schema`, the public face of
this module. :func:`model_schema` walks a model's annotations once and names
each nested model once; :func:`model_datum` converts a record guided by that
schema, so data and schema never disagree.
"""

from __future__ import annotations

import copy
import enum
import inspect
import re
import types
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from streams.errors import ConfigError

__all__ = ["AVRO_NAME", "AvroSchema", "model_datum", "model_schema"]

AVRO_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_SEQUENCES: Final[tuple[Any, ...]] = (list, tuple, set, frozenset, Sequence)
_MAPPINGS: Final[tuple[Any, ...]] = (dict, Mapping)

AvroSchema = Any  # a type name (str), a union (list) or a complex type (dict)


def model_datum(record: BaseModel, namespace: str = "") -> dict[str, Any]:
    """The dict fastavro writes for ``record`` under its :func:`model_schema`."""
    datum = _converter(type(record), namespace)(record)
    assert isinstance(datum, dict)
    return datum


@cache
def _converter(model: type[BaseModel], namespace: str) -> Callable[[Any], Any]:
    """:func:`_datum` for ``model``'s schema, compiled once into closures (it runs per
    record; walking the schema dicts each time was most of its cost)."""
    schema, names = model_schema(model, namespace)
    return _Compiler(names).compile(schema)


def _identity(value: Any) -> Any:
    return value


def _primitive(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


class _Compiler:
    """Builds the converter of each schema node; named types once, recursion allowed."""

    def __init__(self, names: Mapping[str, dict[str, Any]]) -> None:
        self.names = names
        self.named: dict[str, Callable[[Any], Any]] = {}

    def compile(self, schema: AvroSchema) -> Callable[[Any], Any]:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return _primitive
            return self._named(schema)
        if isinstance(schema, list):
            inner = self.compile(schema[1])
            return lambda v: None if v is None else inner(v)
        kind = schema["type"]
        if kind == "record":
            fields = tuple((f["name"], self.compile(f["type"])) for f in schema["fields"])
            return lambda v: {name: convert(getattr(v, name)) for name, convert in fields}
        if kind == "array":
            item = self.compile(schema["items"])
            return lambda v: [item(x) for x in v]
        if kind == "map":
            value = self.compile(schema["values"])
            return lambda v: {k: value(x) for k, x in v.items()}
        if schema.get("logicalType") == "decimal":
            scale = schema["scale"]
            return lambda v: _quantize(v, scale)
        return _identity

    def _named(self, name: str) -> Callable[[Any], Any]:
        if name not in self.named:
            # A placeholder first, so a type that refers to itself compiles.
            self.named[name] = lambda v: self.named[name](v)
            self.named[name] = self.compile(self.names[name])
        return self.named[name]


# -- schema generation ------------------------------------------------------------------


@cache
def model_schema(
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
        if not AVRO_NAME.match(name):
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
        if not AVRO_NAME.match(name):
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
                raise ConfigError(
                    f"{where}: only `T | None` unions map to Avro, not {tp}; "
                    "use one type (or a nested model with one optional field per kind)"
                )
            return ["null", self.type_of(members[0], metadata, where)]
        if origin is Literal:
            return _literal_type(get_args(tp), where)
        if origin in _SEQUENCES:
            args = get_args(tp)
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                raise ConfigError(
                    f"{where}: only tuple[T, ...] maps to an Avro array, not {tp}; "
                    "use list[T] or a nested model"
                )
            return {"type": "array", "items": self.type_of(args[0], [], where)}
        if origin in _MAPPINGS:
            key, value = get_args(tp)
            if key is not str:
                raise ConfigError(f"{where}: Avro maps need str keys, not {key}; use dict[str, T]")
            return {"type": "map", "values": self.type_of(value, [], where)}
        if origin is not None or not isinstance(tp, type):
            raise ConfigError(f"{where}: no Avro type for {tp}; {_SUPPORTED}")
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
        raise ConfigError(f"{where}: no Avro type for {tp.__qualname__}; {_SUPPORTED}")


_SUPPORTED: Final = (
    "use str, int, float, bool, bytes, Decimal, date, datetime, UUID, an Enum, a Literal, "
    "a nested model, list[T] or dict[str, T]"
)

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
    raise ConfigError(
        f"{where}: literal or enum values must be all str, all int or all bool; use a str Enum"
    )


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


def _quantize(value: Decimal, scale: int) -> Decimal:
    quantized = value.quantize(Decimal(1).scaleb(-scale))
    if quantized != value:
        # Validation caps decimal places, so only a record built around
        # validation (model_construct) can get here; never round silently.
        raise ValueError(f"{value} has more than {scale} decimal places")
    return quantized
