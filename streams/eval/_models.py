"""Model configurations: a TOML settings file, or ``key=value,...`` on the command line.

``label=after,base_url=http://127.0.0.1:8080/v1,model=qwen,schema_profile=llamacpp``
sets ``llm.*`` keys (``provider``, ``base_url``, ``model``, ``schema_profile``,
``timeout_s``, ``temperature``, ``max_connections``) and ``budgets.*`` keys
(``max_attempts``, ``max_output_tokens``, ``max_input_tokens``); ``config=PATH``
starts from a settings file. A spec that is only a path to a ``.toml`` is that
file, labelled with its stem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.errors import ConfigError

__all__ = ["ModelConfig", "parse_model"]

_LLM_KEYS = frozenset(
    {"provider", "base_url", "model", "schema_profile", "timeout_s", "temperature"}
    | {"max_connections"}
)
_BUDGET_KEYS = frozenset(
    {"max_attempts", "max_output_tokens", "max_input_tokens", "max_record_seconds"}
)
_NUMBERS = frozenset({"timeout_s", "temperature", "max_record_seconds"})
_INTEGERS = frozenset({"max_connections", *_BUDGET_KEYS})


@dataclass(frozen=True)
class ModelConfig:
    """One configuration to evaluate: a label, an optional settings file, and overrides."""

    label: str
    config: Path | None = None
    llm: dict[str, Any] = field(default_factory=dict)
    budgets: dict[str, Any] = field(default_factory=dict)


def parse_model(spec: str) -> ModelConfig:
    """``spec`` as a :class:`ModelConfig`; a ConfigError naming the bad part otherwise."""
    if spec.endswith(".toml") and "=" not in spec:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"model config {spec} not found; pass a settings TOML file")
        return ModelConfig(label=path.stem, config=path)
    label = ""
    config: Path | None = None
    llm: dict[str, Any] = {}
    budgets: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not value:
            raise ConfigError(f"model spec part {part!r} is not key=value, e.g. model=qwen")
        if key == "label":
            label = value
        elif key == "config":
            config = Path(value)
        elif key in _LLM_KEYS:
            llm[key] = _typed(key, value)
        elif key in _BUDGET_KEYS:
            budgets[key] = _typed(key, value)
        else:
            known = ", ".join(sorted({"label", "config", *_LLM_KEYS, *_BUDGET_KEYS}))
            raise ConfigError(f"model spec key {key!r} is unknown; use one of: {known}")
    if not label:
        label = str(llm.get("model") or (config.stem if config else "model"))
        if "schema_profile" in llm:
            label = f"{label}/{llm['schema_profile']}"
    return ModelConfig(label=label, config=config, llm=llm, budgets=budgets)


def _typed(key: str, value: str) -> Any:
    try:
        if key in _INTEGERS:
            return int(value)
        if key in _NUMBERS:
            return float(value)
    except ValueError:
        raise ConfigError(f"model spec {key}={value!r} is not a number") from None
    return value
