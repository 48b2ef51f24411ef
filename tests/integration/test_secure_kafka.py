"""The pipeline on a secured broker: SASL_SSL with SCRAM and PLAIN, ACLs, clear failures.

The harness creates topics and grants ACLs as the super-user on the broker's loopback
PLAINTEXT listener; everything under test connects to the SASL_SSL listener as a user
that has exactly the ACLs :func:`streams.kafka.preflight.required_access` lists.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.app import build_worker
from streams.devstack.secure import MTLS_PRINCIPAL, SecureKafka, generate_ca
from streams.errors import KafkaTLSFailed
from streams.kafka import clients
from streams.kafka.preflight import check_connection, required_access
from streams.settings import Settings, load_settings
from tests.integration.kafka_utils import ROUTES, consume_all, produce
from tests.integration.pipeline_utils import new_name, run_until, spawn_worker, write_config
from tests.integration.registry_proxy import PROXY_PASSWORD, RegistryProxy
from tests.integration.test_prometheus import Batch, mixed_batch

pytestmark = pytest.mark.integration


def secure_settings(
    broker: SecureKafka, sim_url: str, name: str, user: str = "worker", **kafka: Any
) -> Settings:
    return load_settings(
        None,
        kafka={**broker.client_settings(user), **kafka},
        llm={"base_url": f"{sim_url}/v1", "model": "sim-extractor-1", "timeout_s": 5},
        budgets={"backoff_base_s": 0.05, "backoff_max_s": 1.0},
        # A held record's drain is cut short: it stays uncommitted for the next worker.
        worker={"commit_interval_s": 0.2, "pause_backoff_s": 0.5, "shutdown_timeout_s": 3},
        pipelines=[
            {
                "name": name,
                "input_topic": f"{name}.raw",
                "contract": "invoice",
                "contract_version": 1,
            }
        ],
    )


def acls_for(settings: Settings) -> list[tuple[str, str, str]]:
    """The pipeline's ACLs as :meth:`SecureKafka.grant` takes them."""
    pipeline = settings.pipelines[0]
    return [(a.kind, a.name, a.operation) for a in required_access(settings, pipeline)]


def create_topics(broker: SecureKafka, name: str) -> None:
    """As an operator would on a locked-down cluster: the worker may not create topics."""
    admin = clients.admin_client(broker.bootstrap)
    topics = [f"{name}.{suffix}" for suffix in ("raw", *ROUTES)]
    new = [NewTopic(t, 2, 1) for t in topics]
    new.append(NewTopic(f"{name}.cache", 1, 1, config={"cleanup.policy": "compact"}))
    for future in admin.create_topics(new).values():
        future.result(timeout=30)


def prepared(broker: SecureKafka, sim_url: str, name: str, batch: Batch, **kafka: Any) -> Settings:
    settings = secure_settings(broker, sim_url, name, **kafka)
    create_topics(broker, name)
    broker.grant("worker", acls_for(settings))
    produce(broker.bootstrap, f"{name}.raw", batch.records)
    return settings


def routes_of(broker: SecureKafka, name: str) -> Counter[str]:
    return Counter(m.topic.rsplit(".", 1)[1] for m in outputs(broker, name))


def outputs(broker: SecureKafka, name: str) -> list[Any]:
    return consume_all(broker.bootstrap, [f"{name}.{r}" for r in ROUTES])


