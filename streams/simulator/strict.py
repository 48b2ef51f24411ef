"""OpenAI strict-mode schema rules, checked the way the real API checks them.

A ``response_format`` with ``strict: true`` is only accepted when its schema
stays inside the strict subset: the root is an object; every object has
``additionalProperties: false`` and lists every property in ``required``; a
``$ref`` stands alone; no unsupported keyword appears anywhere. ``$defs``,
``$ref``, ``anyOf``, ``enum``, ``const``, ``title`` and ``description`` are
fine. Violations are reported with OpenAI's ``In context=(...)`` path, so a test
can assert which part of the pipeline's strict-schema transform is missing.

Usage::

    violations = check_strict_schema(schema)
    if violations:
        print(violations[0].describe())  # In context=('properties', 'total'), 'minimum' ...
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import Any

from streams.simulator.config import STRICT_UNSUPPORTED_KEYWORDS

__all__ = ["StrictViolation", "check_strict_schema"]

_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})


@dataclass(frozen=True)
class StrictViolation:
    """One rule broken at ``context``, the path of keys from the schema root."""

    context: tuple[str, ...]
    message: str

    @property
    def pointer(self) -> str:
        """The same path as a JSON pointer, e.g. ``#/properties/total``."""
        parts = (p.replace("~", "~0").replace("/", "~1") for p in self.context)
        return "/".join(("#", *parts))

    def describe(self) -> str:
        return f"In context={self.context!r}, {self.message}"


def check_strict_schema(
    schema: Any, unsupported: Set[str] = STRICT_UNSUPPORTED_KEYWORDS
) -> list[StrictViolation]:
    """Every strict-mode violation in ``schema``, outermost first; empty when accepted."""
    if not isinstance(schema, dict):
        return [StrictViolation((), "schema must be a JSON object.")]
    found: list[StrictViolation] = []
    if schema.get("type") != "object":
        found.append(
            StrictViolation(
                (),
                "schema must be a JSON Schema of 'type: \"object\"', "
                f"got 'type: \"{schema.get('type')}\"'.",
            )
        )
    _walk(schema, (), schema, unsupported, found)
    return found


def _walk(
    node: Any,
    context: tuple[str, ...],
    root: dict[str, Any],
    unsupported: Set[str],
    found: list[StrictViolation],
) -> None:
    if not isinstance(node, dict):
        found.append(StrictViolation(context, "schema must be a JSON object."))
        return
    for keyword in sorted(node.keys() & unsupported):
        found.append(StrictViolation(context, f"'{keyword}' is not permitted."))
    if "$ref" in node:
        _check_ref(node, context, root, found)
    types = node.get("type", [])
    type_list = types if isinstance(types, list) else [types]
    for name in type_list:
        if name not in _TYPES:
            found.append(StrictViolation(context, f"type {name!r} is not supported."))
    properties = node.get("properties")
    if "object" in type_list or properties is not None:
        _check_object(node, context, found)
    if isinstance(properties, dict):
        for name, sub in properties.items():
            _walk(sub, (*context, "properties", name), root, unsupported, found)
    items = node.get("items")
    if isinstance(items, dict):
        _walk(items, (*context, "items"), root, unsupported, found)
    for keyword in ("anyOf", "prefixItems"):
        branches = node.get(keyword)
        if isinstance(branches, list):
            for i, sub in enumerate(branches):
                _walk(sub, (*context, keyword, str(i)), root, unsupported, found)
    for keyword in ("$defs", "definitions"):
        definitions = node.get(keyword)
        if isinstance(definitions, dict):
            for name, sub in definitions.items():
                _walk(sub, (*context, keyword, name), root, unsupported, found)


def _check_object(
    node: dict[str, Any], context: tuple[str, ...], found: list[StrictViolation]
) -> None:
    if node.get("additionalProperties") is not False:
        found.append(
            StrictViolation(
                context, "'additionalProperties' is required to be supplied and to be false."
            )
        )
    properties = node.get("properties")
    names = list(properties) if isinstance(properties, dict) else []
    required = node.get("required")
    listed = required if isinstance(required, list) else []
    missing = [n for n in names if n not in listed]
    extra = [n for n in listed if n not in names]
    rule = (
        "'required' is required to be supplied and to be an array including every key in "
        "properties."
    )
    if missing or not isinstance(required, list):
        detail = f" Missing '{missing[0]}'." if missing else ""
        found.append(StrictViolation(context, rule + detail))
    if extra:
        found.append(StrictViolation(context, f"{rule} Extra required key '{extra[0]}' supplied."))


def _check_ref(
    node: dict[str, Any],
    context: tuple[str, ...],
    root: dict[str, Any],
    found: list[StrictViolation],
) -> None:
    siblings = sorted(set(node) - {"$ref"})
    if siblings:
        keywords = "{" + ", ".join(repr(s) for s in siblings) + "}"
        found.append(StrictViolation(context, f"$ref cannot have keywords {keywords}."))
    ref = node["$ref"]
    if not (isinstance(ref, str) and _resolves(ref, root)):
        found.append(StrictViolation(context, f"reference {ref!r} cannot be resolved."))


def _resolves(ref: str, root: dict[str, Any]) -> bool:
    if ref == "#":
        return True
    if not ref.startswith("#/"):
        return False
    target: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            return False
        target = target[part]
    return isinstance(target, dict)
