"""docker-compose.yml: two listeners, health-gated start-up, and a worker config that loads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from streams.cli import build_parser
from streams.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {name: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, address = item.split("://")
        host, port = address.rsplit(":", 1)
        out[name] = (host, int(port))
    return out


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of each bind mount."""
    out = {}
    for volume in service.get("volumes", []):
        host, container = volume.split(":")[:2]
        out[container] = (REPO / host).resolve()
    return out


def _ports_listened(name: str) -> set[int]:
    """The ports a service listens on inside the compose network."""
    service = SERVICES[name]
    if name == "kafka":
        return {port for _h, port in _listeners(service["environment"]["KAFKA_LISTENERS"]).values()}
    command = service.get("command", [])
    ports = {int(command[command.index("--port") + 1])} if "--port" in command else set()
    return ports | {int(p.split(":")[-1]) for p in service.get("ports", [])}


def _worker_settings(monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, Any]:
    """The worker service's effective settings: its mounted TOML plus its environment."""
    worker = SERVICES["worker"]
    args = build_parser().parse_args(worker["command"][1:])
    config = _mounts(worker)[str(args.config)]
    for key, value in worker.get("environment", {}).items():
        monkeypatch.setenv(key, str(value))
    return load_settings(config), args


def test_broker_has_an_internal_and_a_host_listener() -> None:
    """Containers are told kafka:29092, the host localhost:9092; brokers talk INTERNAL."""
    env = SERVICES["kafka"]["environment"]
    bound = _listeners(env["KAFKA_LISTENERS"])
    advertised = _listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    assert advertised["INTERNAL"] == ("kafka", bound["INTERNAL"][1])
    assert advertised["EXTERNAL"] == ("localhost", bound["EXTERNAL"][1])
    assert f"{bound['EXTERNAL'][1]}:{bound['EXTERNAL'][1]}" in SERVICES["kafka"]["ports"]
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(bound) <= set(protocols)


def test_worker_waits_for_healthy_broker_registry_and_model() -> None:
    """Every dependency of the worker has a health check and gates it with service_healthy."""
    worker = SERVICES["worker"]
    for dependency in ("kafka", "registry", "simulator"):
        assert worker["depends_on"][dependency] == {"condition": "service_healthy"}
        assert SERVICES[dependency]["healthcheck"]["test"], dependency
    probe = " ".join(worker["healthcheck"]["test"])
    assert "/readyz" in probe


def test_worker_config_loads_and_names_hosts_of_this_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mounted TOML + environment load through the settings model; every host is a service."""
    settings, args = _worker_settings(monkeypatch)
    settings.pipeline(args.pipeline)
    for address in settings.kafka.bootstrap_servers.split(","):
        host, port = address.rsplit(":", 1)
        assert host in SERVICES, address
        assert int(port) in _ports_listened(host), address
    assert (host, int(port)) == _listeners(
        SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )["INTERNAL"]
    for url in (settings.llm.base_url, settings.registry.url):
        parts = urlsplit(url)
        assert parts.hostname in SERVICES, url
        assert parts.port in _ports_listened(parts.hostname), url
    assert settings.worker.metrics_host == "0.0.0.0"
    probe = " ".join(SERVICES["worker"]["healthcheck"]["test"])
    assert f":{settings.worker.metrics_port}/readyz" in probe
    grace = re.fullmatch(r"(\d+)s", SERVICES["worker"]["stop_grace_period"])
    assert grace is not None
    assert settings.worker.shutdown_timeout_s < int(grace[1])


def test_observability_profile_mounts_the_rules_and_the_dashboard() -> None:
    """Prometheus loads alerts.yml and scrapes the worker; Grafana gets the dashboard."""
    for name in ("prometheus", "grafana"):
        assert SERVICES[name]["profiles"] == ["observability"]
    prom_dir = _mounts(SERVICES["prometheus"])["/etc/prometheus"]
    prom = yaml.safe_load((prom_dir / "prometheus.yml").read_text(encoding="utf-8"))
    for rule_file in prom["rule_files"]:
        assert (prom_dir / rule_file).is_file(), rule_file
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "worker"]
    target = job["static_configs"][0]["targets"][0]
    host, port = target.split(":")
    assert host in SERVICES
    assert int(port) in _ports_listened(host)

    mounts = _mounts(SERVICES["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    dashboards = yaml.safe_load((provisioning / "dashboards" / "streams.yml").read_text())
    path = dashboards["providers"][0]["options"]["path"]
    assert list(mounts[path].glob("*.json")), path
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    url = urlsplit(datasource["datasources"][0]["url"])
    assert url.hostname in SERVICES
    assert url.port in _ports_listened(str(url.hostname))
