"""What a provider derives from a contract's schema, built once per schema rather than per call.

A :class:`~streams.providers.base.CompletionRequest` names its schema, and the
schema under a name is fixed: a stage builds it once and passes the same dict
on every request. So the strict transform, the tool definition and their JSON
are worth building once::

    parts = SchemaCache(lambda name, schema: to_strict_schema(schema))
    strict = parts.get(request.schema_name, request.json_schema)

A hit is the same dict (an identity check) or an equal one; a different dict
under a known name rebuilds and replaces the entry, so the cache holds one
entry per name and is never stale for a schema it was not given. What it
cannot see is a dict changed in place after its first use; schemas are not
changed that way (requests are frozen, and stages never edit their schema).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import orjson

from streams.errors import ConfigError

__all__ = ["SchemaCache", "schema_fragment"]

T = TypeVar("T")


class SchemaCache(Generic[T]):
    """``build(name, schema)``, remembered per schema name."""

    def __init__(self, build: Callable[[str, dict[str, Any]], T]) -> None:
        self._build = build
        self._entries: dict[str, tuple[dict[str, Any], T]] = {}

    def get(self, name: str, schema: dict[str, Any]) -> T:
        """The parts for ``schema`` under ``name``; built on first sight (errors propagate)."""
        entry = self._entries.get(name)
        if entry is not None:
            seen, parts = entry
            if seen is schema:
                return parts
            if seen == schema:
                self._entries[name] = (schema, parts)  # the next call is an identity hit
                return parts
        parts = self._build(name, schema)
        self._entries[name] = (schema, parts)
        return parts

    def __len__(self) -> int:
        return len(self._entries)


def schema_fragment(schema_name: str, value: Any) -> orjson.Fragment:
    """``value`` serialised once, to be spliced into every request body as it is."""
    try:
        return orjson.Fragment(orjson.dumps(value))
    except orjson.JSONEncodeError as exc:
        raise ConfigError(
            f"the schema for {schema_name!r} is not JSON-serialisable ({exc}); "
            "build it with model_json_schema()"
        ) from exc
