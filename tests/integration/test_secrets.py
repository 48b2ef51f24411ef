"""Canary secrets (the API key, the Kafka password) reach only their server: never logs,
topics, metrics or reprs."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import generate_latest

from streams.app import build_worker
from streams.devstack.kafka import LocalKafka
from streams.devstack.secure import SecureKafka
from streams.logs import JsonFormatter
from streams.metrics import Metrics
from streams.simulator import SimulatorConfig, SimulatorThread
from tests.integration.kafka_utils import ROUTES, consume_all, produce
from tests.integration.pipeline_utils import new_name, run_until, settings_for, sim_requests
from tests.integration.test_prometheus import mixed_batch
from tests.integration.test_secure_kafka import prepared

pytestmark = pytest.mark.integration


async def test_api_key_canary_appears_nowhere(
    kafka: LocalKafka,
    invoice_samples: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The key reaches the provider, and no log line, record, header, metric or repr holds it."""
    canary = f"sk-canary-{uuid.uuid4().hex}"
    cache_canary = f"cache-key-canary-{uuid.uuid4().hex}"  # the result cache's HMAC key
    batch = mixed_batch(invoice_samples)
    name = new_name("secret")
    config = SimulatorConfig(fixture_dirs=[invoice_samples], script=batch.rules, api_key=canary)
    with SimulatorThread(config) as sim:
        sim_url = sim.url
        # Not vacuous: this simulator refuses a request without the key.
        refused = httpx.post(f"{sim_url}/v1/chat/completions", json={"model": "m", "messages": []})
        assert refused.status_code == 401
        httpx.delete(f"{sim_url}/_sim/requests").raise_for_status()
        settings = settings_for(
            kafka,
            sim_url,
            name,
            llm={"api_key": canary},
            worker={"cache_signing_key": cache_canary},
        )
        metrics = Metrics()
        produce(kafka.bootstrap, f"{name}.raw", batch.records)
        caplog.set_level(logging.DEBUG)
        worker = build_worker(
            settings,
            name,
            registry=SchemaRegistryClient.new_client({"url": "mock://"}),
            metrics=metrics,
        )
        await run_until([worker], len(batch.records))
        requests = sim_requests(sim_url)

    # The key was sent and accepted: every recorded request passed auth, and records are valid.
    assert requests
    assert not [r for r in requests if r["behaviour"] == "rejected:auth"]
    assert worker.stats.produced == batch.counts()

    needle = canary.encode()
    outputs = consume_all(kafka.bootstrap, [f"{name}.{r}" for r in (*ROUTES, "cache")])
    assert len([m for m in outputs if not m.topic.endswith(".cache")]) == len(batch.records)
    for msg in outputs:
        assert needle not in (msg.value or b""), msg.topic
        assert needle not in (msg.key or b""), msg.topic
        for header, value in msg.headers.items():
            assert needle not in value, f"{msg.topic} header {header}"

    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records]
    assert len(lines) > 10, "expected DEBUG logs from the run"
    assert not [line for line in lines if canary in line]
    captured = capfd.readouterr()
    assert canary not in captured.out
    assert canary not in captured.err

    assert needle not in generate_latest(metrics.registry)
    assert canary not in repr(settings)
    assert canary not in str(settings)
    assert canary not in settings.model_dump_json()
    assert canary not in repr(settings.llm)

    # The cache signing key signed the entries and appears in none of the same places.
    assert [m for m in outputs if m.topic.endswith(".cache")]
    assert all(m.value.startswith(b"hmac-sha256:") for m in outputs if m.topic.endswith(".cache"))
    for msg in outputs:
        assert cache_canary.encode() not in (msg.value or b"") + b"".join(msg.headers.values())
    assert not [line for line in lines if cache_canary in line]
    assert cache_canary not in captured.out + captured.err
    assert cache_canary.encode() not in generate_latest(metrics.registry)
    assert cache_canary not in repr(settings) + settings.model_dump_json()

    # INFO and above never carry a whole document.
    documents = [t for t in batch.texts.values() if len(t) > 80]
    assert documents
    info = [formatter.format(r) for r in caplog.records if r.levelno >= logging.INFO]
    for text in documents:
        assert not [line for line in info if text in line]
        assert not [line for line in info if text[:200] in line]


async def test_kafka_password_canary_appears_nowhere(
    secure_kafka: SecureKafka,
    invoice_samples: Path,
    sim_factory: Any,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The SCRAM password authenticates, and no log line, record, metric or repr holds it."""
    batch = mixed_batch(invoice_samples)
    sim = sim_factory(fixture_dirs=[invoice_samples], script=batch.rules)
    name = new_name("kpw")
    settings = prepared(secure_kafka, sim, name, batch)
    password = secure_kafka.password("worker")
    assert settings.kafka.password is not None
    assert settings.kafka.password.get_secret_value() == password
    metrics = Metrics()
    caplog.set_level(logging.DEBUG)
    worker = build_worker(
        settings,
        name,
        registry=SchemaRegistryClient.new_client({"url": "mock://"}),
        metrics=metrics,
    )
    await run_until([worker], len(batch.records))
    # Not vacuous: the worker logged in with it and routed every input.
    assert worker.stats.produced == batch.counts()

    needle = password.encode()
    outputs = consume_all(secure_kafka.bootstrap, [f"{name}.{r}" for r in (*ROUTES, "cache")])
    assert len([m for m in outputs if not m.topic.endswith(".cache")]) == len(batch.records)
    for msg in outputs:
        assert needle not in (msg.value or b""), msg.topic
        assert needle not in (msg.key or b""), msg.topic
        assert not [h for h, v in msg.headers.items() if needle in v], msg.topic
    formatter = JsonFormatter()
    lines = [formatter.format(r) for r in caplog.records]
    assert len(lines) > 10, "expected DEBUG logs from the run"
    assert not [line for line in lines if password in line]
    captured = capfd.readouterr()
    assert password not in captured.out
    assert password not in captured.err
    assert needle not in generate_latest(metrics.registry)
    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.kafka)):
        assert password not in text
    assert password not in repr(worker.pipeline)
