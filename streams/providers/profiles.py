"""Capability profiles: which JSON Schema keywords each wire target enforces.

A strict-mode server compiles the schema it is sent into a grammar (llama.cpp,
vLLM, Ollama) or a constrained decoder (OpenAI strict). What it compiles, the
model cannot get wrong; what it ignores or rejects, pydantic still catches when
the answer is validated, at the price of a re-ask. So the transform
(:func:`~streams.providers.strict_schema.to_strict_schema`) keeps every keyword
the target *enforces*, keeps as it is what the target only *reads* (a hint),
and turns the rest into words in the ``description``, because sending it would
be a 400 on every record::

    profile = profile_for("llamacpp")
    schema = to_strict_schema(contract.json_schema(), profile)
    for line in unenforced(contract.json_schema(), profile):
        log.info(line)   # "invoice_v1 #/properties/tax: minimum=0 (validation only)"

One table per target, with the source each row was taken from:

========================  =============================================================
profile                   where its rows come from
========================  =============================================================
``legacy``                the transform before profiles: every validation keyword
                          becomes words (portable to any strict server)
``openai-strict``         OpenAI's structured-outputs guide, "supported properties"
``anthropic-tool``        Anthropic's tool ``input_schema``: full JSON Schema, read by
                          the model, not grammar-constrained
``llamacpp``              llama.cpp ``common/json-schema-to-grammar.cpp``; checked
                          against the real server in tests/localmodel
``ollama``                Ollama converts ``response_format`` with the same llama.cpp
                          converter, so the same rows (not checked against Ollama here)
``vllm-guidance``         llguidance's JSON compiler; checked offline with llguidance
``vllm-xgrammar``         vLLM's ``has_xgrammar_unsupported_json_features``: what vLLM
                          hands to guidance instead (``auto``) or rejects
========================  =============================================================

``decimals`` says how a fixed-places decimal (a node with ``x-decimal-places``,
as the contracts' money types declare) travels: ``number`` (the places become
words), or ``pattern``, a string with a regex of at most that many places, which
a grammar enforces digit by digit. Either way the validator is unchanged.

A profile's ``name`` and ``version`` are part of the bytes a provider is keyed on
(``wire_schema``), so changing a row (bump ``version``) is a cache miss.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from streams.errors import ConfigError

__all__ = [
    "PROFILES",
    "CapabilityProfile",
    "Treatment",
    "profile_for",
    "unenforced",
]


class Treatment(enum.StrEnum):
    """What a target does with one keyword."""

    ENFORCE = "enforce"
    """Compiled into the decoder: kept in the schema; the model cannot break it."""
    HINT = "hint"
    """Accepted and shown to the model, not enforced: kept in the schema as it is."""
    REJECT = "reject"
    """Refused (a 400) or silently dropped: removed and written into the description."""


#: Every validation keyword a profile has to decide on, in the order hints are written.
KEYWORDS = (
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
)

_BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
_ALL_FORMATS = frozenset(
    {"date", "date-time", "time", "duration", "email", "uri", "uuid", "ipv4", "ipv6", "hostname"}
)


@dataclass(frozen=True)
class CapabilityProfile:
    """One wire target's table. Keywords not listed in ``keywords`` are :attr:`Treatment.REJECT`."""

    name: str
    version: int
    keywords: Mapping[str, Treatment]
    #: ``format`` values the target enforces (or, for a HINT target, reads).
    formats: frozenset[str] = frozenset()
    #: Numeric bounds apply to ``integer`` nodes only (llama.cpp ignores them on ``number``).
    bounds_integer_only: bool = False
    decimals: Literal["ignore", "number", "pattern"] = "number"
    source: str = ""

    @property
    def ident(self) -> str:
        """``name/version``, as it goes into the cache key."""
        return f"{self.name}/v{self.version}"

    def treatment(self, keyword: str, value: Any, node: Mapping[str, Any]) -> Treatment:
        """What this target does with ``keyword: value`` on ``node``."""
        found = self.keywords.get(keyword, Treatment.REJECT)
        if found is Treatment.REJECT:
            return found
        if keyword == "format" and value not in self.formats:
            return Treatment.REJECT
        if keyword in _BOUNDS and self.bounds_integer_only and node.get("type") != "integer":
            return Treatment.REJECT
        return found


def _table(enforce: tuple[str, ...] = (), hint: tuple[str, ...] = ()) -> dict[str, Treatment]:
    table = dict.fromkeys(enforce, Treatment.ENFORCE)
    table.update(dict.fromkeys(hint, Treatment.HINT))
    return table


