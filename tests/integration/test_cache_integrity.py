"""Result-cache integrity on the real broker: a worker with a signing key serves only the
entries it signed; a forged or unsigned entry written to the cache topic is a counted
miss, re-extracted at a model call, never a "valid" record."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.app import build_worker
from streams.devstack.kafka import LocalKafka
from streams.kafka import clients
from streams.metrics import Metrics
from streams.replay import reset_offsets
from tests.integration.kafka_utils import consume_all, produce
from tests.integration.pipeline_utils import (
    new_name,
    run_until,
    settings_for,
    sim_requests,
    sim_reset,
    valid_data,
)

pytestmark = pytest.mark.integration


async def test_forged_and_unsigned_entries_are_misses_with_a_signing_key(
    kafka: LocalKafka, simulator: str, invoice_samples: Path
) -> None:
    name = new_name("signed")
    texts = {p.stem: p.read_text("utf-8") for p in sorted(invoice_samples.glob("*.txt"))[:3]}
    settings = settings_for(
        kafka, simulator, name, worker={"cache_signing_key": "the group's shared secret"}
    )
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    produce(kafka.bootstrap, f"{name}.raw", [(k.encode(), v.encode()) for k, v in texts.items()])
    sim_reset(simulator)
    first = build_worker(settings, name, registry=registry)
    await run_until([first], len(texts))
    assert len(sim_requests(simulator)) >= len(texts)

    entries = consume_all(kafka.bootstrap, [f"{name}.cache"])
    assert len(entries) == len(texts)
    assert all(m.value.startswith(b"hmac-sha256:") for m in entries)
    forged, unsigned, _kept = entries
    head, _, body = forged.value.partition(b"\n")
    tampered = body.replace(b'"found": true', b'"found": false', 1)
    assert tampered != body
    # Written as the workers write the table (aiokafka partitions keys with murmur2, as
    # Java clients do; librdkafka's default would put a key in another partition).
    writer = clients.producer(kafka.bootstrap, {"partitioner": "murmur2_random"})
    writer.produce(f"{name}.cache", key=forged.key, value=head + b"\n" + tampered)
    writer.produce(f"{name}.cache", key=unsigned.key, value=unsigned.value.partition(b"\n")[2])
    assert writer.flush(30) == 0

    reset_offsets(kafka.bootstrap, first.group_id, f"{name}.raw", to_earliest=True)
    sim_reset(simulator)
    metrics = Metrics()
    second = build_worker(settings, name, registry=registry, metrics=metrics)
    await run_until([second], len(texts))
    # The two entries that are not the worker's own are re-extracted; the third is a hit.
    assert len(sim_requests(simulator)) == 2
    for reason in ("forged", "unsigned"):
        labels = {"pipeline": name, "reason": reason}
        assert metrics.registry.get_sample_value("streams_cache_rejected_total", labels) == 1
    valid = consume_all(kafka.bootstrap, [f"{name}.valid"])
    assert len(valid) == 2 * len(texts)  # both passes: every record valid, none lost
    assert sorted(valid_data(m)[1]["cache_hit"] for m in valid) == [False] * 5 + [True]
