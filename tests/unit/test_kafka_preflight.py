"""The preflight's tables and messages, without a broker (the refusals are integration tests)."""

from __future__ import annotations

from pydantic import SecretStr

from streams.kafka import preflight
from streams.kafka.preflight import Access, required_access
from streams.settings import KafkaSettings, load_settings


def test_required_access_covers_input_group_outputs_and_state() -> None:
    """A capped pipeline needs READ on input and group, WRITE on four outputs, R+W on state."""
    settings = load_settings(
        None,
        budgets={"spend_cap_usd": 5.0},
        pipelines=[
            {"name": "p", "input_topic": "in", "contract": "invoice", "contract_version": 1}
        ],
    )
    needed = {
        (a.kind, a.name, a.operation) for a in required_access(settings, settings.pipelines[0])
    }
    assert needed == {
        ("topic", "in", "READ"),
        ("group", "streams.p", "READ"),
        ("topic", "p.valid", "WRITE"),
        ("topic", "p.invalid", "WRITE"),
        ("topic", "p.over-budget", "WRITE"),
        ("topic", "p.dlq", "WRITE"),
        ("topic", "p.cache", "READ"),
        ("topic", "p.cache", "WRITE"),
        ("topic", "p.spend", "READ"),
        ("topic", "p.spend", "WRITE"),
    }


def test_no_cache_no_cap_needs_no_state_topics() -> None:
    """Without the cache and a spend cap, no state-topic ACL is asked for."""
    settings = load_settings(None, worker={"cache": False})
    names = {a.name for a in required_access(settings, settings.pipelines[0])}
    assert not [n for n in names if n.endswith((".cache", ".spend"))]


def test_acl_command_is_the_stock_tool_with_the_principal() -> None:
    """The ACL to add is spelled as kafka-acls.sh takes it."""
    kafka = KafkaSettings(
        bootstrap_servers="b:9093",
        security_protocol="SASL_SSL",
        username="svc",
        password=SecretStr("x"),
    )
    command = Access("group", "streams.p", "READ", "offsets").acl_command(kafka)
    assert command == (
        "kafka-acls.sh --bootstrap-server b:9093 --add --allow-principal User:svc "
        "--operation Read --group streams.p"
    )


def test_tls_failures_name_the_certificate_and_the_setting() -> None:
    """An unverified broker certificate names ssl_cafile; other handshake failures the client's."""
    kafka = KafkaSettings(security_protocol="SSL")
    reason = preflight._clean(
        "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::"
        "certificate verify failed: broker certificate could not be verified "
        "(after 29ms in state SSL_HANDSHAKE)"
    )
    broker = preflight._tls_error(kafka, "SSL listener 127.0.0.1:9093", reason)
    assert broker.context["certificate"] == "broker"
    assert str(broker) == (
        "TLS handshake with the SSL listener 127.0.0.1:9093 failed: the broker's certificate did "
        "not verify against the system CAs (error:0A000086:SSL routines::certificate verify "
        "failed: broker certificate could not be verified); point kafka.ssl_cafile at the CA "
        "that signed the broker's certificate"
    )
    client = preflight._tls_error(
        kafka, "SSL listener 127.0.0.1:9093", "tlsv13 alert certificate required"
    )
    assert client.context["certificate"] == "client"
    assert "none is configured: set kafka.ssl_certfile and kafka.ssl_keyfile" in str(client)


def test_plaintext_skips_the_connection_check() -> None:
    """PLAINTEXT has no credentials or certificates to refuse: no client is even built."""
    assert preflight.check_connection(KafkaSettings(bootstrap_servers="192.0.2.1:1")) is None