_LLAMACPP_ROWS = _table(
    enforce=("minLength", "maxLength", "pattern", "format", *_BOUNDS, "minItems", "maxItems")
)
_LLAMACPP_FORMATS = frozenset({"date", "time", "date-time", "uuid"})

PROFILES: Mapping[str, CapabilityProfile] = {
    p.name: p
    for p in (
        CapabilityProfile(
            "legacy", 1, {}, decimals="ignore", source="the transform before profiles"
        ),
        CapabilityProfile(
            "openai-strict",
            1,
            _table(enforce=("pattern", "format", *_BOUNDS, "multipleOf", "minItems", "maxItems")),
            formats=frozenset(
                {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6"}
                | {"uuid"}
            ),
            source="platform.openai.com/docs/guides/structured-outputs#supported-properties",
        ),
        CapabilityProfile(
            "anthropic-tool",
            1,
            _table(hint=KEYWORDS),
            formats=_ALL_FORMATS,
            source="docs.anthropic.com tool use: input_schema is JSON Schema the model reads",
        ),
        CapabilityProfile(
            "llamacpp",
            1,
            _LLAMACPP_ROWS,
            formats=_LLAMACPP_FORMATS,
            bounds_integer_only=True,
            decimals="pattern",
            source="llama.cpp common/json-schema-to-grammar.cpp; tests/localmodel check it",
        ),
        CapabilityProfile(
            "ollama",
            1,
            _LLAMACPP_ROWS,
            formats=_LLAMACPP_FORMATS,
            bounds_integer_only=True,
            decimals="pattern",
            source="Ollama's format/response_format uses llama.cpp's converter",
        ),
        CapabilityProfile(
            "vllm-guidance",
            1,
            _table(
                enforce=(
                    *("minLength", "maxLength", "pattern", "format", *_BOUNDS, "multipleOf"),
                    *("minItems", "maxItems", "minProperties", "maxProperties"),
                )
            ),
            formats=_ALL_FORMATS,
            decimals="pattern",
            source="llguidance's JSON schema compiler; tests/providers check it with llguidance",
        ),
        CapabilityProfile(
            "vllm-xgrammar",
            1,
            _table(enforce=("minLength", "maxLength", "pattern", *_BOUNDS, "minItems", "maxItems")),
            decimals="pattern",
            source="vLLM has_xgrammar_unsupported_json_features (format, multipleOf, ...)",
        ),
    )
}


def profile_for(name: str) -> CapabilityProfile:
    """The profile called ``name``; a ConfigError that lists the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise ConfigError(
            f"unknown schema profile {name!r}; set llm.schema_profile to one of: {known}"
        ) from None


def unenforced(schema: Mapping[str, Any], profile: CapabilityProfile) -> list[str]:
    """``path: keyword=value`` for every constraint in ``schema`` the target will not enforce.

    Validation still enforces each of them; these are the ones a re-ask may cost.
    """
    lines: list[str] = []
    for path, node in _nodes(schema, "#"):
        places = node.get("x-decimal-places")
        if isinstance(places, int) and profile.decimals in ("ignore", "number"):
            lines.append(f"{path}: decimal places <= {places}")
        for keyword in KEYWORDS:
            if keyword not in node:
                continue
            value = node[keyword]
            if isinstance(places, int) and profile.decimals == "pattern":
                if keyword == "minimum" and value == 0:
                    continue  # the unsigned pattern enforces it
                if keyword == "exclusiveMinimum" and value == 0:
                    lines.append(f"{path}: exclusiveMinimum=0 (the regex allows 0)")
                    continue
            elif profile.treatment(keyword, value, node) is Treatment.ENFORCE:
                continue
            lines.append(f"{path}: {keyword}={value}")
    return lines


def _nodes(node: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if not isinstance(node, Mapping):
        return
    yield path, node
    for key in ("properties", "$defs"):
        children = node.get(key)
        if isinstance(children, Mapping):
            for name, sub in children.items():
                yield from _nodes(sub, f"{path}/{key}/{name}")
    items = node.get("items")
    if isinstance(items, Mapping):
        yield from _nodes(items, f"{path}/items")
    for key in ("anyOf", "oneOf", "allOf"):
        branches = node.get(key)
        if isinstance(branches, list):
            for i, sub in enumerate(branches):
                yield from _nodes(sub, f"{path}/{key}/{i}")
