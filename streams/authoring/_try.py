"""``streams contract try FILE --contract REF``: one document through the pipeline, no Kafka.

The document goes through the same stages a worker runs (decode, the budget
gate, the constrained call to the configured provider, repair, validation,
grounding and Avro encoding) with no cache, no spend ledger and an in-process
``mock://`` registry. What it prints is what would be produced: the route, and
for a valid record the record, its provenance and the grounding of each field;
otherwise the envelope with its field errors. This is the loop in which a
prompt is iterated.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from streams.contract import Contract, resolve
from streams.encode import AvroWireEncoder, decode_wire
from streams.envelope import RawRecord
from streams.errors import ConfigError, Route
from streams.extract import Extractor
from streams.kafka import clients
from streams.pipeline import Outcome, Pipeline
from streams.providers import build_provider
from streams.settings import PipelineSettings, RegistrySettings, Settings

__all__ = ["try_document"]

_TOPIC = "contract-try"


async def try_document(
    path: Path,
    settings: Settings,
    ref: str,
    version: int | None,
    *,
    search_path: Sequence[Path] = (),
    timeout_s: float = 120.0,
    out: TextIO,
) -> Outcome:
    """Run ``path`` through contract ``ref`` and print what the pipeline would produce."""
    contract = resolve(ref, version, search_path=search_path)
    cfg = PipelineSettings(
        name=_TOPIC,
        input_topic=f"{_TOPIC}.raw",
        contract=ref,
        contract_version=contract.version,
        contract_search_path=list(search_path),
    )
    provider = build_provider(
        settings.llm.provider,
        base_url=settings.llm.base_url,
        model=settings.llm.model,
        api_key=settings.llm.api_key,
        timeout_s=settings.llm.timeout_s,
        max_connections=settings.llm.max_connections,
    )
    try:
        extractor = Extractor(
            contract,
            provider,
            settings.budgets,
            price=settings.pricing.get(provider.model),
            temperature=settings.llm.temperature,
        )
        encoder = AvroWireEncoder(
            contract,
            clients.schema_registry_client(RegistrySettings(url="mock://contract-try")),
            f"{cfg.topic('valid')}-value",
            manage_compatibility=False,
        )
        pipeline = Pipeline(cfg, contract, extractor, encoder)
        raw = RawRecord(
            topic=cfg.input_topic,
            partition=0,
            offset=0,
            key=path.stem.encode(),
            value=await asyncio.to_thread(path.read_bytes),
        )
        # One document cannot tell a provider that is down from one that is slow, and the
        # outage guard would wait for it indefinitely: the whole try is bounded instead.
        try:
            outcome = await asyncio.wait_for(pipeline.process(raw), timeout_s)
        except TimeoutError:
            raise ConfigError(
                f"no usable answer from {settings.llm.base_url} within {timeout_s:g}s; "
                "is the provider running (llm.base_url, llm.model)?"
            ) from None
    finally:
        await provider.aclose()
    _print(outcome, contract, encoder, out)
    return outcome


def _print(outcome: Outcome, contract: Contract, encoder: AvroWireEncoder, out: TextIO) -> None:
    print(f"route: {outcome.route.value} ({outcome.reason})", file=out)
    print(f"contract: {contract.ref}  prompt: {contract.prompt.version}", file=out)
    if outcome.route is not Route.VALID:
        envelope = json.loads(outcome.value)
        print("envelope:", file=out)
        print(_dump(envelope), file=out)
        return
    _, datum = decode_wire(outcome.value, encoder.schema_dict)
    provenance = datum.pop("provenance")
    grounding = datum.pop("grounding")
    print("record:", file=out)
    print(_dump(datum), file=out)
    print("provenance:", file=out)
    print(_dump(provenance), file=out)
    if grounding is None:
        print("grounding: not measured", file=out)
        return
    print(f"grounding: coverage {grounding['coverage']:.2f}", file=out)
    for field in grounding["fields"]:
        where = f"at {field['start']}..{field['end']}" if field["found"] else "not in the source"
        print(f"  {field['path']:<32} {field['method']:<16} {where}", file=out)


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
