"""Fixtures: the simulator's only source of correct answers.

A fixture is a document ``NAME.txt`` next to its correct record ``NAME.json``.
The simulator never reads meaning into text; it looks the document's
:func:`~streams.textnorm.text_sha256` up here, and a document it has no fixture
for is answered with ``{}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from streams.errors import ConfigError
from streams.textnorm import text_sha256

__all__ = ["load_fixtures"]


def load_fixtures(directories: Iterable[Path]) -> Mapping[str, Mapping[str, Any]]:
    """Map document key -> answer object for every ``*.txt`` with a sibling ``*.json``.

    Raises :class:`ConfigError` for a missing directory, an answer that is not a
    JSON object, or two different answers for the same document.
    """
    answers: dict[str, Mapping[str, Any]] = {}
    origin: dict[str, Path] = {}
    for directory in directories:
        if not directory.is_dir():
            raise ConfigError(f"fixtures directory {str(directory)!r} does not exist")
        for text_path in sorted(directory.rglob("*.txt")):
            answer_path = text_path.with_suffix(".json")
            if not answer_path.is_file():
                continue
            key = text_sha256(text_path.read_text(encoding="utf-8"))
            answer = _read_answer(answer_path)
            if key in answers and answers[key] != answer:
                raise ConfigError(
                    f"fixtures {str(origin[key])!r} and {str(text_path)!r} are the same "
                    "document with different answers"
                )
            answers[key] = answer
            origin[key] = text_path
    return answers


def _read_answer(path: Path) -> Mapping[str, Any]:
    try:
        answer = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"fixture answer {str(path)!r} is not JSON: {exc}") from exc
    if not isinstance(answer, dict):
        raise ConfigError(f"fixture answer {str(path)!r} must be a JSON object")
    return answer
