"""The faust engine's clients get their security from the one builder (clients.py)."""

from __future__ import annotations

from typing import Any

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import SecretStr

from streams.kafka import clients
from streams.settings import KafkaSettings

#: The keys of an aiokafka client's config that carry security.
SECURITY = {
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "sasl_oauth_token_provider",
    "ssl_context",
}


def _faust_auth(kafka: KafkaSettings) -> dict[str, Any]:
    """What faust's aiokafka driver passes its consumers and producers."""
    options = clients.faust_app_options(kafka)
    return dict(credentials_to_aiokafka_auth(options["broker_credentials"]))


def _ours(kafka: KafkaSettings) -> dict[str, Any]:
    return {k: v for k, v in clients.aiokafka_options(kafka).items() if k in SECURITY}


def test_plaintext_has_no_credentials() -> None:
    """A bare PLAINTEXT broker: no credentials, every bootstrap server a kafka:// URL."""
    options = clients.faust_app_options("b1:9092,b2:9092", broker_client_id="x")
    assert options == {
        "broker": "kafka://b1:9092;kafka://b2:9092",
        "broker_credentials": None,
        "broker_client_id": "x",
    }
    assert _faust_auth(clients.as_settings("b1:9092")) == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_reaches_faust_as_every_other_aiokafka_client_gets_it(mechanism: str) -> None:
    """SASL_PLAINTEXT with each mechanism: faust's driver config equals aiokafka_options'."""
    kafka = KafkaSettings(
        bootstrap_servers="broker:9093",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        username="svc",
        password=SecretStr("pw"),
    )
    faust_auth = _faust_auth(kafka)
    assert faust_auth.pop("ssl_context") is None
    assert faust_auth == _ours(kafka)


def test_oauthbearer_hands_faust_the_same_token_provider() -> None:
    """OAUTHBEARER: faust gets an OAuth credential holding the builder's token provider."""
    kafka = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        username="client",
        password=SecretStr("oauth-secret"),
        oauth_token_endpoint="https://idp.example/token",
    )
    faust_auth = _faust_auth(kafka)
    assert faust_auth["security_protocol"] == "SASL_PLAINTEXT"
    assert faust_auth["sasl_mechanism"] == "OAUTHBEARER"
    provider = faust_auth["sasl_oauth_token_provider"]
    assert type(provider) is type(_ours(kafka)["sasl_oauth_token_provider"])
    assert "oauth-secret" not in repr(clients.faust_app_options(kafka))