def test_scram_sasl_ssl_worker_process_with_exact_acls(
    secure_kafka: SecureKafka,
    invoice_samples: Path,
    sim_factory: Any,
    registry_proxy: RegistryProxy,
    tmp_path: Path,
) -> None:
    """The whole secured path in one run, as on a managed cluster: `streams run` over
    SASL_SSL + SCRAM-SHA-512 with only its ACLs, registering through the registry behind
    TLS and basic auth, routes every input once; a second user with READ on the valid topic
    decodes it with a stock AvroDeserializer through the same authenticated registry."""
    batch = mixed_batch(invoice_samples)
    sim = sim_factory(fixture_dirs=[invoice_samples], script=batch.rules)
    name = new_name("scram")
    settings = prepared(secure_kafka, sim, name, batch)
    assert settings.kafka.effective_sasl_mechanism == "SCRAM-SHA-512"
    kafka_toml = {
        k: v for k, v in secure_kafka.client_settings("worker").items() if k != "password"
    }
    registry = {
        "url": registry_proxy.url,
        "username": "sr-user",
        "ca_file": str(registry_proxy.ca_file),
    }
    config = write_config(
        tmp_path / "worker.toml", kafka_toml.pop("bootstrap_servers"), sim, name,
        registry=registry, kafka=kafka_toml,
    )  # fmt: skip
    log = tmp_path / "worker.log"
    password = secure_kafka.password("worker")
    forwarded, refused = registry_proxy.forwarded, registry_proxy.refused
    env = {"STREAMS_KAFKA__PASSWORD": password, "STREAMS_REGISTRY__PASSWORD": PROXY_PASSWORD}
    proc = spawn_worker(config, name, log, env=env)
    try:
        deadline = time.monotonic() + 120
        while sum(routes_of(secure_kafka, name).values()) < len(batch.records):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no outcomes in time\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
    finally:
        proc.terminate()
        code = proc.wait(40)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert routes_of(secure_kafka, name) == Counter(batch.expected.values())
    assert password not in text
    assert PROXY_PASSWORD not in text
    # The worker registered its schema through the proxy, with the right credentials.
    assert registry_proxy.forwarded > forwarded
    assert registry_proxy.refused == refused

    # A consumer over SASL_SSL (user `reader`, READ on the valid topic and its own group)
    # reads the valid records with a stock deserializer through the authenticated registry.
    group = f"reader-{name}"
    secure_kafka.grant("reader", [("topic", f"{name}.valid", "READ"), ("group", group, "READ")])
    reader = clients.consumer(
        load_settings(None, kafka=secure_kafka.client_settings("reader")).kafka,
        {"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False},
    )
    valid = settings.pipelines[0].topic("valid")
    decoded = []
    reader_registry = load_settings(None, registry={**registry, "password": PROXY_PASSWORD})
    with clients.schema_registry_client(reader_registry.registry) as client:
        deserialize = AvroDeserializer(client)
        try:
            reader.subscribe([valid])
            deadline = time.monotonic() + 60
            while len(decoded) < 3 and time.monotonic() < deadline:
                msg = reader.poll(0.5)
                if msg is None or msg.error() is not None:
                    continue
                decoded.append(
                    deserialize(msg.value(), SerializationContext(valid, MessageField.VALUE))
                )
        finally:
            reader.close()
    assert len(decoded) == list(batch.expected.values()).count("valid") == 3
    for datum in decoded:
        assert datum["provenance"]["pipeline"] == name
        assert datum["total"] is not None


async def test_plain_sasl_ssl_in_process_worker(
    secure_kafka: SecureKafka, invoice_samples: Path, sim_factory: Any
) -> None:
    """SASL PLAIN over TLS: the same exact ACLs are enough and every input is routed once."""
    batch = mixed_batch(invoice_samples)
    sim = sim_factory(fixture_dirs=[invoice_samples], script=batch.rules)
    name = new_name("plain")
    settings = prepared(secure_kafka, sim, name, batch, sasl_mechanism="PLAIN")
    assert settings.kafka.sasl_mechanism == "PLAIN"
    worker = build_worker(
        settings, name, registry=SchemaRegistryClient.new_client({"url": "mock://"})
    )
    await run_until([worker], len(batch.records))
    assert worker.stats.produced == batch.counts()
    assert routes_of(secure_kafka, name) == Counter(batch.expected.values())


def _failed_run(
    secure_kafka: SecureKafka, sim: str, name: str, tmp_path: Path, password: str, **kafka: Any
) -> tuple[int, list[str]]:
    """Run `streams run` to its exit; (exit code, the non-empty lines it printed)."""
    settings = {**secure_kafka.client_settings("worker"), **kafka}
    settings.pop("password")
    config = write_config(
        tmp_path / "worker.toml", settings.pop("bootstrap_servers"), sim, name, kafka=settings
    )
    log = tmp_path / "worker.log"
    proc = spawn_worker(config, name, log, env={"STREAMS_KAFKA__PASSWORD": password})
    code = proc.wait(90)
    text = log.read_text()
    assert password not in text
    lines = [line for line in text.splitlines() if line.strip()]
    # The worker's JSON log warns only that the registry is the test's mock one (its info
    # lines, such as the constraints the schema profile leaves to validation, are not
    # failures); what the operator reads is the rest.
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    warned = [r["msg"] for r in logged if r["level"] not in ("debug", "info")]
    assert [m for m in warned if not m.startswith("registry.url is mock://")] == []
    return code, [line for line in lines if not line.startswith("{")]


def test_wrong_password_is_one_line_naming_mechanism_and_listener(
    secure_kafka: SecureKafka, simulator: str, tmp_path: Path
) -> None:
    """A wrong SCRAM password exits 2 with one line naming SCRAM-SHA-512 and the listener."""
    name = new_name("badpw")
    code, lines = _failed_run(secure_kafka, simulator, name, tmp_path, "not-the-password-42")
    assert code == 2
    assert lines == [
        "streams: error: SASL SCRAM-SHA-512 authentication as user 'worker' failed on the "
        f"SASL_SSL listener {secure_kafka.secure_bootstrap}: the broker rejected the "
        "credentials; check kafka.username and kafka.password (STREAMS_KAFKA__PASSWORD)"
    ]


def test_missing_acl_is_one_line_and_nothing_is_consumed(
    secure_kafka: SecureKafka, invoice_samples: Path, simulator: str, tmp_path: Path
) -> None:
    """Without WRITE on the dlq topic the worker exits 2 before consuming, naming the ACL."""
    batch = mixed_batch(invoice_samples)
    name = new_name("noacl")
    settings = secure_settings(secure_kafka, simulator, name)
    create_topics(secure_kafka, name)
    dlq = ("topic", f"{name}.dlq", "WRITE")
    secure_kafka.grant("worker", [a for a in acls_for(settings) if a != dlq])
    produce(secure_kafka.bootstrap, f"{name}.raw", batch.records)
    code, lines = _failed_run(
        secure_kafka, simulator, name, tmp_path, secure_kafka.password("worker")
    )
    assert code == 2
    assert lines == [
        f"streams: error: user 'worker' may not WRITE topic '{name}.dlq' (the dlq outcomes) "
        f"on the SASL_SSL listener {secure_kafka.secure_bootstrap}; add the ACL: "
        f"kafka-acls.sh --bootstrap-server {secure_kafka.secure_bootstrap} --add "
        f"--allow-principal User:worker --operation Write --topic {name}.dlq"
    ]
    # Nothing was consumed: no outcome anywhere, and the group committed no offset.
    assert outputs(secure_kafka, name) == []
    admin = clients.admin_client(secure_kafka.bootstrap)
    group = admin.list_consumer_group_offsets([_group_request(f"streams.{name}")])[
        f"streams.{name}"
    ].result(timeout=30)
    assert [tp for tp in group.topic_partitions if tp.offset >= 0] == []


def _group_request(group: str) -> Any:
    from confluent_kafka import ConsumerGroupTopicPartitions

    return ConsumerGroupTopicPartitions(group)


def test_wrong_ca_is_one_line_naming_the_broker_certificate(
    secure_kafka: SecureKafka, simulator: str, tmp_path: Path
) -> None:
    """A CA that did not sign the broker's certificate exits 2 naming that certificate."""
    other_ca, _key = generate_ca(tmp_path / "other-ca", "some other CA")
    name = new_name("badca")
    code, lines = _failed_run(
        secure_kafka, simulator, name, tmp_path, secure_kafka.password("worker"),
        ssl_cafile=str(other_ca),
    )  # fmt: skip
    assert code == 2
    assert len(lines) == 1
    assert lines[0].startswith(
        f"streams: error: TLS handshake with the SASL_SSL listener {secure_kafka.secure_bootstrap}"
        f" failed: the broker's certificate did not verify against kafka.ssl_cafile={other_ca} ("
    )
    assert lines[0].endswith(
        "point kafka.ssl_cafile at the CA that signed the broker's certificate"
    )
    assert "certificate verify failed" in lines[0]


def test_cli_produce_uses_the_secure_settings_and_fails_in_one_line(
    secure_kafka: SecureKafka, invoice_samples: Path, tmp_path: Path
) -> None:
    """`streams produce --config` logs in over SASL_SSL; a wrong password is one line, exit 2."""
    topic = f"{new_name('cli')}.raw"
    admin = clients.admin_client(secure_kafka.bootstrap)  # kept alive until the result
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    secure_kafka.grant("reader", [("topic", topic, "WRITE")])
    kafka = {k: v for k, v in secure_kafka.client_settings("reader").items() if k != "password"}
    config = tmp_path / "cli.toml"
    config.write_text("[kafka]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in kafka.items()))
    sample = sorted(invoice_samples.glob("*.txt"))[0]

    def produce_cli(password: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "streams", "produce", topic, str(sample), "--config"]
        env = {**os.environ, "STREAMS_KAFKA__PASSWORD": password}
        return subprocess.run(
            [*argv, str(config)], env=env, capture_output=True, text=True, timeout=90, check=False
        )

    ok = produce_cli(secure_kafka.password("reader"))
    assert ok.returncode == 0, ok.stderr
    [record] = consume_all(secure_kafka.bootstrap, [topic])
    assert record.value == sample.read_bytes()

    bad = produce_cli("wrong-password-7")
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == [
        "streams: error: SASL SCRAM-SHA-512 authentication as user 'reader' failed on the "
        f"SASL_SSL listener {secure_kafka.secure_bootstrap}: the broker rejected the "
        "credentials; check kafka.username and kafka.password (STREAMS_KAFKA__PASSWORD)"
    ]


async def test_mtls_in_process_worker_with_an_encrypted_client_key(
    secure_kafka: SecureKafka, invoice_samples: Path, sim_factory: Any
) -> None:
    """SSL with a client certificate (key encrypted, password as SecretStr) routes every input,
    with ACLs granted to the certificate's principal."""
    batch = mixed_batch(invoice_samples)
    sim = sim_factory(fixture_dirs=[invoice_samples], script=batch.rules)
    name = new_name("mtls")
    settings = load_settings(
        None,
        kafka=secure_kafka.mtls_settings(),
        llm={"base_url": f"{sim}/v1", "model": "sim-extractor-1", "timeout_s": 5},
        worker={"commit_interval_s": 0.2},
        pipelines=[
            {
                "name": name,
                "input_topic": f"{name}.raw",
                "contract": "invoice",
                "contract_version": 1,
            }
        ],
    )
    create_topics(secure_kafka, name)
    secure_kafka.grant(MTLS_PRINCIPAL, acls_for(settings))
    produce(secure_kafka.bootstrap, f"{name}.raw", batch.records)
    worker = build_worker(
        settings, name, registry=SchemaRegistryClient.new_client({"url": "mock://"})
    )
    await run_until([worker], len(batch.records))
    assert routes_of(secure_kafka, name) == Counter(batch.expected.values())


def test_mtls_without_a_client_certificate_is_one_line(
    secure_kafka: SecureKafka, simulator: str
) -> None:
    """A listener that wants a client certificate, and none is configured: one line that says so."""
    kafka = {
        k: v
        for k, v in secure_kafka.mtls_settings().items()
        if k not in ("ssl_certfile", "ssl_keyfile", "ssl_key_password")
    }
    settings = load_settings(None, kafka=kafka)
    with pytest.raises(KafkaTLSFailed) as info:
        check_connection(settings.kafka)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"TLS handshake with the SSL listener {secure_kafka.mtls_bootstrap}")
    assert "the broker wants a client certificate and none is configured: set " in message
    assert message.endswith("ssl/tls alert bad certificate: SSL alert number 42)")


async def test_an_acl_revoked_while_running_holds_and_loses_nothing(
    secure_kafka: SecureKafka, invoice_samples: Path, sim_factory: Any
) -> None:
    """WRITE on the dlq revoked mid-run: the pipeline holds (a deployment fault) and
    dead-letters nothing; with the ACL back, the same worker (no restart) replaces its
    producer, whose sequence numbers the refusal broke, and routes the record once."""
    batch = mixed_batch(invoice_samples)
    sim = sim_factory(fixture_dirs=[invoice_samples], script=batch.rules)
    name = new_name("revoke")
    settings = prepared(secure_kafka, sim, name, batch)
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    worker = build_worker(settings, name, registry=registry)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    dlq = ("topic", f"{name}.dlq", "WRITE")
    expected = Counter(batch.expected.values())
    try:
        await _until(lambda: worker.stats.total_out == len(batch.records), task)
        first_producer = worker._producer
        secure_kafka.revoke("worker", [dlq])
        produce(secure_kafka.bootstrap, f"{name}.raw", [(b"late", b"\xff\xfe not utf-8")])
        await _until(lambda: worker.guard.state_fault is not None, task)
        assert "TopicAuthorizationFailed" in str(worker.guard.state_fault)
        assert worker.guard.paused
        assert worker.stats.total_out == len(batch.records)
        assert routes_of(secure_kafka, name) == expected

        secure_kafka.grant("worker", [dlq])
        await _until(lambda: worker.stats.total_out == len(batch.records) + 1, task)
        assert not worker.guard.paused
        assert worker._producer is not first_producer
    finally:
        stop.set()
        await task
        await worker.pipeline.extractor.provider.aclose()
    expected["dlq"] += 1
    assert routes_of(secure_kafka, name) == expected


async def _until(condition: Any, task: asyncio.Task[None], timeout: float = 60.0) -> None:
    """Wait (bounded) for ``condition``; a worker that died fails the test with its error."""
    async with asyncio.timeout(timeout):
        while not condition():
            if task.done():
                task.result()
            await asyncio.sleep(0.1)
