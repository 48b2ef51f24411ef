"""deploy/k8s: both variants render, validate offline and keep the worker's invariants."""

from __future__ import annotations

import socket
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from streams.cli import build_parser
from streams.health import PATHS, Heartbeat, WorkerProbe
from streams.metrics import Metrics
from streams.settings import Settings, load_settings
from streams.supervisor import CLOSE_GRACE_S

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"
VARIANTS = {"at-least-once": "Deployment", "exactly-once": "StatefulSet"}
K8S_VERSION = "1.30"
CORE = {"ConfigMap", "Secret", "Service", "Deployment", "StatefulSet", "PodDisruptionBudget"}
PARTITIONS_ANNOTATION = "kafka-llm-streams/input-partitions"
SAMPLE_POD = "streams-worker-0"


def _render(variant: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S / variant)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _effective_settings(
    docs: list[dict[str, Any]],
    workload: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> tuple[Settings, Any]:
    """The pod's settings: the ConfigMap's TOML at the mounted path plus the container env."""
    container = _container(workload)
    args = build_parser().parse_args([*container["command"][1:], *container.get("args", [])])
    mount = next(m for m in container["volumeMounts"] if args.config.is_relative_to(m["mountPath"]))
    volume = next(
        v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    )
    config_map = next(
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == volume["configMap"]["name"]
    )
    toml = config_map["data"][args.config.name]
    for var in container.get("env", []):
        if "value" in var:
            value = var["value"]
        elif var["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
            value = SAMPLE_POD
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            secrets = [
                d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == ref["name"]
            ]
            if not secrets:
                # Only an optional Secret may be absent from the manifests (the cache's
                # signing key: the user creates it, or the worker runs unsigned).
                assert ref.get("optional") is True, ref
                value = "a signing key the user created"
            else:
                value = secrets[0]["stringData"][ref["key"]]
        monkeypatch.setenv(var["name"], value)
    path = tmp_path / args.config.name
    path.write_text(toml, encoding="utf-8")
    assert tomllib.loads(toml)  # the TOML itself parses
    return load_settings(path), args


@pytest.mark.parametrize("variant", VARIANTS)
def test_core_resources_validate_against_the_kubernetes_schemas(variant: str) -> None:
    """Every core resource of the rendered variant passes kubernetes-validate (strict)."""
    docs = _render(variant)
    kinds = {d["kind"] for d in docs}
    assert kinds == CORE - {"StatefulSet" if variant == "at-least-once" else "Deployment"} | {
        "ScaledObject",
        "ServiceMonitor",
    }
    for doc in docs:
        if doc["kind"] in CORE:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize(("variant", "kind"), VARIANTS.items())
def test_keda_and_service_monitor_carry_their_required_fields(variant: str, kind: str) -> None:
    """ScaledObject targets the workload on the group's lag; ServiceMonitor finds the Service."""
    docs = _render(variant)
    workload = _one(docs, kind)
    scaled = _one(docs, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == (kind, workload["metadata"]["name"])
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    for key in ("bootstrapServers", "consumerGroup", "topic", "lagThreshold"):
        assert isinstance(meta[key], str), key
        assert meta[key], key
    assert int(meta["lagThreshold"]) > 0
    assert meta["allowIdleConsumers"] == "false"
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]

    monitor = _one(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = _one(docs, "Service")
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert labels[monitor["spec"]["jobLabel"]] == "worker"  # alerts.yml: up{job="worker"}
    ports = {p["name"] for p in service["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in ports
    assert endpoint["path"] == "/metrics"
    pod_labels = workload["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    pdb = _one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize(("variant", "kind"), VARIANTS.items())
def test_workload_invariants_hold_against_the_worker_settings(
    variant: str, kind: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Probes on served paths and port; grace covers shutdown; replicas x processes fit."""
    docs = _render(variant)
    workload = _one(docs, kind)
    settings, args = _effective_settings(docs, workload, monkeypatch, tmp_path)
    pipeline = settings.pipeline(args.pipeline)
    container = _container(workload)

    # Probes: served health paths, on the container port that is worker.metrics_port.
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    probes = [container[k] for k in ("startupProbe", "livenessProbe", "readinessProbe")]
    assert {p["httpGet"]["path"] for p in probes} == set(PATHS)
    for probe in probes:
        assert port_names[probe["httpGet"]["port"]] == settings.worker.metrics_port
    assert settings.worker.metrics_host == "0.0.0.0"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"

    # The grace period covers the drain bound plus the supervisor's close grace.
    grace = workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert settings.worker.shutdown_timeout_s + CLOSE_GRACE_S + 2 <= grace

    # KEDA's cap times the processes per pod never exceeds the input's partitions.
    scaled = _one(docs, "ScaledObject")
    partitions = int(scaled["metadata"]["annotations"][PARTITIONS_ANNOTATION])
    assert scaled["spec"]["maxReplicaCount"] * args.processes <= partitions
    meta = scaled["spec"]["triggers"][0]["metadata"]
    assert meta["consumerGroup"] == f"{settings.kafka.group_prefix}.{pipeline.name}"
    assert meta["topic"] == pipeline.input_topic
    assert meta["bootstrapServers"] == settings.kafka.bootstrap_servers

    if kind == "StatefulSet":
        assert settings.worker.exactly_once
        assert settings.worker.instance_id == SAMPLE_POD  # the pod name: its ordinal
        assert workload["spec"]["serviceName"] == _one(docs, "Service")["metadata"]["name"]
    else:
        assert not settings.worker.exactly_once


def test_probe_paths_answer_json_on_a_served_metrics_port() -> None:
    """Each path the manifests probe is answered by the worker's probe, not by /metrics."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    heartbeat = Heartbeat("invoices")
    heartbeat.assigned(())
    stop = Metrics().serve(port, probe=WorkerProbe(heartbeat, liveness_timeout_s=60))
    try:
        for path in PATHS:
            answer = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert answer.status_code == 200, path
            assert answer.headers["content-type"] == "application/json", path
    finally:
        stop()
