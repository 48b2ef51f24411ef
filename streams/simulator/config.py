"""The simulator's behaviours and its one settings object.

Every option of ``streams simulate-llm`` is a field of :class:`SimulatorConfig`.
The config is checked when it is built, so a bad value fails at start-up with a
one-line :class:`~streams.errors.ConfigError`, never in the middle of a request.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.errors import ConfigError

__all__ = [
    "DEFAULT_MODEL_SUFFIX",
    "STRICT_UNSUPPORTED_KEYWORDS",
    "Behaviour",
    "SimulatorConfig",
    "parse_behaviour",
    "parse_fault_mix",
    "parse_script",
]


class Behaviour(enum.StrEnum):
    """What the simulated model does with one request."""

    VALID = "valid"
    """The fixture's answer as JSON text (``{}`` for a document without a fixture)."""
    MALFORMED = "malformed"
    """Prose around JSON whose closing braces are missing: no object can be recovered."""
    INVALID = "invalid"
    """The fixture's answer, well-formed but broken against the contract."""
    TRUNCATED = "truncated"
    """The first half of the valid answer, with ``finish_reason=length``."""
    HTTP_429 = "http_429"
    """429 with ``Retry-After``: a rate limit that clears, so retrying is right."""
    HTTP_429_TOO_LARGE = "http_429_too_large"
    """429 without ``Retry-After`` saying the request alone exceeds the account's
    tokens-per-minute limit (OpenAI ``type: tokens``), so retrying never helps;
    on ``/v1/messages`` Anthropic's 413 ``request_too_large`` instead."""
    HTTP_500 = "http_500"
    """500 server error."""
    HTTP_502_HTML = "http_502_html"
    """502 from a proxy in front of the API: nginx's ``text/html`` page, not JSON."""
    HTTP_400 = "http_400"
    """400 invalid request."""
    HTTP_401 = "http_401"
    """401 authentication error."""
    HTTP_403 = "http_403"
    """403 permission error: the key is valid but may not use this model."""
    HTTP_404 = "http_404"
    """404 ``model_not_found`` for the requested model."""
    EMPTY_CHOICES = "empty_choices"
    """200 with a well-formed completion holding no answer: OpenAI ``choices: []``,
    Anthropic ``content: []``."""
    HANG = "hang"
    """Sleep ``hang_s`` before answering validly; exercises client timeouts."""
    UNKNOWN = "unknown"
    """Answer as if the document had no fixture: ``{}``."""


#: Keywords OpenAI's strict mode rejects, from the "Supported schemas" section of the
#: Structured Outputs guide as first published. OpenAI has since started accepting a
#: few of them (``pattern``, ``format``, ``minimum``/``maximum``, ``minItems``/``maxItems``)
#: on newer models; the simulator keeps the conservative set on purpose, because a
#: pipeline whose schemas pass it is accepted by every strict-mode model.
STRICT_UNSUPPORTED_KEYWORDS: frozenset[str] = frozenset(
    {
        # strings
        "minLength",
        "maxLength",
        "pattern",
        "format",
        # numbers
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        # objects
        "patternProperties",
        "unevaluatedProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
        # arrays
        "unevaluatedItems",
        "contains",
        "minContains",
        "maxContains",
        "minItems",
        "maxItems",
        "uniqueItems",
        # composition
        "allOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "dependentRequired",
        "dependentSchemas",
        # annotations the strict decoder refuses
        "default",
        "examples",
    }
)

#: Appended to the requested model to make the reported one, as real APIs report a
#: dated snapshot for an alias. Lets tests prove the pipeline records what it got.
DEFAULT_MODEL_SUFFIX = "-sim-2026-11"


def parse_behaviour(name: str) -> Behaviour:
    """The behaviour called ``name`` (case- and space-insensitive), or :class:`ConfigError`."""
    try:
        return Behaviour(name.strip().lower())
    except ValueError:
        known = ", ".join(b.value for b in Behaviour)
        raise ConfigError(f"unknown behaviour {name.strip()!r}; known: {known}") from None


def parse_fault_mix(spec: str) -> dict[Behaviour, float]:
    """Parse ``"http_500=0.2,malformed=0.1"`` into a behaviour -> probability mapping."""
    mix: dict[Behaviour, float] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"fault mix item {item.strip()!r} is not NAME=PROBABILITY")
        behaviour = parse_behaviour(name)
        try:
            mix[behaviour] = float(value)
        except ValueError:
            raise ConfigError(f"fault mix probability {value.strip()!r} is not a number") from None
    _check_fault_mix(mix)
    return mix


