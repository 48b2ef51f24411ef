"""A real Prometheus scrapes a running worker; PromQL answers match what was processed."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.app import build_worker
from streams.devstack.kafka import LocalKafka
from streams.metrics import Metrics
from streams.textnorm import text_sha256
from streams.worker import Worker
from tests.integration.kafka_utils import ROUTES, Message, consume_all, produce
from tests.integration.pipeline_utils import (
    REPO,
    new_name,
    settings_for,
    sim_requests,
    sim_reset,
    valid_data,
)

pytestmark = pytest.mark.integration

ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "streams.json"
INSTALL = "deploy/prometheus/install.sh"


# -- a mixed batch: every route, with re-asks and validation errors ---------------------


@dataclass(frozen=True)
class Batch:
    """Raw records for one run, the route each key must take, and the simulator script."""

    records: list[tuple[bytes | None, bytes]]
    expected: dict[str, str]
    rules: dict[str, list[str]]
    texts: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for route in self.expected.values():
            out[route] = out.get(route, 0) + 1
        return out


def mixed_batch(samples: Path) -> Batch:
    """7 inputs: 3 valid (2 after a re-ask), 1 invalid, 1 over-budget, 2 dlq (not UTF-8, a 400)."""
    texts = {p.stem: p.read_text(encoding="utf-8") for p in sorted(samples.glob("*.txt"))[:4]}
    stems = list(texts)
    rules = {
        text_sha256(texts[stems[1]]): ["malformed", "valid"],
        text_sha256(texts[stems[2]]): ["invalid", "valid"],
        text_sha256(texts[stems[3]]): ["http_400"],
    }
    records: list[tuple[bytes | None, bytes]] = []
    expected: dict[str, str] = {}
    for i, (stem, text) in enumerate(texts.items()):
        value = text.encode() if i % 2 == 0 else json.dumps({"id": stem, "text": text}).encode()
        records.append((stem.encode(), value))
        expected[stem] = "dlq" if i == 3 else "valid"
    bad = samples / "_bad" / "bad-total.txt"
    texts["bad-total"] = bad.read_text(encoding="utf-8")
    records.append((b"bad-total", bad.read_bytes()))
    expected["bad-total"] = "invalid"
    huge = "INVOICE line " * 20000
    texts["huge"] = huge
    records.append((b"huge", huge.encode()))
    expected["huge"] = "over-budget"
    records.append((b"not-utf8", b"\xff\xfe Rechnung \xe9"))
    expected["not-utf8"] = "dlq"
    return Batch(records, expected, rules, texts)


def outputs_of(bootstrap: str, name: str) -> list[Message]:
    return consume_all(bootstrap, [f"{name}.{r}" for r in ROUTES])


async def wait_for_outputs(worker: Worker, task: asyncio.Task[None], expected: int) -> None:
    """Wait until ``worker`` produced ``expected`` outcomes; the worker keeps running."""
    async with asyncio.timeout(120):
        while worker.stats.total_out < expected:
            if task.done():
                task.result()
            await asyncio.sleep(0.1)


# -- a real Prometheus ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str) -> str:
    """Path of ``name``; fails (never skips) with the install command when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; run `sudo bash {INSTALL}` (Debian package)")
    return path


