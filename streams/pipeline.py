"""One record in, exactly one outcome out. No Kafka client is imported here.

    raw ─► decode ─► budget gate ─► call ─► repair ─► validate ─► (re-ask) ─► encode ─► Outcome

:meth:`Pipeline.process` never raises for anything a record can cause: every
error is looked up in :data:`streams.errors.ROUTES` and becomes an
:class:`Outcome` for one of the four topics, or ``Route.PAUSE`` when the
provider is down (the worker retries that record later and does not commit it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from contracts.base import ContractVersion
from streams.avro_schema import grounding_datum as grounding_to_datum
from streams.encode import AvroWireEncoder, envelope_bytes, raw_b64
from streams.envelope import Document, RawRecord, decode
from streams.errors import (
    BudgetExceeded,
    ContractViolation,
    OutputError,
    ProviderError,
    Route,
    StreamsError,
    route_for,
)
from streams.extract import Attempt, Extraction, Extractor
from streams.settings import PipelineSettings

__all__ = ["Outcome", "Pipeline"]

log = logging.getLogger("streams.pipeline")

Clock = Callable[[], float]


@dataclass(frozen=True)
class Outcome:
    """The single output of one input record."""

    route: Route
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    reason: str
    document_id: str | None
    attempts: int = 0
    cost_usd: float = 0.0
    error_type: str | None = None
    attempt_log: tuple[Attempt, ...] = ()
    request_statuses: tuple[str, ...] = ()
    cache_hit: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    coverage: float | None = None


class Pipeline:
    """A configured pipeline: its contract, extractor and encoder, bound to topics."""

    def __init__(
        self,
        settings: PipelineSettings,
        contract: ContractVersion,
        extractor: Extractor,
        encoder: AvroWireEncoder,
        *,
        clock: Clock = time.time,
    ) -> None:
        if settings.prompt_version and settings.prompt_version != contract.prompt.version:
            raise ValueError(
                f"pipeline {settings.name} pins prompt {settings.prompt_version} but contract "
                f"{contract.ref} has prompt {contract.prompt.version}"
            )
        self.settings = settings
        self.contract = contract
        self.extractor = extractor
        self.encoder = encoder
        self._clock = clock

    @property
    def name(self) -> str:
        return self.settings.name

    async def process(self, raw: RawRecord) -> Outcome:
        """Turn one raw record into exactly one :class:`Outcome`."""
        started = time.perf_counter()
        document: Document | None = None
        try:
            document = decode(raw)
            extraction = await self.extractor.extract(document)
            return self._valid(raw, document, extraction, started)
        except StreamsError as exc:
            return self._failed(raw, document, exc, route_for(exc))
        except Exception as exc:  # a bug in a stage: dead-letter it, never crash or drop
            log.exception("unexpected error in pipeline %s at %s", self.name, raw.coordinates)
            return self._failed(raw, document, exc, Route.DLQ)

    # -- outcomes ---------------------------------------------------------------------

    def _key(self, raw: RawRecord, document: Document | None) -> bytes:
        if raw.key is not None:
            return raw.key
        if document is not None and document.envelope:
            return document.id.encode("utf-8")
        return raw.coordinates.encode("utf-8")

    def _base_headers(self, raw: RawRecord, route: Route) -> list[tuple[str, bytes]]:
        return [
            ("streams.route", route.value.encode()),
            ("streams.pipeline", self.name.encode()),
            ("streams.contract", self.contract.ref.encode()),
            ("streams.prompt-version", self.contract.prompt.version.encode()),
            ("streams.source", raw.coordinates.encode()),
        ]

    def provenance(
        self, raw: RawRecord, document: Document, extraction: Extraction, started: float
    ) -> dict[str, Any]:
        provider = self.extractor.provider
        return {
            "pipeline": self.name,
            "contract": self.contract.name,
            "contract_version": self.contract.version,
            "schema_id": None,
            "prompt_version": self.contract.prompt.version,
            "provider": provider.name,
            "model_requested": provider.model,
            "model_reported": extraction.model_reported,
            "attempts": len(extraction.attempts),
            "input_tokens": extraction.input_tokens,
            "output_tokens": extraction.output_tokens,
            "cost_usd": extraction.cost_usd,
            "latency_ms": (time.perf_counter() - started) * 1000,
            "cache_hit": extraction.cache_hit,
            "repairs": list(extraction.repairs),
            "source_topic": raw.topic,
            "source_partition": raw.partition,
            "source_offset": raw.offset,
            "source_key": raw.key_str,
            "input_sha256": document.sha256,
            "processed_at": int(self._clock() * 1000),
        }

    def _valid(
        self, raw: RawRecord, document: Document, extraction: Extraction, started: float
    ) -> Outcome:
        prov = self.provenance(raw, document, extraction, started)
        grounding = extraction.grounding
        grounding_datum = grounding_to_datum(grounding) if grounding is not None else None
        try:
            value = self.encoder.encode(extraction.record, prov, grounding_datum)
        except StreamsError as exc:
            return self._failed(raw, document, exc, route_for(exc))
        headers = self._base_headers(raw, Route.VALID)
        headers += [
            ("streams.schema-id", str(self.encoder.schema_id).encode()),
            ("streams.model", str(prov["model_reported"]).encode()),
            ("streams.attempts", str(prov["attempts"]).encode()),
            ("streams.cost-usd", f"{extraction.cost_usd:.8f}".encode()),
            ("streams.input-sha256", document.sha256.encode()),
            ("streams.repairs", ",".join(extraction.repairs).encode()),
            ("streams.cache-hit", b"true" if extraction.cache_hit else b"false"),
        ]
        if grounding is not None:
            headers.append(("streams.grounding-coverage", f"{grounding.coverage:.4f}".encode()))
        return Outcome(
            route=Route.VALID,
            topic=self.settings.topic(Route.VALID.value),
            key=self._key(raw, document),
            value=value,
            headers=tuple(headers),
            reason="valid",
            document_id=document.id,
            attempts=len(extraction.attempts),
            cost_usd=extraction.cost_usd,
            attempt_log=extraction.attempts,
            request_statuses=extraction.statuses,
            cache_hit=extraction.cache_hit,
            input_tokens=extraction.input_tokens,
            output_tokens=extraction.output_tokens,
            coverage=grounding.coverage if grounding is not None else None,
        )

    def _failed(
        self, raw: RawRecord, document: Document | None, exc: BaseException, route: Route
    ) -> Outcome:
        ctx: dict[str, Any] = exc.context if isinstance(exc, StreamsError) else {}
        attempts: tuple[Attempt, ...] = tuple(ctx.get("attempts", ()))
        errors = exc.errors if isinstance(exc, ContractViolation) else ctx.get("errors", ())
        reason = str(ctx.get("reason") or _reason(exc))
        body: dict[str, Any] = {
            "pipeline": self.name,
            "contract": self.contract.name,
            "contract_version": self.contract.version,
            "prompt_version": self.contract.prompt.version,
            "route": route.value,
            "reason": reason,
            "error_type": type(exc).__name__,
            "message": str(exc),
            "errors": [e.as_dict() for e in errors],
            "attempts": [a.as_dict() for a in attempts],
            "last_output": getattr(exc, "last_output", None) or ctx.get("last_output"),
            "cost_usd": float(ctx.get("cost_usd", 0.0)),
            "source": {
                "topic": raw.topic,
                "partition": raw.partition,
                "offset": raw.offset,
                "key": raw.key_str,
                "timestamp_ms": raw.timestamp_ms,
            },
            "processed_at": int(self._clock() * 1000),
        }
        if isinstance(exc, BudgetExceeded):
            body["budget"] = {"name": exc.budget, "limit": exc.limit, "used": exc.used}
        if isinstance(exc, ProviderError):
            body["provider_status"] = exc.status
        if document is not None:
            body["document"] = {
                "id": document.id,
                "text": document.text,
                "sha256": document.sha256,
                "source": document.source,
                "tenant": document.tenant,
            }
        else:
            body["raw_value_b64"] = raw_b64(raw.value)
        value = b"" if route is Route.PAUSE else envelope_bytes(route.value, body)
        headers = self._base_headers(raw, route)
        headers.append(("streams.error", type(exc).__name__.encode()))
        headers.append(("streams.reason", reason.encode()))
        return Outcome(
            route=route,
            topic=self.settings.topic(route.value),
            key=self._key(raw, document),
            value=value,
            headers=tuple(headers),
            reason=reason,
            document_id=document.id if document else None,
            attempts=len(attempts),
            cost_usd=float(ctx.get("cost_usd", 0.0)),
            error_type=type(exc).__name__,
            attempt_log=attempts,
            request_statuses=tuple(ctx.get("statuses", ())),
            input_tokens=int(ctx.get("input_tokens", 0)),
            output_tokens=int(ctx.get("output_tokens", 0)),
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BudgetExceeded):
        return f"budget:{exc.budget}"
    if isinstance(exc, ContractViolation):
        kinds = sorted({f"{e.path}:{e.type}" for e in exc.errors})
        return "contract:" + ",".join(kinds[:5])
    if isinstance(exc, OutputError):
        return type(exc).__name__
    if isinstance(exc, ProviderError):
        return f"provider:{exc.status or type(exc).__name__}"
    return type(exc).__name__
