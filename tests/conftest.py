"""Session fixtures: a real local Kafka broker and the LLM simulator over real HTTP.

Integration tests never skip: if the broker cannot start, the fixture raises
and every test that needs it fails, loudly.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._entry_points import ensure_checkout_entry_points

ensure_checkout_entry_points(Path(__file__).resolve().parent.parent)

from contracts import SAMPLES_DIR  # noqa: E402
from streams.devstack.kafka import LocalKafka  # noqa: E402
from streams.devstack.registry import LocalRegistry  # noqa: E402
from streams.devstack.secure import SecureKafka  # noqa: E402
from streams.settings import default_cache_dir  # noqa: E402
from streams.simulator import SimulatorConfig, SimulatorThread  # noqa: E402


def _progress(message: str) -> None:
    print(f"[kafka] {message}", file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A single-node KRaft broker on 127.0.0.1, from Maven Central jars."""
    broker = LocalKafka(
        default_cache_dir(), data_dir=tmp_path_factory.mktemp("kafka-data"), progress=_progress
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """A broker with a SASL_SSL listener (generated CA, SCRAM and PLAIN users, ACLs)."""
    broker = SecureKafka(
        default_cache_dir(),
        data_dir=tmp_path_factory.mktemp("secure-kafka-data"),
        progress=_progress,
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def oauth_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SecureKafka, Any]]:
    """A secured broker that also takes OAUTHBEARER tokens from a token endpoint the test
    serves (with its JWKS); yields (broker, token server)."""
    from tests.integration.oauth_server import AUDIENCE, TokenServer

    tokens = TokenServer("oauth-client", "oauth-secret-" + uuid.uuid4().hex).start()
    broker = SecureKafka(
        default_cache_dir(),
        data_dir=tmp_path_factory.mktemp("oauth-kafka-data"),
        progress=_progress,
        oauth_jwks_url=tokens.jwks_url,
        oauth_audience=AUDIENCE,
    )
    try:
        broker.start()
        yield broker, tokens
    finally:
        broker.stop()
        tokens.stop()


@pytest.fixture(scope="session")
def registry_url() -> Iterator[str]:
    """A real Schema Registry (Apicurio, Confluent-compatible API) on 127.0.0.1."""
    registry = LocalRegistry(default_cache_dir(), progress=_progress)
    registry.start()
    try:
        yield registry.url
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def registry_proxy(registry_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The registry behind TLS (the proxy's own CA) and basic or bearer auth, as a managed
    registry is: :class:`tests.integration.registry_proxy.RegistryProxy`."""
    from tests.integration.registry_proxy import PROXY_PASSWORD, PROXY_TOKEN, RegistryProxy

    workdir = tmp_path_factory.mktemp("registry-proxy")
    with RegistryProxy(
        registry_url, workdir, user="sr-user", password=PROXY_PASSWORD, token=PROXY_TOKEN
    ) as proxy:
        yield proxy


@pytest.fixture
def registry_client(registry_url: str) -> Iterator[SchemaRegistryClient]:
    """A stock confluent-kafka registry client on the real registry, closed after the test."""
    with SchemaRegistryClient({"url": registry_url}) as client:
        yield client


# Imported after `streams` (above), whose __init__ filters authlib's import-time warning.
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402


@pytest.fixture(scope="session")
def invoice_samples() -> Path:
    return SAMPLES_DIR / "invoice"


@pytest.fixture(scope="session")
def simulator(invoice_samples: Path) -> Iterator[str]:
    """The OpenAI-compatible simulator serving the invoice fixtures; yields its base URL."""
    sim = SimulatorThread(SimulatorConfig(fixture_dirs=[invoice_samples]))
    url = sim.start()
    try:
        yield url
    finally:
        sim.stop()


@pytest.fixture
def sim_factory() -> Iterator[Any]:
    """Start simulators with their own config (faults, latency); all stopped after the test."""
    started: list[SimulatorThread] = []

    def make(**kw: Any) -> str:
        sim = SimulatorThread(SimulatorConfig(**kw))
        started.append(sim)
        return sim.start()

    yield make
    for sim in started:
        sim.stop()
