"""Shared helpers for integration tests that run pipelines against the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from contracts import get_contract
from streams.devstack.kafka import LocalKafka
from streams.encode import decode_wire
from streams.settings import Settings, load_settings
from streams.worker import Worker
from tests.integration.kafka_utils import Message

REPO = Path(__file__).resolve().parents[2]
INVOICE_V1 = json.loads((REPO / "avro" / "invoice" / "v1.avsc").read_text())


def new_name(prefix: str = "it") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pipeline_settings(
    bootstrap: str,
    sim_url: str,
    name: str,
    *,
    budgets: dict[str, Any] | None = None,
    worker: dict[str, Any] | None = None,
    llm: dict[str, Any] | None = None,
    contract: tuple[str, int] = ("invoice", 1),
    kafka_opts: dict[str, Any] | None = None,
) -> Settings:
    return load_settings(
        None,
        kafka={"bootstrap_servers": bootstrap, **(kafka_opts or {})},
        llm={
            "base_url": f"{sim_url}/v1",
            "model": "sim-extractor-1",
            "timeout_s": 5,
            **(llm or {}),
        },
        budgets={"backoff_base_s": 0.05, "backoff_max_s": 1.5, **(budgets or {})},
        worker={"commit_interval_s": 0.2, "pause_backoff_s": 0.5, **(worker or {})},
        pipelines=[
            {
                "name": name,
                "input_topic": f"{name}.raw",
                "contract": contract[0],
                "contract_version": contract[1],
            }
        ],
    )


def settings_for(kafka: LocalKafka, sim_url: str, name: str, **kw: Any) -> Settings:
    return pipeline_settings(kafka.bootstrap, sim_url, name, **kw)


async def run_until(workers: list[Worker], expected: int, timeout: float = 180.0) -> None:
    """Run ``workers`` until together they produced ``expected`` outcomes, then stop them."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:
        async with asyncio.timeout(timeout):
            while sum(w.stats.total_out for w in workers) < expected:
                for t in tasks:
                    if t.done():
                        t.result()
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for w in workers:
            await w.pipeline.extractor.provider.aclose()


def sim_reset(sim_url: str, rules: dict[str, list[str]] | None = None) -> None:
    httpx.delete(f"{sim_url}/_sim/requests").raise_for_status()
    httpx.delete(f"{sim_url}/_sim/script").raise_for_status()
    if rules:
        httpx.post(f"{sim_url}/_sim/script", json={"rules": rules}).raise_for_status()


def sim_requests(sim_url: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{sim_url}/_sim/requests").json()
    return list(body["requests"])


def valid_data(msg: Message) -> tuple[dict[str, Any], dict[str, Any]]:
    """(contract fields as JSON data, provenance) of a valid-topic message."""
    assert msg.value is not None
    _sid, datum = decode_wire(msg.value, INVOICE_V1)
    prov = datum.pop("provenance")
    datum.pop("grounding", None)
    return json.loads(json.dumps(datum, default=_jsonable)), prov


def same_record(a: dict[str, Any], b: dict[str, Any]) -> bool:
    model = get_contract("invoice", 1).model
    return model.model_validate(a) == model.model_validate(b)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return value.isoformat()


def write_config(
    path: Path,
    bootstrap: str,
    sim: str,
    name: str,
    *,
    registry: str | dict[str, Any] | None = None,
    timeout_s: float = 5,
    kafka: dict[str, Any] | None = None,
    **worker: Any,
) -> Path:
    """A TOML config for a worker started as a process (`streams run`).

    ``kafka`` adds keys to ``[kafka]`` (security settings; a password is better passed
    as ``STREAMS_KAFKA__PASSWORD`` to :func:`spawn_worker`). ``registry`` is a URL or the
    ``[registry]`` table (its password is better passed as ``STREAMS_REGISTRY__PASSWORD``).
    """
    worker = {"commit_interval_s": 0.2, "max_in_flight": 32, **worker}
    worker_toml = "\n".join(f"{k} = {json.dumps(v)}" for k, v in worker.items())
    kafka_toml = "\n".join(f"{k} = {json.dumps(v)}" for k, v in (kafka or {}).items())
    # `streams run` refuses an unnamed mock registry: tests name it.
    table = registry if isinstance(registry, dict) else {"url": registry or "mock://"}
    registry_toml = "[registry]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())
    path.write_text(
        f"""
[kafka]
bootstrap_servers = "{bootstrap}"
{kafka_toml}

[llm]
base_url = "{sim}/v1"
model = "sim-extractor-1"
timeout_s = {timeout_s}

{registry_toml}
[budgets]
backoff_base_s = 0.05
backoff_max_s = 1.0

[worker]
{worker_toml}

[[pipelines]]
name = "{name}"
input_topic = "{name}.raw"
contract = "invoice"
contract_version = 1
"""
    )
    return path


def spawn_worker(
    config: Path,
    name: str,
    log: Path,
    env: dict[str, str] | None = None,
    *,
    engine: str = "native",
) -> subprocess.Popen[bytes]:
    """`streams run NAME --config CONFIG --engine ENGINE` in a child process, output
    appended to ``log``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    argv = ["run", name, "--config", str(config), "--engine", engine]
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "streams", *argv],
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
