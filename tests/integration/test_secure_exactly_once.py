"""Exactly-once on the secured broker: the transactional id is an ACL like any other.

A worker with ``worker.exactly_once`` needs WRITE on its transactional id
(``<group>.<instance_id>``). Without it the broker refuses the first transaction; the
preflight finds that out first and says which ACL to add, in one line.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.app import build_worker
from streams.devstack.secure import SecureKafka
from streams.errors import KafkaAuthorizationFailed
from streams.kafka.preflight import check_access, required_access
from streams.settings import Settings
from tests.integration.kafka_utils import produce
from tests.integration.pipeline_utils import new_name, run_until
from tests.integration.test_prometheus import mixed_batch
from tests.integration.test_secure_kafka import acls_for, create_topics, routes_of, secure_settings

pytestmark = pytest.mark.integration


def _exactly_once(settings: Settings, instance_id: str) -> Settings:
    worker = settings.worker.model_copy(update={"exactly_once": True, "instance_id": instance_id})
    return settings.model_copy(update={"worker": worker})


async def test_transactional_id_acl_is_checked_then_exactly_once_runs_on_sasl_ssl(
    secure_kafka: SecureKafka,
    invoice_samples: Path,
    sim_factory: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Without WRITE on its transactional id, the preflight names that ACL in one line (and
    librdkafka's own FATAL line for the same refusal is not printed); with it, an
    exactly-once worker over SASL_SSL routes every input once."""
    batch = mixed_batch(invoice_samples)
    sim = sim_factory(fixture_dirs=[invoice_samples], script=batch.rules)
    name = new_name("eos")
    settings = _exactly_once(secure_settings(secure_kafka, sim, name), "replica-0")
    tid = f"streams.{name}.replica-0"
    assert settings.transactional_id(name) == tid
    needed = required_access(settings, settings.pipelines[0])
    assert ("transactional-id", tid, "WRITE") in acls_for(settings)
    create_topics(secure_kafka, name)
    secure_kafka.grant("worker", [a for a in acls_for(settings) if a[0] != "transactional-id"])
    produce(secure_kafka.bootstrap, f"{name}.raw", batch.records)

    with pytest.raises(KafkaAuthorizationFailed) as refused:
        check_access(settings.kafka, needed)
    assert str(refused.value) == (
        f"user 'worker' may not WRITE transactional-id {tid!r} (exactly-once transactions) "
        f"on the SASL_SSL listener {secure_kafka.secure_bootstrap}; add the ACL: "
        f"kafka-acls.sh --bootstrap-server {secure_kafka.secure_bootstrap} --add "
        f"--allow-principal User:worker --operation Write --transactional-id {tid}"
    )
    assert "FATAL" not in capfd.readouterr().err

    secure_kafka.grant("worker", [("transactional-id", tid, "WRITE")])
    check_access(settings.kafka, needed)  # granted now: no error
    worker = build_worker(
        settings, name, registry=SchemaRegistryClient.new_client({"url": "mock://"})
    )
    await run_until([worker], len(batch.records))
    assert worker.stats.produced == batch.counts()
    assert routes_of(secure_kafka, name) == Counter(batch.expected.values())
