"""Contract registry: a contract is a named, versioned pydantic model plus its prompt.

Usage::

    from contracts import get_contract
    c = get_contract("invoice", 1)
    c.model.model_validate_json(answer, strict=True)
    c.prompt.version   # 12-hex hash of instructions and examples
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

__all__ = [
    "SAMPLES_DIR",
    "ContractVersion",
    "Example",
    "Prompt",
    "all_contracts",
    "get_contract",
    "register",
]

Compatibility = Literal["BACKWARD", "FORWARD", "FULL", "NONE"]

SAMPLES_DIR = Path(__file__).parent / "samples"


@dataclass(frozen=True)
class Example:
    """A worked example shown to the model: a document and its correct record."""

    document: str
    record: dict[str, Any]


@dataclass(frozen=True)
class Prompt:
    """Instructions plus examples. Its version changes whenever either changes."""

    instructions: str
    examples: tuple[Example, ...] = ()

    @functools.cached_property
    def version(self) -> str:
        canonical = json.dumps(
            {
                "instructions": self.instructions,
                "examples": [{"document": e.document, "record": e.record} for e in self.examples],
            },
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]

    def system_message(self) -> str:
        """The system turn: instructions, then each example as document/record pair."""
        return self._system_message

    @functools.cached_property
    def _system_message(self) -> str:
        parts = [self.instructions.strip()]
        for i, ex in enumerate(self.examples, 1):
            parts.append(
                f"Example {i} document:\n<document>\n{ex.document.strip()}\n</document>\n"
                f"Example {i} record:\n{json.dumps(ex.record, ensure_ascii=False, sort_keys=True)}"
            )
        return "\n\n".join(parts)


@dataclass(frozen=True)
class ContractVersion:
    """One version of one contract.

    ``compatibility`` is the Schema Registry level this version keeps towards
    ``compatible_with``: BACKWARD (a reader of this version reads the older
    version's data), FORWARD (a reader of the older version reads this one's
    data) or FULL (both). ``streams schemas check`` proves it with fastavro.
    """

    name: str
    version: int
    model: type[BaseModel]
    prompt: Prompt
    compatibility: Compatibility = "BACKWARD"
    description: str = ""
    #: Dotted field paths that must be found in the source text (grounding policy).
    grounding_required: tuple[str, ...] = field(default_factory=tuple)
    #: The earlier version this one must stay compatible with, at ``compatibility``.
    #: None starts a new compatibility line: a contract's first version, or a
    #: breaking major version, which gets its own pipeline, topics and subject.
    compatible_with: int | None = None

    def __post_init__(self) -> None:
        if self.compatible_with is None:
            return
        if not 1 <= self.compatible_with < self.version:
            raise ValueError(
                f"contract {self.ref}: compatible_with={self.compatible_with} must name an "
                "earlier version"
            )
        if self.compatibility == "NONE":
            raise ValueError(
                f"contract {self.ref}: compatibility NONE cannot be compatible with "
                f"v{self.compatible_with}; leave compatible_with None to start a new line"
            )

    @property
    def ref(self) -> str:
        return f"{self.name}.v{self.version}"

    def json_schema(self) -> dict[str, Any]:
        return self.model.model_json_schema()


_REGISTRY: dict[tuple[str, int], ContractVersion] = {}


def register(contract: ContractVersion) -> ContractVersion:
    key = (contract.name, contract.version)
    if key in _REGISTRY and _REGISTRY[key] is not contract:
        raise ValueError(f"contract {contract.ref} registered twice")
    _REGISTRY[key] = contract
    return contract


def get_contract(name: str, version: int) -> ContractVersion:
    """Look a contract up; a miss names the contracts that do exist."""
    try:
        return _REGISTRY[(name, version)]
    except KeyError:
        known = ", ".join(sorted(c.ref for c in _REGISTRY.values())) or "none"
        raise KeyError(f"unknown contract {name}.v{version}; known: {known}") from None


def all_contracts() -> Iterator[ContractVersion]:
    yield from sorted(_REGISTRY.values(), key=lambda c: (c.name, c.version))
