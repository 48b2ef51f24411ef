"""`streams tail` and `streams explain` against a real broker after a real worker run."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams import inspect as inspect_module
from streams.app import build_worker
from streams.devstack.kafka import LocalKafka
from streams.errors import ConfigError
from streams.inspect import Record, Schemas, explain, register, row_for, tail
from streams.settings import Settings, load_settings
from tests.integration.kafka_utils import consume_all, produce
from tests.integration.pipeline_utils import new_name, run_until, settings_for, sim_reset
from tests.integration.test_prometheus import Batch, free_port, mixed_batch

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Run:
    name: str
    settings: Settings
    batch: Batch

    def keys(self, route: str) -> set[str]:
        return {k for k, r in self.batch.expected.items() if r == route}


@pytest.fixture(scope="module")
def run(kafka: LocalKafka, simulator: str, invoice_samples: Path) -> Run:
    """One mixed batch (every route) processed by a worker, shared by this module's tests."""
    name = new_name("insp")
    batch = mixed_batch(invoice_samples)
    sim_reset(simulator, batch.rules)
    settings = settings_for(kafka, simulator, name)
    produce(kafka.bootstrap, f"{name}.raw", batch.records)
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    worker = build_worker(settings, name, registry=registry)
    asyncio.run(run_until([worker], len(batch.records)))
    return Run(name, settings, batch)


def _rows(text: str) -> dict[str, str]:
    """key -> table row (the header line dropped)."""
    lines = text.strip().splitlines()
    assert lines[0].split()[:3] == ["PART@OFF", "KEY", "ROUTE"]
    return {line.split()[1]: line for line in lines[1:]}


