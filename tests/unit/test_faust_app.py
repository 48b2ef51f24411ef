"""How the faust app is assembled from the settings (no broker: nothing is started)."""

from __future__ import annotations

import pytest

from streams.errors import ConfigError
from streams.faust_app import SafeConsumer, create_app
from streams.faust_app._consumer import SafeTransport
from streams.settings import Settings, load_settings


def _settings(*names: str, **worker: object) -> Settings:
    return load_settings(
        None,
        kafka={"bootstrap_servers": "127.0.0.1:1", "group_prefix": "acme"},
        worker={"metrics_port": 9300, **worker},
        pipelines=[
            {"name": n, "input_topic": f"{n}.raw", "contract": "invoice", "contract_version": 1}
            for n in names
        ],
    )


def test_one_pipeline_joins_the_native_workers_group_over_the_safe_consumer() -> None:
    """One pipeline: group <prefix>.<pipeline>, SafeConsumer, one agent, web on metrics_port."""
    app = create_app(_settings("invoices"))
    assert app.conf.id == "acme.invoices"
    assert isinstance(app.transport, SafeTransport)
    assert app.transport.Consumer is SafeConsumer
    assert [a.name for a in app.agents.values()] == ["streams.extract.invoices"]
    assert app.conf.web_port == 9300
    assert app.conf.broker_commit_interval == 0.5
    assert not app.conf.topic_allow_declare


def test_several_pipelines_share_one_app_with_an_agent_each() -> None:
    """Every configured pipeline by default, each its own agent, in group <prefix>.faust."""
    app = create_app(_settings("invoices", "claims"))
    assert app.conf.id == "acme.faust"
    assert sorted(a.name for a in app.agents.values()) == [
        "streams.extract.claims",
        "streams.extract.invoices",
    ]
    assert create_app(_settings("invoices", "claims"), ["claims"]).conf.id == "acme.claims"


def test_exactly_once_and_unknown_pipelines_are_refused() -> None:
    """faust's exactly-once is not offered; a pipeline not in the config is a ConfigError."""
    with pytest.raises(ConfigError, match="exactly_once is not offered by the faust engine"):
        create_app(_settings("invoices", exactly_once=True, instance_id="w-0"))
    with pytest.raises(ConfigError, match="no pipeline named 'nope'"):
        create_app(_settings("invoices"), ["nope"])
