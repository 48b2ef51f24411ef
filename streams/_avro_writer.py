"""A value record's Avro writer, compiled once per schema into closures.

It writes the same bytes as ``fastavro.schemaless_writer`` for the values it accepts,
and accepts fewer: each node checks the exact Python type that
:func:`~streams.avro_schema.to_avro_datum` produces (``str``, ``int`` in range,
``float``, ``Decimal``, ``date``, ``list``, ``dict`` with every field present) and
raises :class:`Unsupported` otherwise. The encoder then writes the value with fastavro,
which writes it or raises its usual error, so a value this writer turns down behaves
exactly as before. A schema with a type it does not know (a map, an enum, a float, a
timestamp...) does not compile, and that contract's values all go to fastavro.

fastavro spends most of its time on checks these values have already passed in
pydantic: a union is validated branch by branch before it is written.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

__all__ = ["Unsupported", "compile_writer"]

_Out = list[bytes]
_Write = Callable[[_Out, Any], None]

_INT32 = 2**31
_INT64 = 2**63
_DAYS_SHIFT = date(1970, 1, 1).toordinal()
_ONE_BYTE = tuple(bytes((i,)) for i in range(0x80))
_PACK_DOUBLE = struct.Struct("<d").pack


class Unsupported(Exception):
    """A schema or a value this writer leaves to fastavro."""


def zigzag_long(n: int) -> bytes:
    """Avro's zig-zag varint of a 64-bit int or long (the caller checked the range)."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:  # most lengths and offsets: one or two bytes
        return _ONE_BYTE[n]
    if n < 0x4000:
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def compile_writer(schema: Any) -> Callable[[Any], bytes]:
    """The writer of ``schema`` (a parsed-from-JSON Avro schema); raises Unsupported."""
    write = _Compiler().node(schema, "")

    def encode(datum: Any) -> bytes:
        out: _Out = []
        write(out, datum)
        return b"".join(out)

    return encode


def _boolean(out: _Out, v: Any) -> None:
    if type(v) is not bool:
        raise Unsupported("boolean")
    out.append(b"\x01" if v else b"\x00")


def _int(out: _Out, v: Any) -> None:
    if type(v) is not int or not -_INT32 <= v < _INT32:
        raise Unsupported("int")
    out.append(zigzag_long(v))


def _long_value(out: _Out, v: Any) -> None:
    if type(v) is not int or not -_INT64 <= v < _INT64:
        raise Unsupported("long")
    out.append(zigzag_long(v))


def _double(out: _Out, v: Any) -> None:
    if type(v) is not float:
        raise Unsupported("double")
    out.append(_PACK_DOUBLE(v))


def _string(out: _Out, v: Any) -> None:
    if type(v) is not str:
        raise Unsupported("string")
    data = v.encode("utf-8")
    out.append(zigzag_long(len(data)))
    out.append(data)


def _date(out: _Out, v: Any) -> None:
    if type(v) is not date:
        raise Unsupported("date")
    out.append(zigzag_long(v.toordinal() - _DAYS_SHIFT))


def _decimal(precision: int, scale: int) -> _Write:
    def write(out: _Out, v: Any) -> None:
        if type(v) is not Decimal:
            raise Unsupported("decimal")
        # fastavro's prepare_bytes_decimal, step for step.
        sign, digits, exp = v.as_tuple()
        if not isinstance(exp, int) or len(digits) > precision or exp + scale < 0:
            raise Unsupported("decimal precision or scale")
        unscaled = 0
        for digit in digits:
            unscaled = unscaled * 10 + digit
        unscaled = 10 ** (exp + scale) * unscaled
        size = (unscaled.bit_length() + 8) // 8
        data = (-unscaled if sign else unscaled).to_bytes(size, byteorder="big", signed=True)
        out.append(zigzag_long(len(data)))
        out.append(data)

    return write


_PRIMITIVES: dict[str, _Write] = {
    "boolean": _boolean,
    "int": _int,
    "long": _long_value,
    "double": _double,
    "string": _string,
}


class _Compiler:
    def __init__(self) -> None:
        self.named: dict[str, _Write] = {}

    def node(self, schema: Any, namespace: str) -> _Write:
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return _PRIMITIVES[schema]
            full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
            for name in (full, schema):
                if name in self.named:
                    named = self.named
                    return lambda out, v: named[name](out, v)
            raise Unsupported(f"type {schema}")
        if isinstance(schema, list):
            return self._union(schema, namespace)
        if not isinstance(schema, dict):
            raise Unsupported(repr(schema))
        kind, logical = schema.get("type"), schema.get("logicalType")
        if logical == "decimal" and kind == "bytes":
            return _decimal(int(schema["precision"]), int(schema.get("scale", 0)))
        if logical == "date" and kind == "int":
            return _date
        if logical in ("timestamp-millis", "timestamp-micros") and kind == "long":
            return _long_value  # an int is written as is; a datetime is left to fastavro
        if logical is not None:
            raise Unsupported(f"logical type {logical}")
        if kind == "record":
            return self._record(schema, namespace)
        if kind == "array":
            return _array(self.node(schema["items"], namespace))
        if isinstance(kind, str) and kind in _PRIMITIVES:
            return _PRIMITIVES[kind]
        raise Unsupported(f"type {kind}")

    def _union(self, branches: list[Any], namespace: str) -> _Write:
        if len(branches) != 2 or branches.count("null") != 1:
            raise Unsupported("a union other than null and one type")
        null_index = branches.index("null")
        value = self.node(branches[1 - null_index], namespace)
        null_tag, value_tag = zigzag_long(null_index), zigzag_long(1 - null_index)

        def write(out: _Out, v: Any) -> None:
            if v is None:
                out.append(null_tag)
            else:
                out.append(value_tag)
                value(out, v)

        return write

    def _record(self, schema: dict[str, Any], namespace: str) -> _Write:
        name = str(schema["name"])
        if "." in name:
            full, namespace = name, name.rpartition(".")[0]
        else:
            namespace = str(schema.get("namespace", namespace))
            full = f"{namespace}.{name}" if namespace else name
        if full in self.named:
            raise Unsupported(f"{full} defined twice")
        fields: list[tuple[str, _Write]] = []

        def write(out: _Out, v: Any) -> None:
            if type(v) is not dict:
                raise Unsupported("record")
            for field, write_field in fields:
                write_field(out, v[field])  # a missing field (a default) is fastavro's

        self.named[full] = write  # before the fields, so a type can refer to itself
        fields.extend((str(f["name"]), self.node(f["type"], namespace)) for f in schema["fields"])
        return write


def _array(item: _Write) -> _Write:
    def write(out: _Out, v: Any) -> None:
        if type(v) is not list:
            raise Unsupported("array")
        if v:
            out.append(zigzag_long(len(v)))
            for x in v:
                item(out, x)
        out.append(b"\x00")

    return write
