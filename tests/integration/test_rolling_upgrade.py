"""A live worker upgraded from invoice v1 to v2 on the same topic, against a real registry."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.app import build_worker
from streams.devstack.kafka import LocalKafka
from tests.integration.kafka_utils import consume_all, produce
from tests.integration.pipeline_utils import REPO, new_name, run_until, settings_for, sim_reset

pytestmark = pytest.mark.integration


def _reader(version: int) -> Any:
    return fastavro.parse_schema(
        json.loads((REPO / "avro" / "invoice" / f"v{version}.avsc").read_text())
    )


def _decode(value: bytes, registry: SchemaRegistryClient, reader: Any) -> dict[str, Any]:
    """What a downstream consumer does: writer schema by id from the registry, its own reader."""
    assert value[0] == 0
    schema_id = int.from_bytes(value[1:5], "big")
    writer = fastavro.parse_schema(json.loads(registry.get_schema(schema_id).schema_str))
    datum = fastavro.schemaless_reader(io.BytesIO(value[5:]), writer, reader)
    assert isinstance(datum, dict)
    return datum


async def test_v1_and_v2_readers_decode_records_from_both_writers(
    kafka: LocalKafka,
    simulator: str,
    invoice_samples: Path,
    registry_client: SchemaRegistryClient,
) -> None:
    """Records written under v1, then by the upgraded v2 worker, decode with either reader."""
    name = new_name("upgrade")
    samples = sorted(invoice_samples.glob("*.txt"))
    sim_reset(simulator)
    batches = (samples[:3], samples[3:6])
    for version, batch in zip((1, 2), batches, strict=True):
        settings = settings_for(kafka, simulator, name, contract=("invoice", version))
        produce(kafka.bootstrap, f"{name}.raw", [(p.stem.encode(), p.read_bytes()) for p in batch])
        worker = build_worker(settings, name, registry=registry_client)
        await run_until([worker], len(batch))

    subject = f"{name}.valid-value"
    versions = registry_client.get_versions(subject)
    assert len(versions) == 2
    # v2 declares FULL compatibility with v1; the subject carries the level of the last writer.
    assert registry_client.get_compatibility(subject) == "FULL"

    valid = consume_all(kafka.bootstrap, [f"{name}.valid"])
    assert len(valid) == 6
    ids = set()
    for msg in valid:
        assert msg.value is not None
        ids.add(int.from_bytes(msg.value[1:5], "big"))
        as_v1 = _decode(msg.value, registry_client, _reader(1))
        as_v2 = _decode(msg.value, registry_client, _reader(2))
        assert "purchase_order" not in as_v1
        assert as_v2["purchase_order"] is None
        assert as_v1["total"] == as_v2["total"]
        assert as_v1["provenance"]["contract_version"] in (1, 2)
    assert len(ids) == 2  # both writer schemas are in the topic
