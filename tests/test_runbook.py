"""docs/runbook.md: every `streams` command parses, every alert has its section and query."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from streams.cli import build_parser
from streams.metrics import Metrics

REPO = Path(__file__).resolve().parents[1]
RUNBOOK = (REPO / "docs" / "runbook.md").read_text(encoding="utf-8")
ALERTS = yaml.safe_load((REPO / "deploy" / "prometheus" / "alerts.yml").read_text("utf-8"))
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.S | re.M)


def _blocks(language: str) -> list[str]:
    return [m[3] for m in FENCE.finditer(RUNBOOK) if m[2] == language]


def _invocations() -> list[list[str]]:
    """Every ``streams ...`` command line in the runbook's shell blocks, as argv."""
    out = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            argv = shlex.split(line, comments=True)
            if argv and argv[0] == "streams":
                out.append(argv)
    return out


def _sections() -> dict[str, str]:
    parts = re.split(r"^### (\S+)\n", RUNBOOK, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def _metric_names() -> set[str]:
    names = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        for suffix in suffixes.get(family.type, [""]):
            names.add(family.name + suffix)
    return names


@pytest.mark.parametrize("argv", _invocations(), ids=" ".join)
def test_each_streams_command_in_the_runbook_parses(argv: list[str]) -> None:
    """The real parser accepts the command and every flag (it exits on anything unknown)."""
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as exc:
        pytest.fail(f"`{shlex.join(argv)}` does not parse (exit {exc.code})")
    assert callable(args.func)


def test_the_runbook_covers_replay_redrive_and_the_commands_it_promises() -> None:
    """Replay three ways, redrive from every outcome topic, and Kafka's own reset."""
    parsed = [build_parser().parse_args(argv[1:]) for argv in _invocations()]
    commands = {a.command for a in parsed}
    assert {"run", "replay", "redrive", "tail", "explain", "schemas"} <= commands
    assert {a.source for a in parsed if a.command == "redrive"} == {"over-budget", "invalid", "dlq"}
    replays = [a for a in parsed if a.command == "replay"]
    assert any(a.to_earliest for a in replays)
    assert any(a.to_datetime for a in replays)
    assert any(a.to_offset for a in replays)
    shell = "\n".join(_blocks("bash"))
    assert "kafka-consumer-groups.sh" in shell
    assert "--reset-offsets" in shell


def test_every_alert_rule_has_a_section_with_promql_on_real_metrics() -> None:
    """One section per alert in alerts.yml, each with a query naming only served metrics."""
    alerts = [r["alert"] for g in ALERTS["groups"] for r in g["rules"]]
    sections = _sections()
    assert set(alerts) <= set(sections), set(alerts) - set(sections)
    known = _metric_names() | {"up"}
    for alert in alerts:
        queries = [m[3] for m in FENCE.finditer(sections[alert]) if m[2] == "promql"]
        assert queries, f"{alert}: no promql block"
        for name in re.findall(r"\b(streams_\w+|up)\b", "\n".join(queries)):
            assert name in known, f"{alert}: {name} is not a metric the worker serves"
