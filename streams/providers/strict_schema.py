"""Turn a contract's pydantic JSON schema into what each wire format accepts.

OpenAI's strict structured outputs (``response_format`` with ``strict: true``)
accept only a subset of JSON Schema, and answer anything else with HTTP 400 on
every record. OpenAI-compatible servers (vLLM, llama.cpp, Ollama) compile the
same schema into a grammar and are stricter still about validation keywords.
So :func:`to_strict_schema` sends the *shape* and tells the model the rest in
words. ``{"type": "object", "properties": {"code": {"type": "string",
"pattern": "^[A-Z]{3}$"}}}`` (``code`` optional) becomes::

    {"type": "object",
     "properties": {"code": {"type": ["string", "null"],
                             "description": "Constraints: pattern=^[A-Z]{3}$"}},
     "required": ["code"],
     "additionalProperties": false}

The rules, applied to every node (``$defs`` included), never to the input:

* every object gets ``additionalProperties: false`` and lists *all* its
  properties in ``required``; a property that was optional becomes nullable
  (``"type": [t, "null"]`` for plain scalars, ``anyOf: [..., {"type": "null"}]``
  otherwise), so "absent" is spelled ``null``;
* validation keywords the target's capability profile (:mod:`.profiles`) does
  not enforce are removed and appended to the node's ``description`` as
  ``Constraints: minLength=1; pattern=^[A-Z]{3}$``; the ``legacy`` profile (the
  default here, and this example) enforces none, the ``llamacpp`` profile keeps
  ``pattern``, ``format: date``, lengths and integer bounds, and sends a
  fixed-places decimal (``x-decimal-places``) as a string with a regex;
  ``format`` becomes a plain-words hint ("ISO 8601 date (YYYY-MM-DD)");
  pydantic still enforces all of them when the answer is validated. (Which
  ones a server accepts differs by server and model snapshot, so ``legacy``,
  stripping them all, is the one choice that works everywhere);
* a ``$ref`` with sibling keys is inlined (siblings win), because strict mode
  allows ``$ref`` only on its own; bare ``$ref`` and ``$defs`` are kept;
* pydantic's ``Decimal`` (``anyOf: [number, string]``) becomes a ``number``;
  ``oneOf`` becomes ``anyOf``; a single-branch ``anyOf``/``allOf`` is unwrapped.

Shapes strict mode cannot express at all (free-form ``dict`` maps, tuples,
multi-branch ``allOf``) raise :class:`~streams.errors.ConfigError`. Call the
transform when a pipeline is built so a bad contract fails at start-up, not
per record.

:func:`to_tool_input_schema` is the Anthropic counterpart: Anthropic accepts
full JSON Schema for a tool's ``input_schema``, so constraints stay native; it
only guarantees an ``object`` root with ``$defs`` kept at that root.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from streams.errors import ConfigError
from streams.providers.profiles import KEYWORDS, PROFILES, CapabilityProfile, Treatment

__all__ = ["to_strict_schema", "to_tool_input_schema"]

#: Keywords strict mode accepts, kept as they are. Everything else is either
#: structural (handled below), metadata we drop, or turned into a hint.
_KEPT = frozenset({"type", "enum", "const", "description", "title", "$ref"})

#: Handled structurally by :class:`_Strictifier`.
_STRUCTURAL = frozenset(
    {
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "items",
        "prefixItems",
        "anyOf",
        "oneOf",
        "allOf",
        "$defs",
    }
)

#: Metadata with no meaning for generation. ``discriminator`` goes with ``oneOf``.
_DROPPED = frozenset(
    {"discriminator", "readOnly", "writeOnly", "deprecated", "$schema", "$id", "$comment"}
)

#: Validation keywords, in the order their hints are written: the profiles' list, less
#: ``format`` (its hint is written on its own).
_CONSTRAINT_ORDER = tuple(k for k in KEYWORDS if k != "format")

#: ``format`` values spelled out for the model.
_FORMAT_HINTS: Mapping[str, str] = {
    "date": "ISO 8601 date (YYYY-MM-DD)",
    "date-time": "ISO 8601 date-time (YYYY-MM-DDTHH:MM:SS, optional fraction and UTC offset)",
    "time": "ISO 8601 time (HH:MM:SS, optional fraction and UTC offset)",
    "duration": "ISO 8601 duration (e.g. P3DT4H30M)",
    "email": "Email address",
    "uri": "Absolute URI (e.g. https://example.com/path)",
    "uuid": "UUID (8-4-4-4-12 hexadecimal digits)",
    "ipv4": "IPv4 address",
    "ipv6": "IPv6 address",
    "hostname": "Host name",
}

_DECIMAL_HINT = "Decimal number, written as a JSON number (e.g. 1234.50)"

#: Scalar types that take ``null`` by widening ``type`` rather than by ``anyOf``.
_SCALARS = frozenset({"string", "number", "integer", "boolean"})

_NULL: dict[str, Any] = {"type": "null"}


def to_strict_schema(
    schema: dict[str, Any], profile: CapabilityProfile | None = None
) -> dict[str, Any]:
    """Return a strict-mode copy of ``schema`` for OpenAI-compatible structured outputs.

    ``schema`` is typically ``Model.model_json_schema()``; it is not modified.
    ``profile`` (default ``legacy``) says which validation keywords the target
    enforces: those stay, the rest become words (see :mod:`.profiles`).
    Raises :class:`~streams.errors.ConfigError` for shapes strict mode cannot
    express.
    """
    root = copy.deepcopy(schema)
    chosen = PROFILES["legacy"] if profile is None else profile
    return _Strictifier(root, chosen).node(root, path="#", inlining=frozenset())


def to_tool_input_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``schema`` fit for an Anthropic tool's ``input_schema``.

    Anthropic validates the full JSON Schema, so constraints are kept. The
    root must be an object: a root ``$ref`` (as ``TypeAdapter`` produces) is
    inlined, and ``$defs`` stays at the root where every ``$ref`` points.
    """
    root: dict[str, Any] = _without_extensions(copy.deepcopy(schema))
    defs = root.pop("$defs", None)
    ref = root.pop("$ref", None)
    if isinstance(ref, str):
        root = {**copy.deepcopy(_resolve({"$defs": defs or {}}, ref, path="#")), **root}
    if "type" not in root and "properties" in root:
        root["type"] = "object"
    if root.get("type") != "object":
        raise ConfigError(
            f"tool input schema root must be an object, got type={root.get('type')!r}; "
            "wrap the contract's fields in a pydantic model"
        )
    if defs:
        root["$defs"] = defs
    return root


