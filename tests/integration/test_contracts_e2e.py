"""The claim and lead contracts end to end: every sample valid, the bad fixture invalid."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from contracts import SAMPLES_DIR, get_contract
from streams.app import build_worker
from streams.devstack.kafka import LocalKafka
from streams.simulator import SimulatorConfig, SimulatorThread
from tests.integration.kafka_utils import ROUTES, consume_all, produce
from tests.integration.pipeline_utils import new_name, run_until, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def all_fixtures_sim() -> Iterator[str]:
    sim = SimulatorThread(
        SimulatorConfig(fixture_dirs=[SAMPLES_DIR / c for c in ("invoice", "claim", "lead")])
    )
    url = sim.start()
    try:
        yield url
    finally:
        sim.stop()


@pytest.mark.parametrize("contract", ["claim", "lead"])
async def test_contract_end_to_end(
    kafka: LocalKafka,
    all_fixtures_sim: str,
    registry_client: SchemaRegistryClient,
    contract: str,
) -> None:
    """All samples of the contract land valid, grounded; its bad fixture lands invalid."""
    name = new_name(contract)
    samples = sorted((SAMPLES_DIR / contract).glob("*.txt"))
    bad = sorted((SAMPLES_DIR / contract / "_bad").glob("*.txt"))
    records = [(p.stem.encode(), p.read_bytes()) for p in samples + bad]
    settings = settings_for(kafka, all_fixtures_sim, name, contract=(contract, 1))
    produce(kafka.bootstrap, f"{name}.raw", records)
    worker = build_worker(settings, name, registry=registry_client)
    await run_until([worker], len(records))

    out = consume_all(kafka.bootstrap, [f"{name}.{r}" for r in ROUTES])
    routes = {m.key.decode(): m.topic.removeprefix(f"{name}.") for m in out if m.key}
    assert len(out) == len(records)
    assert {k for k, r in routes.items() if r == "valid"} == {p.stem for p in samples}
    assert {k for k, r in routes.items() if r != "valid"} == {p.stem for p in bad}
    assert all(routes[p.stem] == "invalid" for p in bad)
    coverages = [
        float(m.headers["streams.grounding-coverage"]) for m in out if m.topic.endswith(".valid")
    ]
    assert min(coverages) > 0.8
    assert registry_client.get_compatibility(f"{name}.valid-value") == (
        get_contract(contract, 1).compatibility
    )
