"""The registry behind TLS and basic auth: credentials and CA from [registry], never the URL."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.app import build_worker
from streams.devstack.secure import SecureKafka, generate_ca
from streams.errors import ConfigError
from streams.kafka import clients
from streams.logs import JsonFormatter
from streams.settings import RegistrySettings, Settings, load_settings
from tests.integration.kafka_utils import consume_all
from tests.integration.pipeline_utils import new_name, run_until
from tests.integration.registry_proxy import PROXY_PASSWORD, PROXY_TOKEN, RegistryProxy
from tests.integration.test_prometheus import mixed_batch
from tests.integration.test_secure_kafka import prepared, routes_of

pytestmark = pytest.mark.integration

TOKEN = PROXY_TOKEN
PASSWORD = PROXY_PASSWORD


@pytest.fixture
def proxy(registry_proxy: RegistryProxy) -> RegistryProxy:
    return registry_proxy


def _with_registry(settings: Settings, **registry: Any) -> Settings:
    return settings.model_copy(update={"registry": RegistrySettings(**registry)})


async def test_worker_registers_through_tls_and_basic_auth_and_a_stock_reader_decodes(
    secure_kafka: SecureKafka,
    proxy: RegistryProxy,
    invoice_samples: Path,
    sim_factory: Any,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """SASL_SSL Kafka plus an HTTPS basic-auth registry: the valid topic is read by a stock
    AvroDeserializer through the authenticated registry; the password shows up nowhere."""
    # Not vacuous: the proxy refuses a client without credentials.
    anonymous = clients.schema_registry_client(
        RegistrySettings(url=proxy.url, ca_file=proxy.ca_file)
    )
    with pytest.raises(Exception, match="401"):
        anonymous.get_subjects()
    refused = proxy.refused

    batch = mixed_batch(invoice_samples)
    sim = sim_factory(fixture_dirs=[invoice_samples], script=batch.rules)
    name = new_name("srauth")
    registry = {
        "url": proxy.url,
        "username": "sr-user",
        "password": PASSWORD,
        "ca_file": proxy.ca_file,
    }
    settings = _with_registry(prepared(secure_kafka, sim, name, batch), **registry)
    caplog.set_level(logging.DEBUG)
    worker = build_worker(settings, name)  # the registry client comes from [registry]
    await run_until([worker], len(batch.records))
    assert routes_of(secure_kafka, name) == Counter(batch.expected.values())
    assert proxy.forwarded > 0
    assert proxy.refused == refused

    valid = f"{name}.valid"
    reader_settings = load_settings(None, registry=registry).registry
    with clients.schema_registry_client(reader_settings) as client:
        deserialize = AvroDeserializer(client)
        decoded = [
            deserialize(m.value, SerializationContext(valid, MessageField.VALUE))
            for m in consume_all(secure_kafka.bootstrap, [valid])
        ]
    assert len(decoded) == 3
    assert {d["provenance"]["pipeline"] for d in decoded} == {name}

    formatter = JsonFormatter()
    assert not [r for r in caplog.records if PASSWORD in formatter.format(r)]
    captured = capfd.readouterr()
    assert PASSWORD not in captured.out + captured.err
    assert PASSWORD not in repr(settings) + settings.model_dump_json()


def test_bearer_token_is_accepted_and_a_wrong_password_is_one_line(
    proxy: RegistryProxy, secure_kafka: SecureKafka, simulator: str
) -> None:
    """A bearer token passes the proxy; a wrong password is a one-line ConfigError at start-up."""
    with clients.schema_registry_client(
        RegistrySettings(url=proxy.url, bearer_token=TOKEN, ca_file=proxy.ca_file)
    ) as client:
        assert isinstance(client.get_subjects(), list)

    name = new_name("srbad")
    base = load_settings(
        None,
        kafka=secure_kafka.client_settings("worker"),
        llm={"base_url": f"{simulator}/v1"},
        pipelines=[
            {
                "name": name,
                "input_topic": f"{name}.raw",
                "contract": "invoice",
                "contract_version": 1,
            }
        ],
    )
    wrong = _with_registry(
        base, url=proxy.url, username="sr-user", password="wrong-pw-1", ca_file=proxy.ca_file
    )
    with pytest.raises(ConfigError) as info:
        build_worker(wrong, name)
    assert str(info.value) == (
        f"schema registry refused the credentials for {name}.valid-value (HTTP 401); check "
        "registry.username and registry.password (STREAMS_REGISTRY__PASSWORD), or "
        "registry.bearer_token"
    )


def test_registry_with_an_untrusted_certificate_is_one_line(
    proxy: RegistryProxy, simulator: str, tmp_path: Path
) -> None:
    """A registry CA bundle that did not sign the registry's certificate: one line at start-up."""
    other_ca, _key = generate_ca(tmp_path / "other", "not the registry's CA")
    name = new_name("srca")
    settings = load_settings(
        None,
        llm={"base_url": f"{simulator}/v1"},
        registry={"url": proxy.url, "bearer_token": TOKEN, "ca_file": str(other_ca)},
        pipelines=[
            {
                "name": name,
                "input_topic": f"{name}.raw",
                "contract": "invoice",
                "contract_version": 1,
            }
        ],
    )
    with pytest.raises(ConfigError) as info:
        build_worker(settings, name)
    assert str(info.value) == (
        f"TLS with the schema registry failed for {name}.valid-value: its certificate did not "
        "verify; point registry.ca_file at the CA that signed it"
    )