class _Strictifier:
    """One transform over one (copied) root; ``$ref`` resolves against it."""

    def __init__(self, root: dict[str, Any], profile: CapabilityProfile) -> None:
        self._root = root
        self._profile = profile

    def node(self, schema: Any, *, path: str, inlining: frozenset[str]) -> dict[str, Any]:
        if not isinstance(schema, dict):
            raise ConfigError(f"schema node at {path} is {schema!r}, not an object schema")
        schema = _unwrap_single(_collapse_decimal(schema), path=path)
        ref = schema.get("$ref")
        if isinstance(ref, str) and len(schema) > 1:
            return self._inline_ref(schema, ref, path=path, inlining=inlining)

        out: dict[str, Any] = {}
        hints: list[str] = []
        constraints: dict[str, Any] = {}
        schema = _decimal_node(schema, self._profile, hints, constraints)
        for key, value in schema.items():
            if key in _KEPT:
                out[key] = value
            elif key in _STRUCTURAL or key in _DROPPED or key.startswith("x-"):
                continue
            elif self._profile.treatment(key, value, schema) is not Treatment.REJECT:
                out[key] = value
            elif key == "format":
                if value in _FORMAT_HINTS:
                    hints.append(_FORMAT_HINTS[value])
                else:
                    constraints[key] = value
            elif key == "default":
                if value is not None:  # a None default is what nullable already says
                    hints.append(f"Default: {json.dumps(value, ensure_ascii=False)}")
            elif key == "examples":
                hints.append(f"Examples: {json.dumps(value, ensure_ascii=False)}")
            else:
                constraints[key] = value
        if constraints:
            ordered = sorted(constraints, key=_constraint_rank)
            hints.append(
                "Constraints: " + "; ".join(f"{k}={_render(constraints[k])}" for k in ordered)
            )
        if hints:
            out["description"] = _join(out.get("description"), *hints)

        self._structure(schema, out, path=path, inlining=inlining)
        return out

    def _structure(
        self, schema: dict[str, Any], out: dict[str, Any], *, path: str, inlining: frozenset[str]
    ) -> None:
        if "patternProperties" in schema:
            raise _unexpressible(path, "patternProperties (a dict keyed by a pattern)")
        if "prefixItems" in schema:
            raise _unexpressible(path, "a tuple (prefixItems); use a nested model")

        defs = schema.get("$defs")
        if isinstance(defs, dict):
            out["$defs"] = {
                name: self.node(sub, path=f"{path}/$defs/{name}", inlining=inlining)
                for name, sub in defs.items()
            }

        properties = schema.get("properties")
        is_object = schema.get("type") == "object" or isinstance(properties, dict)
        if is_object:
            extra = schema.get("additionalProperties")
            if not isinstance(properties, dict) or not properties:
                if isinstance(extra, dict) or extra is True:
                    raise _unexpressible(path, "a free-form map (dict[str, ...])")
                properties = {}
            required = set(schema.get("required", ()))
            strict_props: dict[str, Any] = {}
            for name, sub in properties.items():
                prop = self.node(sub, path=f"{path}/properties/{name}", inlining=inlining)
                strict_props[name] = prop if name in required else _nullable(prop)
            out["type"] = schema.get("type", "object")
            out["properties"] = strict_props
            out["required"] = list(strict_props)
            out["additionalProperties"] = False

        items = schema.get("items")
        if isinstance(items, dict):
            out["items"] = self.node(items, path=f"{path}/items", inlining=inlining)

        branches = schema.get("anyOf", schema.get("oneOf"))
        if isinstance(branches, list):
            out["anyOf"] = [
                self.node(sub, path=f"{path}/anyOf/{i}", inlining=inlining)
                for i, sub in enumerate(branches)
            ]

    def _inline_ref(
        self, schema: dict[str, Any], ref: str, *, path: str, inlining: frozenset[str]
    ) -> dict[str, Any]:
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        if ref in inlining:
            # A recursive model referring to itself with a description: inlining
            # again would never end, so keep the bare reference and lose the note.
            return {"$ref": ref}
        resolved = _resolve(self._root, ref, path=path)
        merged = {**copy.deepcopy(resolved), **siblings}
        return self.node(merged, path=path, inlining=inlining | {ref})


