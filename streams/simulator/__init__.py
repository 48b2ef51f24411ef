"""A deterministic, scriptable LLM over real HTTP: OpenAI chat completions and Anthropic Messages.

It never reads meaning into text. Correct answers come from fixtures keyed by
the document's :func:`~streams.textnorm.text_sha256`; everything else (errors,
malformed or broken answers, truncation, hangs) is scripted per document and
attempt, or drawn from a seeded fault mix, so every run is reproducible.
``POST /_sim/outage`` fails every request for a while; ``GET /v1/models`` answers
a health probe without spending budget.

Usage::

    config = SimulatorConfig(fixture_dirs=[Path("contracts/samples/invoice")], seed=7)
    async with RunningSimulator(config) as sim:
        ...  # point the OpenAI provider at f"{sim.url}/v1"
"""

from streams.simulator.config import (
    DEFAULT_MODEL_SUFFIX,
    STRICT_UNSUPPORTED_KEYWORDS,
    Behaviour,
    SimulatorConfig,
    parse_fault_mix,
    parse_script,
)
from streams.simulator.fixtures import load_fixtures
from streams.simulator.server import RunningSimulator, SimulatorThread, build_app, serve
from streams.simulator.state import RequestRecord
from streams.simulator.strict import StrictViolation, check_strict_schema

__all__ = [
    "DEFAULT_MODEL_SUFFIX",
    "STRICT_UNSUPPORTED_KEYWORDS",
    "Behaviour",
    "RequestRecord",
    "RunningSimulator",
    "SimulatorConfig",
    "SimulatorThread",
    "StrictViolation",
    "build_app",
    "check_strict_schema",
    "load_fixtures",
    "parse_fault_mix",
    "parse_script",
    "serve",
]