@dataclass
class Prometheus:
    url: str
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@asynccontextmanager
async def running_prometheus(
    tmp: Path, target: str, rule_files: list[Path]
) -> AsyncIterator[Prometheus]:
    """Prometheus on 127.0.0.1 scraping ``target`` every second, with its own data dir."""
    binary = require_binary("prometheus")
    config = tmp / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML; no YAML library needed
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(p) for p in rule_files],
                "scrape_configs": [
                    {"job_name": "worker", "static_configs": [{"targets": [target]}]}
                ],
            }
        )
    )
    port = free_port()
    prom = Prometheus(f"http://127.0.0.1:{port}", tmp / "prometheus.log")
    with prom.log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            deadline = time.monotonic() + 30
            while True:
                if process.returncode is not None:
                    pytest.fail(f"prometheus exited with {process.returncode}:\n{prom.log_tail()}")
                try:
                    if (await client.get(f"{prom.url}/-/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"prometheus not ready after 30s:\n{prom.log_tail()}")
                await asyncio.sleep(0.2)
        yield prom
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def query(client: httpx.AsyncClient, promql: str) -> list[dict[str, Any]]:
    """Instant query; the result vector (raises on a PromQL error)."""
    response = await client.get("/api/v1/query", params={"query": promql})
    body = response.json()
    assert body.get("status") == "success", f"{promql}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def scalar(client: httpx.AsyncClient, promql: str) -> float | None:
    result = await query(client, promql)
    return float(result[0]["value"][1]) if result else None


async def by_label(client: httpx.AsyncClient, promql: str, label: str) -> dict[str, float]:
    return {r["metric"][label]: float(r["value"][1]) for r in await query(client, promql)}


async def wait_until_scraped(client: httpx.AsyncClient, name: str, n: int) -> None:
    """Until Prometheus holds the final counters (so it scraped after processing finished)."""
    sel = f'{{pipeline="{name}"}}'
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got_in = await scalar(client, f"sum(streams_records_in_total{sel})")
        got_out = await scalar(client, f"sum(streams_records_out_total{sel})")
        if got_in == n and got_out == n:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"prometheus never saw {n} records in and out (in={got_in} out={got_out})")


# -- the tests --------------------------------------------------------------------------


def test_alert_rules_pass_promtool() -> None:
    """`promtool check rules` accepts deploy/prometheus/alerts.yml, and the compose config."""
    promtool = require_binary("promtool")
    for args in (["check", "rules", str(ALERTS)], ["check", "config", "prometheus.yml"]):
        done = subprocess.run(
            [promtool, *args],
            cwd=ALERTS.parent,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


async def test_prometheus_scrapes_what_the_worker_processed(
    kafka: LocalKafka, simulator: str, invoice_samples: Path, tmp_path: Path
) -> None:
    """PromQL over a real scrape equals the per-route counts, attempts, tokens and requests."""
    require_binary("prometheus")
    name = new_name("prom")
    batch = mixed_batch(invoice_samples)
    sim_reset(simulator, batch.rules)
    metrics_port = free_port()
    settings = settings_for(kafka, simulator, name, worker={"metrics_port": metrics_port})
    metrics = Metrics()
    stop_metrics = metrics.serve(metrics_port)
    produce(kafka.bootstrap, f"{name}.raw", batch.records)
    worker = build_worker(
        settings,
        name,
        registry=SchemaRegistryClient.new_client({"url": "mock://"}),
        metrics=metrics,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await wait_for_outputs(worker, task, len(batch.records))
        outputs = outputs_of(kafka.bootstrap, name)
        requests = sim_requests(simulator)
        target = f"127.0.0.1:{metrics_port}"
        async with (
            running_prometheus(tmp_path, target, [ALERTS]) as prom,
            httpx.AsyncClient(base_url=prom.url, timeout=10) as client,
        ):
            await wait_until_scraped(client, name, len(batch.records))
            await _check_counts(client, name, batch, outputs, requests)
            await _check_rules_healthy(client, prom)
            await _check_dashboard_queries(client, name)
    finally:
        stop.set()
        await task
        await worker.pipeline.extractor.provider.aclose()
        stop_metrics()


async def _check_counts(
    client: httpx.AsyncClient,
    name: str,
    batch: Batch,
    outputs: list[Message],
    requests: list[dict[str, Any]],
) -> None:
    sel = f'pipeline="{name}"'
    assert len(outputs) == len(batch.records)
    assert await by_label(
        client, f"sum by (outcome) (streams_records_out_total{{{sel}}})", "outcome"
    ) == {route: float(n) for route, n in batch.counts().items()}
    assert await scalar(client, f"sum(streams_records_in_total{{{sel}}})") == len(batch.records)
    assert await scalar(client, f"sum(streams_record_seconds_count{{{sel}}})") == len(batch.records)
    assert await scalar(client, f"sum(streams_records_in_flight{{{sel}}})") == 0

    errors = await scalar(client, f"sum(streams_validation_errors_total{{{sel}}})")
    assert errors, "the invalid record's field errors were not counted"
    by_field = await query(
        client, f"sum by (contract, field, error_type) (streams_validation_errors_total{{{sel}}})"
    )
    assert all(r["metric"].get("contract") for r in by_field)
    assert not any(any(c.isdigit() for c in r["metric"]["field"].split(".")) for r in by_field)

    # Attempts and tokens agree with what the outputs themselves report.
    attempts = input_tokens = output_tokens = 0
    for msg in outputs:
        if msg.topic.endswith(".valid"):
            attempts += int(msg.headers["streams.attempts"])
            _fields, prov = valid_data(msg)
            input_tokens += prov["input_tokens"]
            output_tokens += prov["output_tokens"]
        else:
            body = json.loads(msg.value or b"{}")
            attempts += len(body["attempts"])
            input_tokens += sum(a["input_tokens"] for a in body["attempts"])
            output_tokens += sum(a["output_tokens"] for a in body["attempts"])
    assert attempts > batch.counts()["valid"], "the batch should include re-asks"
    assert await scalar(client, f"sum(streams_attempts_total{{{sel}}})") == attempts
    assert await by_label(
        client, f"sum by (direction) (streams_tokens_total{{{sel}}})", "direction"
    ) == {"input": float(input_tokens), "output": float(output_tokens)}

    # Every HTTP request the simulator saw is counted, with its status.
    ok = sum(1 for r in requests if r["status"] is not None and 200 <= r["status"] < 300)
    assert await scalar(client, f"sum(streams_model_requests_total{{{sel}}})") == len(requests)
    assert await scalar(client, f'sum(streams_model_requests_total{{{sel},status=~"2.."}})') == ok
    assert ok < len(requests), "the batch should include a failed request (the 400)"
    assert (
        await scalar(client, f"sum(streams_grounding_coverage_count{{{sel}}})")
        == batch.counts()["valid"]
    )
    cost = await scalar(client, f"sum(streams_cost_usd_total{{{sel}}})")
    assert cost, "model spend was not counted"


async def _check_rules_healthy(client: httpx.AsyncClient, prom: Prometheus) -> None:
    """Every alert rule from alerts.yml is loaded and evaluates without error."""
    wanted = _alert_names()
    deadline = time.monotonic() + 20
    while True:
        body = (await client.get("/api/v1/rules")).json()
        rules = {
            r["name"]: r
            for g in body["data"]["groups"]
            for r in g["rules"]
            if r["type"] == "alerting"
        }
        health = {n: rules[n]["health"] for n in wanted if n in rules}
        if set(health) == wanted and all(h == "ok" for h in health.values()):
            return
        if time.monotonic() > deadline:
            errors = {n: rules[n].get("lastError") for n in rules if rules[n]["health"] != "ok"}
            raise AssertionError(
                f"rules not healthy: {health} missing={wanted - set(health)} errors={errors}\n"
                f"{prom.log_tail()}"
            )
        await asyncio.sleep(0.5)


def _alert_names() -> set[str]:
    names = set()
    for line in ALERTS.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("- alert:"):
            names.add(stripped.removeprefix("- alert:").strip())
    assert len(names) >= 7
    return names


async def _check_dashboard_queries(client: httpx.AsyncClient, name: str) -> None:
    """Every PromQL expression on the Grafana dashboard parses and runs."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    substitutions = {
        "$__rate_interval": "1m",
        "$__range": "5m",
        "$pipeline": name,
        "$spend_cap_usd": "10",
    }
    for expr in exprs:
        for var, value in substitutions.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, f"unknown dashboard variable in {expr}"
        await query(client, expr)
