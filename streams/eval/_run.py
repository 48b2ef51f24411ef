"""Run samples through the real pipeline stages for one model configuration, no Kafka."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.app import build_pipeline
from streams.contract import ContractVersion
from streams.encode import decode_wire
from streams.envelope import RawRecord
from streams.errors import ConfigError, Route, StreamsError
from streams.eval._models import ModelConfig
from streams.eval._samples import Sample
from streams.pipeline import Outcome, Pipeline
from streams.settings import load_settings

__all__ = ["SampleResult", "evaluate"]

_PIPELINE = "eval"

#: Called after each sample: (index from 1, total, the sample's result).
Progress = Callable[[int, int, "SampleResult"], None]


@dataclass(frozen=True)
class SampleResult:
    """What one sample became: its route, the record read back, and what it cost."""

    name: str
    route: str
    reason: str
    expected: dict[str, Any]
    record: dict[str, Any] | None
    errors: tuple[str, ...]
    attempts: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    seconds: float
    coverage: float | None
    repairs: tuple[str, ...]


def build_eval_pipeline(
    contract: ContractVersion, model: ModelConfig, *, search_path: Sequence[Path] = ()
) -> Pipeline:
    """The pipeline ``streams run`` would build for ``model``, minus Kafka (no cache, no spend)."""
    settings = load_settings(
        model.config,
        llm=model.llm,
        budgets={**model.budgets, "spend_cap_usd": None, "tenant_spend_cap_usd": None},
        registry={"url": "mock://"},
        worker={"cache": False},
        pipelines=[
            {
                "name": _PIPELINE,
                "input_topic": f"{_PIPELINE}.raw",
                "contract": contract.name,
                "contract_version": contract.version,
                "contract_search_path": [str(p) for p in search_path],
            }
        ],
    )
    # registry.url mock://: the in-process stand-in, built by streams.kafka.clients
    return build_pipeline(settings, _PIPELINE)


async def evaluate(
    contract: ContractVersion,
    samples: Sequence[Sample],
    model: ModelConfig,
    *,
    search_path: Sequence[Path] = (),
    progress: Progress | None = None,
) -> list[SampleResult]:
    """Each sample through the pipeline for ``model``, one at a time, in order."""
    pipeline = build_eval_pipeline(contract, model, search_path=search_path)
    provider = pipeline.extractor.provider
    try:
        probe = getattr(provider, "probe", None)
        if probe is not None:
            try:
                await probe()
            except StreamsError as exc:
                raise ConfigError(
                    f"model {model.label}: the endpoint did not answer a probe ({exc}); "
                    "start the server or fix base_url and model"
                ) from None
        results: list[SampleResult] = []
        for index, sample in enumerate(samples):
            raw = RawRecord(
                topic=f"{_PIPELINE}.raw",
                partition=0,
                offset=index,
                key=sample.name.encode(),
                value=sample.text,
            )
            started = time.monotonic()
            outcome = await pipeline.process(raw)
            result = _result(pipeline, sample, outcome, time.monotonic() - started)
            results.append(result)
            if progress is not None:
                progress(index + 1, len(samples), result)
        return results
    finally:
        await provider.aclose()


def _result(pipeline: Pipeline, sample: Sample, outcome: Outcome, seconds: float) -> SampleResult:
    record: dict[str, Any] | None = None
    errors: tuple[str, ...] = ()
    if outcome.route is Route.VALID:
        _, datum = decode_wire(outcome.value, pipeline.encoder.schema_dict)
        fields = pipeline.contract.model.model_fields
        record = {name: datum.get(name) for name in fields}
    else:
        envelope = json.loads(outcome.value)
        errors = tuple(f"{e.get('path')}:{e.get('type')}" for e in envelope.get("errors") or ())
    headers = dict(outcome.headers)
    repairs = headers.get("streams.repairs", b"").decode()
    return SampleResult(
        name=sample.name,
        route=outcome.route.value,
        reason=outcome.reason,
        expected=sample.expected,
        record=record,
        errors=errors,
        attempts=outcome.attempts,
        input_tokens=outcome.input_tokens,
        output_tokens=outcome.output_tokens,
        cost_usd=outcome.cost_usd,
        seconds=seconds,
        coverage=outcome.coverage,
        repairs=tuple(r for r in repairs.split(",") if r),
    )
