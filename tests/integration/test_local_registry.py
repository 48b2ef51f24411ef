"""The local dev Schema Registry: Apicurio's Confluent-compatible API, driven by confluent-kafka."""

from __future__ import annotations

import json
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.devstack import DevstackError
from streams.devstack.registry import (
    CCOMPAT_PATH,
    LocalRegistry,
    dev_registry_down,
    dev_registry_status,
    dev_registry_up,
    ensure_registry_jar,
    registry_home,
)
from streams.settings import default_cache_dir

pytestmark = pytest.mark.integration

_V1: dict[str, Any] = {
    "type": "record",
    "name": "Invoice",
    "namespace": "test.registry",
    "fields": [{"name": "number", "type": "string"}],
}
# Adds a field with a default: a reader of v2 can still read v1 data (BACKWARD).
_V2_COMPATIBLE: dict[str, Any] = {
    **_V1,
    "fields": [*_V1["fields"], {"name": "currency", "type": "string", "default": "EUR"}],
}
# Adds a field without a default: a reader of it cannot read v1 data.
_V2_INCOMPATIBLE: dict[str, Any] = {
    **_V1,
    "fields": [*_V1["fields"], {"name": "total", "type": "double"}],
}


def _progress(message: str) -> None:
    print(f"[registry] {message}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def cache_dir() -> Path:
    """The shared cache, with the registry jar built once (Maven runs only on first use)."""
    cache = default_cache_dir()
    ensure_registry_jar(cache, progress=_progress)
    return cache


@pytest.fixture(scope="module")
def registry(cache_dir: Path) -> Iterator[LocalRegistry]:
    """One registry for the module; its in-memory storage is shared by the tests."""
    with LocalRegistry(cache_dir, progress=_progress) as reg:
        yield reg


@pytest.fixture
def client(registry: LocalRegistry) -> Iterator[SchemaRegistryClient]:
    with SchemaRegistryClient({"url": registry.url}) as sr:
        yield sr


def _avro(schema: dict[str, Any]) -> Schema:
    return Schema(json.dumps(schema), schema_type="AVRO")


def _subject() -> str:
    return f"registry-{uuid.uuid4().hex[:12]}-value"


def test_url_is_the_confluent_compatible_base_on_loopback(registry: LocalRegistry) -> None:
    """url is http://127.0.0.1:<port>/apis/ccompat/v6, and it answers while started."""
    assert registry.url == f"http://127.0.0.1:{registry.port}{CCOMPAT_PATH}"
    assert registry.pid is not None
    response = httpx.get(f"{registry.url}/subjects", trust_env=False)
    assert response.status_code == 200


def test_registered_schema_is_fetched_back_by_id(client: SchemaRegistryClient) -> None:
    """A schema registered under t-value comes back, by its id, as the same Avro schema."""
    schema_id = client.register_schema("t-value", _avro(_V1))
    fetched = client.get_schema(schema_id)
    assert fetched.schema_type == "AVRO"
    assert fetched.schema_str is not None
    assert json.loads(fetched.schema_str) == _V1
    latest = client.get_latest_version("t-value")
    assert (latest.schema_id, latest.version) == (schema_id, 1)


def test_subject_compatibility_is_set_and_read_back(client: SchemaRegistryClient) -> None:
    """set_compatibility(BACKWARD) on a subject is what get_compatibility then returns."""
    subject = _subject()
    client.register_schema(subject, _avro(_V1))
    client.set_compatibility(subject_name=subject, level="BACKWARD")
    assert client.get_compatibility(subject) == "BACKWARD"


def test_backward_rejects_an_incompatible_schema_and_versions_a_compatible_one(
    client: SchemaRegistryClient,
) -> None:
    """Under BACKWARD a new required field is a 409; a field with a default is version 2."""
    subject = _subject()
    first_id = client.register_schema(subject, _avro(_V1))
    client.set_compatibility(subject_name=subject, level="BACKWARD")

    with pytest.raises(SchemaRegistryError) as rejected:
        client.register_schema(subject, _avro(_V2_INCOMPATIBLE))
    assert rejected.value.http_status_code == 409

    second_id = client.register_schema(subject, _avro(_V2_COMPATIBLE))
    assert second_id != first_id
    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version) == (second_id, 2)
    assert client.get_versions(subject) == [1, 2]


def test_avro_serde_round_trip_uses_the_confluent_wire_format(
    client: SchemaRegistryClient,
) -> None:
    """AvroSerializer writes magic byte 0 plus the registered id; AvroDeserializer reads it."""
    topic = f"registry-{uuid.uuid4().hex[:12]}"
    context = SerializationContext(topic, MessageField.VALUE)
    serializer = AvroSerializer(client, json.dumps(_V2_COMPATIBLE))
    deserializer = AvroDeserializer(client)
    record = {"number": "INV-1", "currency": "CHF"}

    payload = serializer(record, context)

    assert payload is not None
    assert payload[0] == 0
    registered = client.get_latest_version(f"{topic}-value")
    assert int.from_bytes(payload[1:5], "big") == registered.schema_id
    assert deserializer(payload, context) == record


def test_start_on_a_busy_port_fails_fast_with_a_clear_error(cache_dir: Path) -> None:
    """A port already in use is reported before any JVM is launched."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = int(busy.getsockname()[1])
        registry = LocalRegistry(cache_dir, port=port, progress=lambda _: None)
        with pytest.raises(DevstackError, match=f"port {port} .* in use"), registry:
            pass
        assert registry.pid is None


def test_dev_registry_up_is_idempotent_and_down_stops_it(cache_dir: Path, tmp_path: Path) -> None:
    """A second dev_registry_up reports the running registry; down stops exactly that PID."""
    # A fresh state dir that shares the already-built jar.
    dev_cache = tmp_path / "cache"
    dev_cache.mkdir()
    registry_home(dev_cache).symlink_to(registry_home(cache_dir), target_is_directory=True)
    first = dev_registry_up(dev_cache, None, lambda _: None)
    try:
        assert first["already_running"] is False
        second = dev_registry_up(dev_cache, None, lambda _: None)
        assert second["already_running"] is True
        assert second["pid"] == first["pid"]
        status = dev_registry_status(dev_cache)
        assert status is not None
        assert status["url"] == first["url"]
        with SchemaRegistryClient({"url": first["url"]}) as sr:
            assert sr.get_subjects() == []
    finally:
        stopped = dev_registry_down(dev_cache)
    assert stopped is True
    assert dev_registry_status(dev_cache) is None
    assert dev_registry_down(dev_cache) is False
