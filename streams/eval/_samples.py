"""Labelled samples: ``NAME.txt`` (the document) beside ``NAME.json`` (the expected record)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.errors import ConfigError

__all__ = ["Sample", "load_samples"]


@dataclass(frozen=True)
class Sample:
    """One document and the record a correct extraction yields."""

    name: str
    text: bytes
    expected: dict[str, Any]


def load_samples(folder: Path, *, limit: int | None = None) -> list[Sample]:
    """Every ``*.txt`` in ``folder`` that has a ``.json`` beside it, in name order.

    A ``.txt`` without its ``.json`` is not labelled and is skipped; sub-folders
    (``_bad``, unlabelled negatives) are not read.
    """
    if not folder.is_dir():
        raise ConfigError(f"samples folder {folder} does not exist; pass a folder of NAME.txt")
    samples: list[Sample] = []
    for text_path in sorted(folder.glob("*.txt")):
        label = text_path.with_suffix(".json")
        if not label.is_file():
            continue
        try:
            expected = json.loads(label.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"sample label {label} is not valid JSON: {exc}") from None
        if not isinstance(expected, dict):
            raise ConfigError(f"sample label {label} is not a JSON object; write the record")
        samples.append(Sample(text_path.stem, text_path.read_bytes(), expected))
        if limit is not None and len(samples) >= limit:
            break
    if not samples:
        raise ConfigError(
            f"no labelled samples in {folder}: put NAME.txt beside NAME.json (the expected record)"
        )
    return samples