def test_tail_valid_decodes_avro(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    """tail of .valid prints key, contract fields, model, attempts, cost and cache_hit."""
    assert tail(run.settings, f"{run.name}.valid", from_beginning=True) == 0
    rows = _rows(capsys.readouterr().out)
    assert set(rows) == run.keys("valid")
    for row in rows.values():
        assert " valid " in row
        assert "vendor=" in row
        assert "model=sim-extractor-1-sim-" in row
        assert "cache_hit=no" in row
        assert "cost=$0.0" in row
    reasked = [k for k in run.keys("valid") if k.startswith(("02-", "03-"))]
    assert all("attempts=2" in rows[k] for k in reasked)


def test_tail_envelopes_show_reason_and_errors(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """tail of .invalid/.over-budget/.dlq prints reason, error type and first field errors."""
    for route in ("invalid", "over-budget", "dlq"):
        assert tail(run.settings, f"{run.name}.{route}", from_beginning=True) == 0
        rows = _rows(capsys.readouterr().out)
        assert set(rows) == run.keys(route), route
    assert tail(run.settings, f"{run.name}.invalid", from_beginning=True) == 0
    invalid = _rows(capsys.readouterr().out)["bad-total"]
    assert "reason=contract:" in invalid
    assert "error_type=AttemptsExhausted" in invalid
    assert "errors=" in invalid
    assert tail(run.settings, f"{run.name}.dlq", from_beginning=True) == 0
    dlq = _rows(capsys.readouterr().out)
    assert "reason=not_utf8" in dlq["not-utf8"]
    (rejected,) = (row for key, row in dlq.items() if key != "not-utf8")
    assert "error_type=ProviderRejected" in rejected


def test_tail_json_and_last_n(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    """--format json prints one object per record; without --from-beginning, the last N."""
    assert tail(run.settings, f"{run.name}.over-budget", fmt="json", from_beginning=True) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    row = json.loads(line)
    assert row["key"] == "huge"
    assert row["route"] == "over-budget"
    assert row["reason"] == "budget:record_input_tokens"
    assert row["budget"]["name"] == "record_input_tokens"
    assert tail(run.settings, f"{run.name}.valid", max_records=1, fmt="json") == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1


def test_valid_rows_decode_without_headers_or_registry(run: Run) -> None:
    """A .valid record whose headers a sink dropped decodes via the pipeline's contract;
    an unreachable http registry falls back to the checked-in schema."""
    messages = consume_all(run.settings.kafka.bootstrap_servers, [f"{run.name}.valid"])
    msg = messages[0]
    bare = Record(msg.topic, msg.partition, msg.offset, msg.key, msg.value, {}, None)
    assert row_for(bare, Schemas(run.settings)).data["fields"]["vendor"]
    dead = run.settings.model_copy(
        update={
            "registry": run.settings.registry.model_copy(
                update={"url": f"http://127.0.0.1:{free_port()}"}
            )
        }
    )
    full = replace(bare, headers=dict(msg.headers))
    assert row_for(full, Schemas(dead)).data["fields"]["vendor"]


def test_explain_every_route(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    """explain prints input preview, attempts, outcome topic, reason, cost and provenance."""
    for key, route in run.batch.expected.items():
        assert explain(run.settings, run.name, key) == 0
        out = capsys.readouterr().out
        assert f"journey of key {key!r}" in out, out
        assert f"input   {run.name}.raw[" in out, out
        assert f"outcome {route} -> {run.name}.{route}[" in out, out
        assert "cost    $" in out, out
        text = run.batch.texts.get(key, "")
        if len(text) > 300:
            assert text not in out, "explain must not print the whole document"
            assert f"first 300 of {len(text)} characters" in out
    capsys.readouterr()

    assert explain(run.settings, run.name, "bad-total") == 0
    out = capsys.readouterr().out
    assert out.count("outcome=contract_violation") == run.settings.budgets.max_attempts
    assert "reason  contract:" in out
    assert "errors  " in out
    assert "provenance contract invoice.v1" in out

    reasked = next(k for k in run.keys("valid") if k.startswith("02-"))
    assert explain(run.settings, run.name, reasked) == 0
    out = capsys.readouterr().out
    assert "attempts 2 (tokens" in out
    assert "model_reported: sim-extractor-1-sim-" in out
    assert "envelope id=" in out

    assert explain(run.settings, run.name, "huge") == 0
    out = capsys.readouterr().out
    assert "$0 (no model call)" in out
    assert "budget  record_input_tokens: " in out

    assert explain(run.settings, run.name, "not-utf8") == 0
    assert "not UTF-8" in capsys.readouterr().out
    rejected = next(k for k in run.keys("dlq") if k != "not-utf8")
    assert explain(run.settings, run.name, rejected) == 0
    assert "provider status 400" in capsys.readouterr().out


def test_explain_unknown_key(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown key returns 1 with a one-line message on stderr."""
    assert explain(run.settings, run.name, "no-such-key") == 1
    assert "no record with key 'no-such-key'" in capsys.readouterr().err


def test_config_mistakes_are_one_line_errors(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown pipeline, missing topic or unreachable broker raise ConfigError."""
    with pytest.raises(ConfigError, match="no pipeline named"):
        explain(run.settings, "nope", "k")
    with pytest.raises(ConfigError, match="does not exist"):
        tail(run.settings, f"{run.name}.nope")
    with pytest.raises(ConfigError, match="--max"):
        tail(run.settings, f"{run.name}.valid", max_records=0)
    monkeypatch.setattr(inspect_module._read, "METADATA_TIMEOUT_S", 2.0)
    port = free_port()
    unreachable = load_settings(None, kafka={"bootstrap_servers": f"127.0.0.1:{port}"})
    with pytest.raises(ConfigError, match="cannot read"):
        tail(unreachable, "x.valid")


def test_registered_commands_parse_and_run(
    run: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """register() adds tail and explain; --bootstrap and --config reach the functions."""
    parser = argparse.ArgumentParser(prog="streams")
    register(parser.add_subparsers(dest="command", required=True))
    bootstrap = run.settings.kafka.bootstrap_servers
    args = parser.parse_args(
        ["tail", f"{run.name}.dlq", "--bootstrap", bootstrap, "--from-beginning", "--max", "1"]
    )
    assert args.func(args) == 0
    assert len(_rows(capsys.readouterr().out)) == 1

    args = parser.parse_args(["explain", run.name, "huge", "--bootstrap", bootstrap])
    with pytest.raises(ConfigError, match="no pipeline named"):
        args.func(args)  # the built-in default settings do not know this pipeline
    config = tmp_path / "streams.toml"
    config.write_text(
        f"""[kafka]
bootstrap_servers = "{bootstrap}"

[[pipelines]]
name = "{run.name}"
input_topic = "{run.name}.raw"
contract = "invoice"
contract_version = 1
"""
    )
    args = parser.parse_args(["explain", run.name, "huge", "--config", str(config)])
    assert args.func(args) == 0
    assert "outcome over-budget" in capsys.readouterr().out


def test_tail_follow_prints_new_records(run: Run) -> None:
    """--follow keeps reading: a record produced after the start is printed."""
    topic = f"{run.name}.follow.dlq"
    envelope = {"reason": "bad_json", "error_type": "UndecodableInput", "errors": []}
    produce(
        run.settings.kafka.bootstrap_servers, topic, [(b"before", json.dumps(envelope).encode())]
    )
    out = io.StringIO()
    result: list[int] = []
    args = {"from_beginning": True, "follow": True, "max_records": 2, "out": out}
    thread = threading.Thread(target=lambda: result.append(tail(run.settings, topic, **args)))
    thread.start()
    deadline = time.monotonic() + 30
    while "before" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.1)
    produce(
        run.settings.kafka.bootstrap_servers, topic, [(b"after", json.dumps(envelope).encode())]
    )
    thread.join(30)
    assert not thread.is_alive(), "tail --follow did not see the new record"
    assert result == [0]
    assert set(_rows(out.getvalue())) == {"before", "after"}
