"""Wiring: build a pipeline and its worker from settings. No per-record logic here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.contract import ContractVersion, resolve
from streams.encode import AvroWireEncoder
from streams.errors import ConfigError
from streams.extract import Extractor
from streams.guard import ProviderGuard
from streams.health import CachedCheck, Heartbeat, RegistryCheck, WorkerProbe
from streams.kafka import clients
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.providers import CapabilityProfile, build_provider, unenforced
from streams.providers.base import Provider
from streams.settings import Settings
from streams.state import KafkaTable, SpendLedger
from streams.state.spend import SpendCaps
from streams.worker import OutcomeHook, Resource, Worker

__all__ = [
    "build_pipeline",
    "build_worker",
    "pipeline_resources",
    "registry_check",
    "registry_client",
    "run_worker",
]

log = logging.getLogger("streams.app")


def registry_client(settings: Settings, **conf: Any) -> SchemaRegistryClient:
    return clients.schema_registry_client(settings.registry, conf)


def registry_check(settings: Settings) -> RegistryCheck | None:
    """What ``/readyz`` asks the schema registry (None for the in-process ``mock://``)."""
    if settings.registry.url.startswith("mock://"):
        return None

    def ping() -> None:
        # One quick request, no retries: a probe must answer within the kubelet's timeout.
        client = registry_client(settings, timeout=2, **{"max.retries": 0})
        try:
            client.get_subjects()
        finally:
            client.close()

    return CachedCheck(ping)


def check_registry(settings: Settings) -> None:
    """``streams run`` refuses the in-process ``mock://`` registry unless the config names it.

    A worker whose config forgot the registry would write schema ids that mean nothing to
    any consumer; named explicitly (a test, a demo), each worker process warns when it
    starts (:func:`warn_mock_registry`).
    """
    registry = settings.registry
    if registry.url.startswith("mock://") and "url" not in registry.model_fields_set:
        raise ConfigError(
            "registry.url is not set, and the in-process mock:// registry writes schema ids "
            "no consumer can resolve: set registry.url to your Schema Registry "
            '(or to "mock://" explicitly, for a test)'
        )


def warn_mock_registry(settings: Settings) -> None:
    """One warning from a worker process that runs with the ``mock://`` registry."""
    if not settings.registry.url.startswith("mock://"):
        return
    log.warning(
        "registry.url is mock://: the valid topic's schema ids resolve in no real registry; "
        "use it only for tests"
    )


def _is_mock(client: SchemaRegistryClient) -> bool:
    # confluent-kafka keeps its mock client in a private module; recognise it by name.
    return type(client).__name__.startswith("Mock")


def build_pipeline(
    settings: Settings,
    name: str,
    *,
    provider: Provider | None = None,
    registry: SchemaRegistryClient | None = None,
) -> Pipeline:
    """Build pipeline ``name``; every config mistake surfaces here as a ConfigError."""
    cfg = settings.pipeline(name)
    try:
        contract = resolve(cfg.contract, cfg.contract_version, search_path=cfg.contract_search_path)
    except ConfigError as exc:
        raise ConfigError(f"pipeline {name}: {exc}") from None
    if provider is None:
        provider = build_provider(
            settings.llm.provider,
            base_url=settings.llm.base_url,
            model=settings.llm.model,
            api_key=settings.llm.api_key,
            timeout_s=settings.llm.timeout_s,
            max_connections=settings.llm.max_connections,
            schema_profile=settings.llm.schema_profile,
        )
    log_unenforced(contract, provider)
    budgets = settings.budgets
    cache = KafkaTable(
        settings.kafka, cfg.topic("cache"), max_entries=settings.worker.cache_max_entries
    )
    spend = None
    if budgets.spend_cap_usd is not None or budgets.tenant_spend_cap_usd is not None:
        spend = SpendLedger(
            settings.kafka,
            cfg.topic("spend"),
            SpendCaps(
                pipeline_usd=budgets.spend_cap_usd,
                tenant_default_usd=budgets.tenant_spend_cap_usd,
                tenants=tuple(sorted(budgets.tenant_caps.items())),
                window_s=budgets.spend_window_s,
                claim_usd=budgets.spend_claim_usd,
            ),
            worker_id=settings.worker.instance_id,
        )
    price = settings.pricing.get(provider.model)
    if spend is not None and price is None:
        raise ConfigError(
            f"a spend cap is set but model {provider.model!r} has no [pricing] entry; "
            "add its prices so spend can be measured"
        )
    worker = settings.worker
    guard = ProviderGuard(
        cool_off_s=worker.pause_backoff_s,
        window_s=worker.breaker_window_s,
        failure_ratio=worker.breaker_failure_ratio,
        min_records=worker.breaker_min_records,
        probe=getattr(provider, "probe", None),
    )
    extractor = Extractor(
        contract,
        provider,
        budgets,
        price=price,
        cache=cache if worker.cache else None,
        spend=spend,
        temperature=settings.llm.temperature,
        guard=guard,
        cache_signing_key=None
        if worker.cache_signing_key is None
        else worker.cache_signing_key.get_secret_value().encode(),
    )
    client = registry or registry_client(settings)
    encoder = AvroWireEncoder(
        contract,
        client,
        f"{cfg.topic('valid')}-value",
        manage_compatibility=not _is_mock(client),
    )
    try:
        encoder.register()
    finally:
        if registry is None and not _is_mock(client):
            client.close()  # the schema id is cached; no further registry calls
    try:
        return Pipeline(
            cfg,
            contract,
            extractor,
            encoder,
            max_embedded_bytes=worker.max_embedded_input_bytes,
            max_header_bytes=worker.max_header_bytes,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def log_unenforced(contract: ContractVersion, provider: Provider) -> None:
    """Say once, at start-up, which contract constraints the target will not enforce."""
    profile = getattr(provider, "profile", None)
    if not isinstance(profile, CapabilityProfile):
        return
    lines = unenforced(contract.json_schema(), profile)
    if lines:
        log.info(
            "contract %s on %s (schema profile %s): %d constraint(s) are not enforced by the "
            "decoder, only by validation (a broken one costs a re-ask): %s",
            contract.ref,
            provider.name,
            profile.ident,
            len(lines),
            "; ".join(lines),
        )


def build_worker(
    settings: Settings,
    name: str,
    *,
    provider: Provider | None = None,
    registry: SchemaRegistryClient | None = None,
    metrics: Metrics | None = None,
    on_outcome: OutcomeHook | None = None,
) -> Worker:
    pipeline = build_pipeline(settings, name, provider=provider, registry=registry)
    return Worker(
        settings,
        pipeline,
        metrics=metrics,
        on_outcome=on_outcome,
        resources=pipeline_resources(pipeline),
    )


def pipeline_resources(pipeline: Pipeline) -> tuple[Resource, ...]:
    """What an engine starts before consuming and stops after: the Kafka-backed state."""
    resources: list[Resource] = []
    extractor = pipeline.extractor
    if isinstance(extractor.cache, KafkaTable):
        resources.append(extractor.cache)
    if isinstance(extractor.spend, SpendLedger):
        resources.append(extractor.spend)
    return tuple(resources)


async def run_worker(
    settings: Settings,
    name: str,
    stop: asyncio.Event,
    *,
    serve_metrics: bool = True,
    health_file: Path | None = None,
) -> None:
    """Run one pipeline's worker until ``stop`` is set.

    ``serve_metrics=False`` is for a child of ``streams run --processes N``
    (:mod:`streams.supervisor`): its metrics go to the supervisor's multiprocess
    directory, its heartbeat to ``health_file``, and the supervisor serves the one
    ``worker.metrics_port`` with ``/metrics``, ``/livez`` and ``/readyz``.
    """
    metrics = Metrics()
    worker_cfg = settings.worker
    heartbeat = Heartbeat(name, file=health_file, block_loop_s=worker_cfg.debug_block_loop_s)
    stop_metrics = None
    if serve_metrics and worker_cfg.metrics_port:
        probe = WorkerProbe(
            heartbeat,
            liveness_timeout_s=worker_cfg.liveness_timeout_s,
            registry=registry_check(settings),
        )
        stop_metrics = metrics.serve(worker_cfg.metrics_port, worker_cfg.metrics_host, probe=probe)
    beat = asyncio.create_task(heartbeat.run())
    try:
        worker = build_worker(settings, name, metrics=metrics)
        heartbeat.guard = worker.guard
        worker.on_assigned = heartbeat.assigned
        try:
            await worker.run(stop)
        finally:
            await worker.pipeline.extractor.provider.aclose()
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        heartbeat.close()
        if stop_metrics is not None:
            stop_metrics()