def parse_script(rules: Any) -> dict[str, tuple[Behaviour, ...]]:
    """Check a script, ``{"<doc sha256>": ["http_429", "valid"]}``, and parse its names."""
    if not isinstance(rules, Mapping):
        raise ConfigError('a script must map "<doc sha256>" to a list of behaviour names')
    parsed: dict[str, tuple[Behaviour, ...]] = {}
    for key, names in rules.items():
        if (
            not isinstance(key, str)
            or isinstance(names, str)
            or not isinstance(names, Sequence)
            or not names
            or not all(isinstance(n, str) for n in names)
        ):
            raise ConfigError(
                f"script rule for {key!r} must be a non-empty list of behaviour names"
            )
        parsed[key] = tuple(parse_behaviour(n) for n in names)
    return parsed


def _check_fault_mix(mix: Mapping[Behaviour, float]) -> None:
    for behaviour, p in mix.items():
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise ConfigError(f"fault mix probability for {behaviour.value} must be in [0, 1]")
    total = sum(mix.values())
    if total > 1.0 + 1e-9:
        raise ConfigError(f"fault mix probabilities add up to {total:g}, more than 1")


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything the simulator can be told. Built once; checked on construction.

    Usage::

        config = SimulatorConfig(
            fixture_dirs=[Path("contracts/samples/invoice")],
            fault_mix=parse_fault_mix("http_500=0.2,malformed=0.1"),
            seed=7,
        )
    """

    fixture_dirs: Sequence[Path] = ()
    """Directories searched recursively for ``NAME.txt`` documents with a ``NAME.json`` answer."""
    script: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Initial runtime script, document sha256 -> behaviours per attempt (``/_sim/script``)."""
    fault_mix: Mapping[Behaviour, float] = field(default_factory=dict)
    """Probability of each non-valid behaviour per (document, attempt); the rest is valid."""
    seed: int = 0
    """Seed of the fault mix: the same seed, documents and attempts give the same behaviours."""
    latency_ms: float = 0.0
    """Fixed latency added before every model answer or scripted failure."""
    hang_s: float = 30.0
    """How long the ``hang`` behaviour sleeps before answering."""
    max_concurrency: int | None = None
    """Requests in flight beyond this get 429 with ``Retry-After``; ``None`` means no limit."""
    api_key: str | None = field(default=None, repr=False)
    """If set, the ``Authorization: Bearer`` (OpenAI) or ``x-api-key`` (Anthropic) required."""
    model_suffix: str = DEFAULT_MODEL_SUFFIX
    """Appended to the requested model to give the reported model."""
    retry_after_s: int = 1
    """``Retry-After`` seconds sent with every 429."""
    record_limit: int = 10_000
    """How many requests ``GET /_sim/requests`` keeps (oldest dropped); stats count all."""
    strict_unsupported_keywords: frozenset[str] = STRICT_UNSUPPORTED_KEYWORDS
    """Schema keywords that make a strict ``response_format`` a 400."""

    def __post_init__(self) -> None:
        # Accept plain strings as keys so callers can pass {"http_500": 0.2}.
        mix = {parse_behaviour(str(k)): float(v) for k, v in self.fault_mix.items()}
        _check_fault_mix(mix)
        object.__setattr__(self, "fault_mix", mix)
        object.__setattr__(self, "fixture_dirs", tuple(Path(p) for p in self.fixture_dirs))
        object.__setattr__(self, "script", parse_script(self.script))
        if not (math.isfinite(self.latency_ms) and self.latency_ms >= 0):
            raise ConfigError("latency_ms must be a number >= 0")
        if not (math.isfinite(self.hang_s) and self.hang_s >= 0):
            raise ConfigError("hang_s must be a number >= 0")
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigError("max_concurrency must be at least 1")
        if self.retry_after_s < 0:
            raise ConfigError("retry_after_s must be >= 0")
        if self.record_limit < 1:
            raise ConfigError("record_limit must be at least 1")
        if self.api_key is not None and not self.api_key:
            raise ConfigError("api_key must not be empty (leave it unset to disable auth)")
