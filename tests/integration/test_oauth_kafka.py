"""OAUTHBEARER end to end: tokens from a client-credentials endpoint, checked by the broker
against the JWKS the test serves (Kafka's OAuthBearerValidatorCallbackHandler)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.app import build_worker
from streams.devstack.secure import SecureKafka
from streams.errors import ConfigError
from streams.kafka.preflight import check_connection
from streams.settings import Settings, load_settings
from tests.integration.kafka_utils import produce
from tests.integration.oauth_server import TokenServer
from tests.integration.pipeline_utils import new_name, run_until
from tests.integration.test_prometheus import mixed_batch
from tests.integration.test_secure_kafka import acls_for, create_topics, routes_of

pytestmark = pytest.mark.integration


def oauth_settings(broker: SecureKafka, tokens: TokenServer, secret: str, **extra: Any) -> Settings:
    return load_settings(
        None,
        kafka={
            "bootstrap_servers": broker.secure_bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "OAUTHBEARER",
            "username": tokens.client_id,
            "password": secret,
            "oauth_token_endpoint": tokens.token_url,
            "ssl_cafile": str(broker.ca_file),
        },
        **extra,
    )


async def test_oauthbearer_worker_end_to_end(
    oauth_kafka: tuple[SecureKafka, TokenServer], invoice_samples: Path, sim_factory: Any
) -> None:
    """Both client libraries log in with tokens from the endpoint; every input is routed once."""
    broker, tokens = oauth_kafka
    batch = mixed_batch(invoice_samples)
    sim = sim_factory(fixture_dirs=[invoice_samples], script=batch.rules)
    name = new_name("oauth")
    settings = oauth_settings(
        broker,
        tokens,
        tokens.secret,
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
    create_topics(broker, name)
    broker.grant(tokens.client_id, acls_for(settings))
    produce(broker.bootstrap, f"{name}.raw", batch.records)
    issued = tokens.issued
    worker = build_worker(
        settings, name, registry=SchemaRegistryClient.new_client({"url": "mock://"})
    )
    await run_until([worker], len(batch.records))
    assert routes_of(broker, name) == Counter(batch.expected.values())
    assert tokens.issued > issued  # the tokens really came from the endpoint


def test_oauthbearer_with_a_wrong_client_secret_is_one_line(
    oauth_kafka: tuple[SecureKafka, TokenServer],
) -> None:
    """A secret the token endpoint refuses: no token, and one line naming the mechanism."""
    broker, tokens = oauth_kafka
    refused = tokens.refused
    settings = oauth_settings(broker, tokens, "not-the-secret")
    with pytest.raises(ConfigError) as info:
        check_connection(settings.kafka)
    assert tokens.refused > refused
    message = str(info.value)
    assert "\n" not in message
    assert "not-the-secret" not in message
    assert message.endswith("and kafka.oauth_token_endpoint")
    assert message.startswith(
        f"SASL OAUTHBEARER authentication as user 'oauth-client' failed on the SASL_SSL "
        f"listener {broker.secure_bootstrap}"
    )
