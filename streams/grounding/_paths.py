"""Leaf paths of a record ("line_items[0].amount") and the globs that select them.

A glob is a path whose parts may be ``*`` (any one part), ``**`` (any number of
parts) or an fnmatch pattern ("*_date"). Indices may be written ``[*]``, ``.*`` or
left out, so "line_items[*].amount", "line_items.*.amount" and
"line_items.amount" all select every line's amount. A glob also selects
everything beneath what it names: "line_items" selects every line's fields.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from datetime import date, datetime
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel

__all__ = ["PathGlob", "leaves"]

_SCALARS = frozenset({str, int, float, bool, Decimal, date, datetime, type(None)})
_PART = re.compile(r"\[([^\]]*)\]|([^.\[\]]+)")


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf of ``value`` with its path; models, mappings and sequences are walked."""
    if isinstance(value, BaseModel):
        # model_dump keeps Decimal, date and enum values and adds computed fields.
        value = value.model_dump(mode="python")
    out: list[tuple[str, Any]] = []
    _collect(value, path, out)  # one list, not a generator per level: it runs per record
    return iter(out)


def _collect(value: Any, path: str, out: list[tuple[str, Any]]) -> None:
    kind = type(value)
    # Exact types first: isinstance against BaseModel or Mapping is an ABC check.
    if kind in _SCALARS:
        out.append((path, value))
        return
    if kind is dict:
        for key, item in value.items():
            _collect(item, f"{path}.{key}" if path else str(key), out)
        return
    if kind is list:
        for i, item in enumerate(value):
            _collect(item, f"{path}[{i}]", out)
        return
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="python")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _collect(item, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _collect(item, f"{path}[{i}]", out)
    elif isinstance(value, set | frozenset):
        for i, item in enumerate(sorted(value, key=repr)):
            _collect(item, f"{path}[{i}]", out)
    else:
        out.append((path, value))


def _parts(path: str) -> tuple[tuple[str, bool], ...]:
    """(text, is_index) for each part of a path or glob."""
    return tuple((m[1], True) if m[1] is not None else (m[2], False) for m in _PART.finditer(path))


class PathGlob:
    """A set of path globs, compiled once; ``matches(path)`` is true when any selects it."""

    def __init__(self, globs: Collection[str]) -> None:
        if isinstance(globs, str):
            raise TypeError("pass a collection of globs, not one string")
        self.globs = tuple(globs)
        self._patterns = tuple(_parts(g) for g in self.globs)

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def matches(self, path: str) -> bool:
        if not self._patterns:
            return False
        parts = _parts(path)
        return any(_match(pattern, parts) for pattern in self._patterns)

    def selecting(self, path: str) -> list[str]:
        """The globs that select ``path``."""
        parts = _parts(path)
        return [g for g, p in zip(self.globs, self._patterns, strict=True) if _match(p, parts)]


def _match(pattern: tuple[tuple[str, bool], ...], path: tuple[tuple[str, bool], ...]) -> bool:
    if not pattern:
        return True  # a glob selects the whole subtree it names
    (head, _), rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    (text, is_index), below = path[0], path[1:]
    if fnmatchcase(text, head) and _match(rest, below):
        return True
    # A glob that leaves an index out selects every element: "line_items.amount".
    return is_index and _match(pattern, below)
