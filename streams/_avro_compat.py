"""Compatibility proofs: write sample datums with one version's schema, read with another's.

For every contract version that declares ``compatible_with=N``, the declared
level is proven against version N with fastavro's schema resolution:

========= =============================== ===============================
level     writer (data already on topic)  reader (consumer's schema)
========= =============================== ===============================
BACKWARD  vN                              the new version
FORWARD   the new version                 vN
FULL      both of the above
========= =============================== ===============================

The datums are the records of each version's labelled samples (``samples``) and
the prompt examples of every version, each taken for the versions whose model
accepts it strictly. A version that accepts none of them gets datums built from
the other versions' records: fields it does not know are dropped and its
defaults fill the rest. A version with ``compatible_with=None`` starts a new
line and is not compared with older ones.
"""

from __future__ import annotations

import ast
import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

import fastavro
from pydantic import BaseModel, ValidationError

from streams.contract import ContractVersion
from streams.errors import ConfigError

__all__ = ["compatibility_problems"]

Direction = Literal["BACKWARD", "FORWARD"]

_DIRECTIONS: Final[Mapping[str, tuple[Direction, ...]]] = {
    "BACKWARD": ("BACKWARD",),
    "FORWARD": ("FORWARD",),
    "FULL": ("BACKWARD", "FORWARD"),
    "NONE": (),
}
# fastavro's resolution errors print both schemas in full; the start says what broke.
_MAX_ERROR_CHARS: Final = 300

SchemaFor = Callable[[ContractVersion], dict[str, Any]]
DatumFor = Callable[[ContractVersion, BaseModel], dict[str, Any]]
Labelled = tuple[str, str]  # (where a record came from, its JSON text)


def compatibility_problems(
    contracts: Sequence[ContractVersion],
    *,
    schema_for: SchemaFor,
    datum_for: DatumFor,
    where: Callable[[ContractVersion], str],
) -> list[str]:
    """One line per declared compatibility that does not hold; empty when all hold.

    ``schema_for`` gives a version's value schema, ``datum_for`` the full datum
    (provenance included) of one of its records, ``where`` the label that starts
    each problem line (the schema file of the newer version).
    """
    by_key = {(c.name, c.version): c for c in contracts}
    problems: list[str] = []
    for new in contracts:
        if new.compatible_with is None:
            continue
        old = by_key.get((new.name, new.compatible_with))
        if old is None:
            problems.append(
                f"{where(new)}: {new.ref} declares compatible_with={new.compatible_with}, "
                f"but {new.name}.v{new.compatible_with} is not registered"
            )
            continue
        try:
            schemas = {c.version: fastavro.parse_schema(schema_for(c)) for c in (new, old)}
        except ConfigError:
            continue  # the schema-file check reports why the schema cannot be generated
        pool = _record_pool([c for c in contracts if c.name == new.name])
        for direction in _DIRECTIONS[new.compatibility]:
            writer, reader = (old, new) if direction == "BACKWARD" else (new, old)
            failure = _prove(
                writer, reader, schemas[writer.version], schemas[reader.version], pool, datum_for
            )
            if failure:
                problems.append(
                    f"{where(new)}: {new.ref} is not {direction} compatible with {old.ref}: "
                    f"{failure}"
                )
    return problems


def _prove(
    writer: ContractVersion,
    reader: ContractVersion,
    writer_schema: Any,
    reader_schema: Any,
    pool: Sequence[Labelled],
    datum_for: DatumFor,
) -> str | None:
    """Why a ``reader`` cannot read ``writer``'s sample data, or None when every datum reads."""
    records = _records_for(writer, pool)
    if not records:
        return (
            f"no sample or prompt example validates as {writer.ref}, so there is no "
            f"{writer.ref} data to prove it with; add a sample"
        )
    w, r = f"v{writer.version}", f"v{reader.version}"
    for label, record in records:
        buffer = io.BytesIO()
        # fastavro raises assorted types (SchemaResolutionError, ValueError, TypeError,
        # KeyError, EOFError ...); each one is the proof failing, so each is reported.
        try:
            fastavro.schemaless_writer(buffer, writer_schema, datum_for(writer, record))
        except Exception as exc:
            return f"the {w} schema cannot write {label}: {_short(exc)}"
        written = buffer.tell()
        buffer.seek(0)
        try:
            fastavro.schemaless_reader(buffer, writer_schema, reader_schema)
        except Exception as exc:
            return f"a {r} reader cannot read {w} data ({label}): {_short(exc)}"
        if buffer.tell() != written:
            return f"a {r} reader read {buffer.tell()} of the {written} bytes of {w} data ({label})"
    return None


def _record_pool(versions: Sequence[ContractVersion]) -> list[Labelled]:
    """Every candidate record of a contract: its samples, then each version's prompt examples."""
    folders = sorted({v.samples for v in versions if v.samples is not None})
    pool = [
        (f"sample {path.stem}", path.read_text(encoding="utf-8"))
        for folder in folders
        for path in sorted(folder.glob("*.json"))
    ]
    for version in versions:
        pool.extend(
            (f"prompt example {i} of {version.ref}", json.dumps(example.record))
            for i, example in enumerate(version.prompt.examples, 1)
        )
    return pool


def _records_for(
    contract: ContractVersion, pool: Sequence[Labelled]
) -> list[tuple[str, BaseModel]]:
    """The pool's records that ``contract`` accepts strictly, else projections onto it."""
    accepted = [
        (label, record) for label, text in pool if (record := _validate(contract, text)) is not None
    ]
    if accepted:
        return accepted
    known = set(contract.model.model_fields)
    projected = []
    for label, text in pool:
        data = json.loads(text)
        if not isinstance(data, dict):
            continue
        kept = {key: value for key, value in data.items() if key in known}
        record = _validate(contract, json.dumps(kept))
        if record is not None:
            projected.append((f"{label}, projected onto {contract.ref} with defaults", record))
    return projected


def _validate(contract: ContractVersion, text: str) -> BaseModel | None:
    try:
        return contract.model.model_validate_json(text, strict=True)
    except ValidationError:
        return None


def _short(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {_name_schemas(str(exc))}"
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"


def _name_schemas(message: str) -> str:
    """Replace the schemas fastavro prints in full ("{'type': 'record', ...}") by type and name."""
    out, i = [], 0
    while (start := message.find("{'", i)) >= 0:
        end, depth = start, 0
        for end in range(start, len(message)):
            depth += {"{": 1, "}": -1}.get(message[end], 0)
            if depth == 0:
                break
        try:
            schema = ast.literal_eval(message[start : end + 1])
        except (ValueError, SyntaxError):
            out.append(message[i : start + 2])
            i = start + 2
            continue
        summary = (
            " ".join(str(schema[k]) for k in ("type", "name") if k in schema)
            if isinstance(schema, dict)
            else str(schema)
        )
        out.append(message[i:start] + summary)
        i = end + 1
    out.append(message[i:])
    return "".join(out)
