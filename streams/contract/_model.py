"""What a contract is: a named, versioned pydantic model, its prompt and its policies.

Usage::

    from streams.contract import Contract, Example, Prompt

    PURCHASE_ORDER_V1 = Contract(
        name="purchase_order",
        version=1,
        model=PurchaseOrder,
        prompt=Prompt("Extract the purchase order.", (Example(doc, record),)),
    )
    PURCHASE_ORDER_V1.prompt.version   # 12-hex hash of instructions and examples
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel

__all__ = ["Compatibility", "Contract", "Example", "GroundingPolicy", "Prompt"]

Compatibility = Literal["BACKWARD", "FORWARD", "FULL", "NONE"]

_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAMESPACE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


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
class GroundingPolicy:
    """Which extracted values must be found in the source text.

    ``required`` lists dotted field paths (``vendor``, ``line_items.*.amount``); a
    valid answer whose required values do not occur in the document is re-asked,
    then routed invalid. Every other value is grounded and reported, never enforced.
    """

    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class Contract:
    """One version of one contract: the public unit a pipeline names.

    ``compatibility`` is the Schema Registry level this version keeps towards
    ``compatible_with``: BACKWARD (a reader of this version reads the older
    version's data), FORWARD (a reader of the older version reads this one's
    data) or FULL (both). ``streams schemas check`` proves it with fastavro,
    writing the records of ``samples`` (a folder of ``NAME.txt`` + ``NAME.json``
    labelled samples) and the prompt examples with one version and reading them
    with the other.

    ``namespace`` is the Avro namespace of the value schema; it defaults to
    ``<name>.v<version>``.
    """

    name: str
    version: int
    model: type[BaseModel]
    prompt: Prompt
    compatibility: Compatibility = "BACKWARD"
    description: str = ""
    #: The earlier version this one must stay compatible with, at ``compatibility``.
    #: None starts a new compatibility line: a contract's first version, or a
    #: breaking major version, which gets its own pipeline, topics and subject.
    compatible_with: int | None = None
    grounding: GroundingPolicy = field(default_factory=GroundingPolicy)
    namespace: str | None = None
    #: Labelled samples (``NAME.txt`` + ``NAME.json``): compatibility proofs and evaluation.
    samples: Path | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"contract name {self.name!r}: use letters, digits and underscores "
                "(it names Avro records and topics)"
            )
        if self.namespace is not None and not _NAMESPACE.match(self.namespace):
            raise ValueError(
                f"contract {self.ref}: namespace {self.namespace!r} is not a dotted Avro name"
            )
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise ValueError(f"contract {self.name}: version must be an int >= 1")
        if self.version < 1:
            raise ValueError(f"contract {self.name}: version must be an int >= 1")
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

    @property
    def avro_namespace(self) -> str:
        return self.namespace or f"{self.name}.v{self.version}"

    @property
    def grounding_required(self) -> tuple[str, ...]:
        """The grounding policy's required paths (what the grounding stage checks)."""
        return self.grounding.required

    def json_schema(self) -> dict[str, Any]:
        return self.model.model_json_schema()