def _collapse_decimal(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop the string branch pydantic adds to ``Decimal`` so the model writes a number.

    ``anyOf: [{"type": "number", ...}, {"type": "string", "pattern"?: ...}]``
    is what pydantic emits for ``Decimal`` in validation mode. A ``float | str``
    union looks the same and is collapsed too; contracts model money as
    ``Decimal``, and a number is still valid input for either.
    """
    branches = schema.get("anyOf")
    if not isinstance(branches, list):
        return schema
    numbers = [b for b in branches if isinstance(b, dict) and b.get("type") == "number"]
    strings = [
        b
        for b in branches
        if isinstance(b, dict) and b.get("type") == "string" and set(b) <= {"type", "pattern"}
    ]
    if len(numbers) != 1 or len(strings) != 1:
        return schema
    number = {**numbers[0], "description": _join(numbers[0].get("description"), _DECIMAL_HINT)}
    kept = [number if b is numbers[0] else b for b in branches if b is not strings[0]]
    return {**schema, "anyOf": kept}


def _without_extensions(node: Any) -> Any:
    """``node`` without this project's ``x-`` annotations (``x-decimal-places``), in place.

    Only schema keywords are dropped: the names under ``properties`` and ``$defs`` are
    field and model names, kept whatever they are.
    """
    if isinstance(node, list):
        for value in node:
            _without_extensions(value)
    if not isinstance(node, dict):
        return node
    for key in [k for k in node if isinstance(k, str) and k.startswith("x-")]:
        del node[key]
    for key, value in node.items():
        if key in ("properties", "$defs") and isinstance(value, dict):
            for sub in value.values():
                _without_extensions(sub)
        else:
            _without_extensions(value)
    return node


def _decimal_node(
    schema: dict[str, Any],
    profile: CapabilityProfile,
    hints: list[str],
    constraints: dict[str, Any],
) -> dict[str, Any]:
    """A fixed-places decimal (``x-decimal-places``) as ``profile`` wants it sent.

    ``decimals="pattern"``: a string whose regex allows at most that many places
    (unsigned when ``minimum`` is 0, which the regex then enforces, or when
    ``exclusiveMinimum`` is 0, where only "not zero" is left); other numeric
    bounds cannot apply to a string and become words. ``"number"``: the places
    become words. Nodes without the marker are returned as they are.
    """
    places = schema.get("x-decimal-places")
    if not isinstance(places, int) or schema.get("type") != "number":
        return schema
    if profile.decimals == "ignore":  # legacy: the marker is dropped, as before profiles
        return schema
    if profile.decimals == "number":
        constraints["decimalPlaces"] = places
        return schema
    unsigned = schema.get("minimum") == 0 or schema.get("exclusiveMinimum") == 0
    sign = "" if unsigned else "-?"
    fraction = rf"(\.[0-9]{{1,{places}}})?" if places > 0 else ""
    node = {k: v for k, v in schema.items() if k not in _NUMERIC}
    node["type"] = "string"
    node["pattern"] = f"^{sign}(0|[1-9][0-9]*){fraction}$"
    for key in _NUMERIC:
        if key in schema and not (unsigned and key == "minimum"):
            constraints[key] = schema[key]
    hints.append(
        f'Decimal number with at most {places} places, written as a string (e.g. "1234.50")'
    )
    return node


_NUMERIC = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "multipleOf")


def _unwrap_single(schema: dict[str, Any], *, path: str) -> dict[str, Any]:
    """Fold a one-branch ``anyOf``/``oneOf``/``allOf`` into its parent node.

    The branch's keys win, except ``description``, where both are kept. Older
    pydantic versions wrap a described ``$ref`` as ``allOf: [{"$ref": ...}]``;
    after folding it is a ``$ref`` with siblings, which the caller inlines.
    """
    for key in ("allOf", "anyOf", "oneOf"):
        branches = schema.get(key)
        if not isinstance(branches, list):
            continue
        if len(branches) == 1 and isinstance(branches[0], dict):
            parent = {k: v for k, v in schema.items() if k != key}
            branch = branches[0]
            merged = {**parent, **{k: v for k, v in branch.items() if k != "description"}}
            description = _join(parent.get("description"), branch.get("description"))
            if description:
                merged["description"] = description
            return _unwrap_single(merged, path=path)
        if key == "allOf":
            raise _unexpressible(path, "allOf with several branches")
    return schema


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` widened to also accept ``null`` (unchanged if it already does)."""
    if _allows_null(schema):
        return schema
    typ = schema.get("type")
    if isinstance(typ, str) and typ in _SCALARS and not {"enum", "const", "anyOf"} & set(schema):
        return {**schema, "type": [typ, "null"]}
    return {"anyOf": [schema, dict(_NULL)]}


def _allows_null(schema: dict[str, Any]) -> bool:
    typ = schema.get("type")
    if typ == "null" or (isinstance(typ, list) and "null" in typ):
        return True
    if "const" in schema and schema["const"] is None:
        return True
    branches = schema.get("anyOf")
    return isinstance(branches, list) and any(
        isinstance(b, dict) and _allows_null(b) for b in branches
    )


def _resolve(root: dict[str, Any], ref: str, *, path: str) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ConfigError(f"$ref {ref!r} at {path} is not local; keep every model in one schema")
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"$ref {ref!r} at {path} points nowhere; regenerate the schema")
        node = node[part]
    if not isinstance(node, dict):
        raise ConfigError(f"$ref {ref!r} at {path} is not an object schema")
    return node


def _unexpressible(path: str, what: str) -> ConfigError:
    return ConfigError(
        f"strict structured outputs cannot express {what} at {path}; "
        "model it as a nested pydantic model or a list of key/value objects"
    )


def _constraint_rank(key: str) -> tuple[int, str]:
    try:
        return (_CONSTRAINT_ORDER.index(key), key)
    except ValueError:
        return (len(_CONSTRAINT_ORDER), key)


def _render(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _join(*parts: Any) -> str:
    return "\n".join(p for p in parts if isinstance(p, str) and p)
