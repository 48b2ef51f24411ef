"""The embedded model under ``streams eval``, and the llamacpp profile against the real server.

Shares the session's llama.cpp server with test_local_model_pipeline.py
(tests/localmodel/conftest.py), so CI starts it once.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts import SAMPLES_DIR
from streams.cli import main
from streams.localmodel import LocalModelServer
from streams.providers.profiles import Treatment, profile_for
from streams.settings import default_cache_dir

pytestmark = [pytest.mark.slow]

#: At most two documents per contract: the CI budget for the local model is ~12 minutes.
PER_CONTRACT = 2
CONTRACTS = ("invoice.v1", "claim.v1", "lead.v1")
REPORTS = default_cache_dir() / "reports"

Check = Callable[[Any], bool]


def _date(v: Any) -> bool:
    return (
        isinstance(v, str)
        and bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v))
        and bool(dt.date.fromisoformat(v))
    )


def _uuid(v: Any) -> bool:
    try:
        return isinstance(v, str) and bool(uuid.UUID(v))
    except ValueError:
        return False


_TIME = r"\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?"
_MONEY = r"^-?(0|[1-9][0-9]*)(\.[0-9]{1,2})?$"

#: keyword -> (schema of field "a", what the prompt asks for, the check the answer passes).
#: Each prompt asks for a value the keyword forbids: only the grammar can keep it out.
PROBES: dict[str, tuple[dict[str, Any], str, Check]] = {
    "minLength": ({"type": "string", "minLength": 6}, '"ab"', lambda v: len(v) >= 6),
    "maxLength": ({"type": "string", "maxLength": 3}, '"abcdefghij"', lambda v: len(v) <= 3),
    "pattern": (
        {"type": "string", "pattern": "^[A-Z]{3}$"},
        '"hello world"',
        lambda v: bool(re.fullmatch("[A-Z]{3}", v)),
    ),
    "format:date": ({"type": "string", "format": "date"}, '"next tuesday"', _date),
    "format:time": (
        {"type": "string", "format": "time"},
        '"around noon"',
        lambda v: bool(re.fullmatch(_TIME, v)),
    ),
    "format:date-time": (
        {"type": "string", "format": "date-time"},
        '"yesterday evening"',
        lambda v: _date(v[:10]) and bool(re.fullmatch("T" + _TIME, v[10:])),
    ),
    "format:uuid": ({"type": "string", "format": "uuid"}, '"not an id"', _uuid),
    "minimum": ({"type": "integer", "minimum": 10}, "3", lambda v: v >= 10),
    "exclusiveMinimum": ({"type": "integer", "exclusiveMinimum": 10}, "10", lambda v: v > 10),
    "maximum": ({"type": "integer", "maximum": 5}, "99", lambda v: v <= 5),
    "exclusiveMaximum": ({"type": "integer", "exclusiveMaximum": 5}, "5", lambda v: v < 5),
    "minItems": (
        {"type": "array", "items": {"type": "string"}, "minItems": 3},
        '["x"]',
        lambda v: len(v) >= 3,
    ),
    "maxItems": (
        {"type": "array", "items": {"type": "string"}, "maxItems": 1},
        '["x", "y", "z"]',
        lambda v: len(v) <= 1,
    ),
    "decimals:pattern": (
        {"type": "string", "pattern": _MONEY},
        "12.505",
        lambda v: bool(re.fullmatch(_MONEY, v)),
    ),
}


def test_every_enforced_llamacpp_row_has_a_probe() -> None:
    """Each keyword and format the llamacpp profile claims to enforce is probed below."""
    profile = profile_for("llamacpp")
    claimed = {k for k, t in profile.keywords.items() if t is Treatment.ENFORCE} - {"format"}
    claimed |= {f"format:{f}" for f in profile.formats}
    assert claimed | {"decimals:pattern"} == set(PROBES)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("probe", sorted(PROBES))
def test_the_llamacpp_profile_holds_on_the_real_server(
    probe: str, local_model: LocalModelServer
) -> None:
    """Asked for a value the keyword forbids, the real llama.cpp server still obeys it."""
    node, forbidden, check = PROBES[probe]
    schema = {
        "type": "object",
        "properties": {"a": node},
        "required": ["a"],
        "additionalProperties": False,
    }
    body = {
        "model": local_model.model_name,
        "messages": [
            {"role": "user", "content": f'Reply with exactly this JSON: {{"a": {forbidden}}}'}
        ],
        "temperature": 0,
        "max_tokens": 80,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "probe", "strict": True, "schema": schema},
        },
    }
    response = httpx.post(f"{local_model.base_url}/chat/completions", json=body, timeout=600)
    response.raise_for_status()
    text = response.json()["choices"][0]["message"]["content"]
    value = json.loads(text)["a"]
    assert check(value), f"{probe}: the server let {value!r} through"


@pytest.mark.timeout(2400)
def test_streams_eval_with_the_embedded_model(
    local_model: LocalModelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two documents per contract through streams eval: a report each, and the gates hold."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    model = (
        f"label=local,base_url={local_model.base_url},model={local_model.model_name},"
        "schema_profile=llamacpp,timeout_s=600,max_connections=1,max_attempts=2,"
        "max_output_tokens=900"
    )
    printed, valid = [], 0
    for ref in CONTRACTS:
        out = REPORTS / f"eval-{ref}.json"
        samples = SAMPLES_DIR / ref.partition(".")[0]
        argv = ["eval", ref, str(samples), "--model", model, "--limit", str(PER_CONTRACT)]
        argv += ["--json", str(out), "--min-field-accuracy", "0.5"]
        code = main(argv)
        printed.append(capsys.readouterr().out)
        (summary,) = json.loads(out.read_text())["configurations"]
        assert summary["samples"] == PER_CONTRACT
        assert sum(summary["routes"].values()) == PER_CONTRACT
        # The gate: half the fields of the valid records right (exit 1 otherwise).
        assert code == 0, printed[-1]
        valid += summary["routes"]["valid"]
    print("\n".join(printed))
    # A floor that catches a broken pipeline or schema, not model noise: the legacy
    # profile got 3 of these 6 valid (BENCHMARKS.md, issue 7).
    assert valid >= 2, "\n".join(printed)
