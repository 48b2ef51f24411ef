"""Avro schemas generated from the contracts, and the checked-in files that pin them.

::

    ContractVersion ──avro_schema_for──► value schema of <pipeline>.valid
                    └─write_schema_files / check_schema_files──► avro/<name>/v<N>.avsc
    envelope kind ──envelope_schema──► avro/_envelopes/<kind>/v1.avsc
    validated model ──to_avro_datum──► dict for fastavro; the caller adds "provenance"
                                       and may add "grounding" (grounding_datum)

The value schema is a record named after the model, in the contract's namespace
(``<name>.v<N>`` unless the contract sets one), with its fields at top level, then a
``provenance`` field (:data:`PROVENANCE_SCHEMA`) and last an optional
``grounding`` field (:data:`GROUNDING_SCHEMA`, default null). The envelope
schemas describe the JSON envelopes of the invalid, over-budget and dead-letter
topics (see :mod:`streams._avro_envelopes`).

:func:`check_schema_files` also proves each version's declared compatibility by
writing sample datums with one version's schema and reading them with the other's
(see :mod:`streams._avro_compat`). Types map as follows:

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
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from streams._avro_compat import compatibility_problems
from streams._avro_envelopes import (
    ENVELOPE_KINDS,
    ENVELOPE_SCHEMA_VERSION,
    envelope_datum,
    envelope_schema,
)
from streams._avro_mapping import AVRO_NAME, model_datum, model_schema
from streams.contract import ContractVersion, discover
from streams.errors import ConfigError
from streams.grounding import Grounding

__all__ = [
    "ENVELOPE_KINDS",
    "ENVELOPE_SCHEMA_VERSION",
    "GROUNDING_SCHEMA",
    "PROVENANCE_SCHEMA",
    "avro_schema_for",
    "check_schema_files",
    "envelope_datum",
    "envelope_schema",
    "grounding_datum",
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

#: Where each extracted value appears in the source text. Read-only, like
#: :data:`PROVENANCE_SCHEMA`; built by :func:`grounding_datum`.
GROUNDING_SCHEMA: Final[dict[str, Any]] = {
    "type": "record",
    "name": "Grounding",
    "namespace": "streams.grounding",
    "doc": "Whether and where each extracted value appears in the source text.",
    "fields": [
        {
            "name": "coverage",
            "type": "double",
            "doc": "Share of the considered values found in the source text, 0 to 1.",
        },
        {
            "name": "fields",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "FieldGrounding",
                    "doc": "The grounding of one extracted value.",
                    "fields": [
                        {
                            "name": "path",
                            "type": "string",
                            "doc": "Path of the value in the record, e.g. line_items[0].amount.",
                        },
                        {
                            "name": "found",
                            "type": "boolean",
                            "doc": "True when the value appears in the source text.",
                        },
                        {
                            "name": "start",
                            "type": ["null", "int"],
                            "default": None,
                            "doc": "Start offset of the match in the source text; null when "
                            "not found.",
                        },
                        {
                            "name": "end",
                            "type": ["null", "int"],
                            "default": None,
                            "doc": "End offset (exclusive) of the match; null when not found.",
                        },
                        {
                            "name": "method",
                            "type": "string",
                            "doc": "How it was found: exact, normalized_text, currency, number "
                            "or date; else not_found or skipped.",
                        },
                    ],
                },
            },
            "doc": "One entry per extracted leaf value, in record order.",
        },
    ],
}

_PROVENANCE_FIELD_DOC = "How this record was produced: pipeline, model, cost and source."
_GROUNDING_FIELD_DOC = (
    "Where each extracted value appears in the source text; null when not measured."
)
_RESERVED: Final = ("provenance", "grounding")
_ENVELOPES_DIR: Final = "_envelopes"


def avro_schema_for(contract: ContractVersion) -> dict[str, Any]:
    """The value schema of a contract's valid topic: its fields, ``provenance``, ``grounding``.

    Raises :class:`ConfigError` if the model uses a type Avro cannot carry.
    """
    for part in contract.avro_namespace.split("."):
        if not AVRO_NAME.match(part):
            raise ConfigError(
                f"contract {contract.ref}: {part!r} is not a valid Avro namespace part; "
                "use letters, digits and underscores"
            )
    schema, _ = model_schema(contract.model, contract.avro_namespace)
    schema = copy.deepcopy(schema)
    for reserved in _RESERVED:
        if any(f["name"] == reserved for f in schema["fields"]):
            raise ConfigError(
                f"contract {contract.ref}: the field name {reserved!r} is reserved for the "
                f"record's {reserved}; rename the field"
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
    # Last, and with a default: adding it kept every checked-in schema BACKWARD compatible.
    schema["fields"].append(
        {
            "name": "grounding",
            "type": ["null", copy.deepcopy(GROUNDING_SCHEMA)],
            "default": None,
            "doc": _GROUNDING_FIELD_DOC,
        }
    )
    return schema


def to_avro_datum(record: BaseModel) -> dict[str, Any]:
    """The dict fastavro writes for a validated record, without ``provenance`` or ``grounding``.

    Dates and datetimes stay objects (fastavro applies the logical types),
    Decimals are quantized to the schema's scale, enums become their values.
    The caller adds ``datum["provenance"]`` and may add ``datum["grounding"]``
    (:func:`grounding_datum`; fastavro writes null when it is absent) before
    writing with :func:`avro_schema_for`'s schema.
    """
    return model_datum(record)


def grounding_datum(grounding: Grounding) -> dict[str, Any]:
    """The ``grounding`` datum for a value record, from :func:`streams.grounding.ground`."""
    stored = getattr(grounding, "stored", None)
    if stored is not None:  # read back from the result cache: no dataclasses built
        return {
            "coverage": grounding.coverage,
            "fields": [
                {
                    "path": f["path"],
                    "found": f["found"],
                    "start": None if (span := f["span"]) is None else span["start"],
                    "end": None if span is None else span["end"],
                    "method": f["method"],
                }
                for f in stored
            ],
        }
    return {
        "coverage": grounding.coverage,
        "fields": [
            {
                "path": f.path,
                "found": f.found,
                "start": None if f.span is None else f.span.start,
                "end": None if f.span is None else f.span.end,
                "method": f.method,
            }
            for f in grounding.fields
        ],
    }


def schema_path(root: Path, contract: ContractVersion) -> Path:
    """Where a contract version's schema is checked in: ``root/avro/<name>/v<N>.avsc``.

    ``root`` is the repository root, or the ``avro`` folder itself.
    """
    return _avro_dir(root) / contract.name / f"v{contract.version}.avsc"


def write_schema_files(
    root: Path, contracts: Sequence[ContractVersion] | None = None
) -> list[Path]:
    """Write each contract's ``avro/<name>/v<N>.avsc`` under ``root``.

    ``contracts`` defaults to every installed contract (the ``streams.contracts``
    entry points), and then the envelope schemas are written as well. Files
    already up to date are left untouched. Returns every schema path: contracts
    in contract order, then the envelopes.
    """
    paths = []
    targets = _targets(_avro_dir(root), *_selection(contracts))
    for path, _, generate in targets:
        text = _render(generate())
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def check_schema_files(root: Path, contracts: Sequence[ContractVersion] | None = None) -> list[str]:
    """Problems with the checked-in schemas under ``root``, one line each; empty when fine.

    Reports contracts Avro cannot carry, missing files, files that differ from
    their model or envelope, files that match but are not in the generated
    formatting, files without a registered contract or envelope kind, and every
    declared compatibility (``compatible_with``) that fastavro cannot prove.
    ``contracts`` defaults to every installed contract plus the envelopes; given,
    only those contracts' folders are checked.
    """
    avro_dir = _avro_dir(root)
    selected, envelopes = _selection(contracts)
    problems: list[str] = []
    expected: set[Path] = set()
    for path, label, generate in _targets(avro_dir, selected, envelopes):
        expected.add(path)
        problem = _file_problem(path, _rel(avro_dir, path), label, generate)
        if problem:
            problems.append(problem)
    problems += compatibility_problems(
        selected,
        schema_for=avro_schema_for,
        datum_for=_check_datum,
        where=lambda c: _rel(avro_dir, schema_path(root, c)),
    )
    names = {c.name for c in selected}
    for path in sorted(avro_dir.glob("*/*.avsc")):
        if path not in expected and (envelopes or path.parent.name in names):
            rel = _rel(avro_dir, path)
            problems.append(f"{rel}: no registered contract {path.parent.name}.{path.stem}")
    for path in sorted(avro_dir.glob(f"{_ENVELOPES_DIR}/*/*.avsc")):
        if envelopes and path not in expected:
            rel = _rel(avro_dir, path)
            problems.append(f"{rel}: no envelope kind {path.parent.name} {path.stem}")
    return problems


Generate = Callable[[], dict[str, Any]]


def _selection(
    contracts: Sequence[ContractVersion] | None,
) -> tuple[list[ContractVersion], bool]:
    """The contracts to write or check, and whether the envelopes go with them."""
    if contracts is None:
        return list(discover()), True
    return sorted(contracts, key=lambda c: (c.name, c.version)), False


def _targets(
    avro_dir: Path, contracts: list[ContractVersion], envelopes: bool
) -> Iterator[tuple[Path, str, Generate]]:
    """Each schema file to write or check: its path, what it is, and how to generate it."""
    for contract in contracts:
        yield (
            avro_dir / contract.name / f"v{contract.version}.avsc",
            contract.ref,
            partial(avro_schema_for, contract),
        )
    for kind in ENVELOPE_KINDS if envelopes else ():
        yield (
            avro_dir / _ENVELOPES_DIR / kind / f"v{ENVELOPE_SCHEMA_VERSION}.avsc",
            f"envelope {kind}.v{ENVELOPE_SCHEMA_VERSION}",
            partial(envelope_schema, kind),
        )


def _file_problem(path: Path, rel: str, label: str, generate: Generate) -> str | None:
    try:
        want = generate()
    except ConfigError as exc:
        return f"{rel}: cannot generate a schema for {label}: {exc}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{rel}: missing; generate it for {label}"
    except (OSError, UnicodeDecodeError) as exc:
        return f"{rel}: unreadable ({exc})"
    try:
        have = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"{rel}: not valid JSON ({exc})"
    if have != want:
        return f"{rel}: differs from the model {label}: {_describe(have, want)}"
    if text != _render(want):
        return f"{rel}: matches {label} but is not formatted as generated"
    return None


def _avro_dir(root: Path) -> Path:
    # `streams schemas --root avro` names the schema folder itself; tests and tools pass
    # the repository root. Both mean the same folder.
    if root.name == "avro" and not (root / "avro").is_dir():
        return root
    return root / "avro"


def _rel(avro_dir: Path, path: Path) -> str:
    return path.relative_to(avro_dir.parent).as_posix()


def _check_datum(contract: ContractVersion, record: BaseModel) -> dict[str, Any]:
    """A complete value datum for the compatibility proofs: the record, provenance, grounding."""
    return to_avro_datum(record) | {
        "provenance": {
            "pipeline": "schema-check",
            "contract": contract.name,
            "contract_version": contract.version,
            "schema_id": None,
            "prompt_version": contract.prompt.version,
            "provider": "none",
            "model_requested": "none",
            "model_reported": "none",
            "attempts": 1,
            "input_tokens": 0,
            "output_tokens": 0,
            "cost_usd": 0.0,
            "latency_ms": 0.0,
            "cache_hit": False,
            "repairs": [],
            "source_topic": "schema-check",
            "source_partition": 0,
            "source_offset": 0,
            "source_key": None,
            "input_sha256": "0" * 64,
            "processed_at": 0,
        },
        "grounding": {
            "coverage": 1.0,
            "fields": [
                {"path": "x", "found": True, "start": 0, "end": 1, "method": "exact"},
                {"path": "y", "found": False, "start": None, "end": None, "method": "not_found"},
            ],
        },
    }


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
