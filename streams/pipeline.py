"""One record in, exactly one outcome out. No Kafka client is imported here.

    raw ─► decode ─► budget gate ─► call ─► repair ─► validate ─► (re-ask) ─► encode ─► Outcome

:meth:`Pipeline.process` never raises for anything a record can cause: every
error is looked up in :data:`streams.errors.ROUTES` and becomes an
:class:`Outcome` for one of the four topics. A provider outage or a deployment
fault never becomes an outcome: the record waits inside the extractor (see
:mod:`streams.guard`).

Outputs always fit. Envelopes embed at most ``max_embedded_bytes`` of the input
(and of the last model output) and then say ``truncated: true``; they always keep
the reference that fetches the original (source topic, partition, offset and the
input's sha256). :meth:`Pipeline.too_large` is the fallback for an outcome the
output topic still refuses: a DLQ envelope with no embedded input at all.

What a consumed record can look like, and what happens to it:

    record                                     route
    -----------------------------------------  ---------------------------------------
    null value (a tombstone)                   dlq, reason ``tombstone``
    null key                                   processed; ordered by offset only
    header with a null value                   tolerated; kept as null in the envelope
    header key that is not UTF-8               tolerated; kept, backslash-escaped
    headers over ``max_header_bytes`` in all   dlq, reason ``headers_too_large``
    value over 4 MiB                           dlq, reason ``too_large``
    value not UTF-8, NUL bytes, empty          dlq, ``not_utf8`` / ``binary`` / ``empty``
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.avro_schema import grounding_datum as grounding_to_datum
from streams.contract import ContractVersion
from streams.encode import AvroWireEncoder, envelope_bytes, raw_b64
from streams.envelope import Document, RawRecord, decode
from streams.errors import (
    BudgetExceeded,
    ContractViolation,
    OutputError,
    OutputTooLarge,
    PoisonRecord,
    ProviderError,
    ProviderRequestTooLarge,
    Route,
    StreamsError,
    route_for,
)
from streams.extract import Attempt, Extraction, Extractor
from streams.settings import PipelineSettings

__all__ = ["DEFAULT_MAX_EMBEDDED_BYTES", "DEFAULT_MAX_HEADER_BYTES", "Outcome", "Pipeline"]

log = logging.getLogger("streams.pipeline")

Clock = Callable[[], float]

#: How much of the input (and of the last model output) an envelope carries.
DEFAULT_MAX_EMBEDDED_BYTES = 256 * 1024
#: Input headers larger than this in total (keys plus values) dead-letter the record.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024


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

    @property
    def size(self) -> int:
        """Bytes this outcome takes in a produce request (value, key, headers)."""
        return (
            len(self.value) + len(self.key or b"") + sum(len(k) + len(v) for k, v in self.headers)
        )


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
        max_embedded_bytes: int = DEFAULT_MAX_EMBEDDED_BYTES,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
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
        self.max_embedded_bytes = max_embedded_bytes
        self.max_header_bytes = max_header_bytes

    @property
    def name(self) -> str:
        return self.settings.name

    async def process(self, raw: RawRecord) -> Outcome:
        """Turn one raw record into exactly one :class:`Outcome`."""
        started = time.perf_counter()
        document: Document | None = None
        try:
            self._check_headers(raw)
            document = decode(raw)
            extraction = await self.extractor.extract(document)
            return self._valid(raw, document, extraction, started)
        except StreamsError as exc:
            return self._failed(raw, document, exc, route_for(exc))
        except Exception as exc:  # a bug in a stage: dead-letter it, never crash or drop
            log.exception("unexpected error in pipeline %s at %s", self.name, raw.coordinates)
            return self._failed(raw, document, exc, Route.DLQ)

    def _check_headers(self, raw: RawRecord) -> None:
        size = _header_bytes(raw)
        if size > self.max_header_bytes:
            raise PoisonRecord(
                f"record headers are {size} bytes; the limit is {self.max_header_bytes} "
                "(worker.max_header_bytes)",
                reason="headers_too_large",
            )

    def too_large(self, raw: RawRecord, outcome: Outcome, limit: int) -> Outcome:
        """The fallback for ``outcome`` when it is over ``limit`` bytes: a small DLQ envelope.

        It embeds no input and no model output, only the reference to the original.
        """
        exc = OutputTooLarge(
            f"the {outcome.route.value} outcome is {outcome.size} bytes; the output topic "
            f"accepts {limit} (kafka.max_request_size / max.message.bytes)",
            reason="output_too_large",
            statuses=outcome.request_statuses,
            cost_usd=outcome.cost_usd,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
        )
        return self._failed(raw, None, exc, Route.DLQ, embed=False, key_from=outcome.key)

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
        self,
        raw: RawRecord,
        document: Document | None,
        exc: BaseException,
        route: Route,
        *,
        embed: bool = True,
        key_from: bytes | None = None,
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
        if isinstance(exc, ProviderRequestTooLarge):
            body["budget"] = {
                "name": "provider_request_too_large",
                "limit": float(exc.limit or 0),
                "used": float(exc.requested or 0),
            }
        if isinstance(exc, ProviderError):
            body["provider_status"] = exc.status
        body["provider_statuses"] = [str(s) for s in ctx.get("statuses", ())]
        header_bytes = _header_bytes(raw)
        fits = embed and header_bytes <= self.max_header_bytes
        body["headers"] = _lineage_headers(raw) if fits else []
        body["input_sha256"] = document.sha256 if document is not None else _raw_sha256(raw.value)
        body["input_bytes"] = len(raw.value) if raw.value is not None else None
        limit = self.max_embedded_bytes if embed else 0
        truncated = bool(raw.headers) and not fits
        last_output = body["last_output"]
        if isinstance(last_output, str):
            body["last_output"], cut = _clip_text(last_output, limit)
            truncated |= cut
        if document is not None:
            text, cut = _clip_text(document.text, limit)
            truncated |= cut
            body["document"] = {
                "id": document.id,
                "text": text,
                "sha256": document.sha256,
                "source": document.source,
                "tenant": document.tenant,
            }
        elif raw.value is not None:
            truncated |= len(raw.value) > limit
            body["raw_value_b64"] = raw_b64(raw.value[:limit]) if limit else None
        else:
            body["raw_value_b64"] = None
        body["truncated"] = truncated
        value = envelope_bytes(route.value, body)
        headers = self._base_headers(raw, route)
        headers.append(("streams.error", type(exc).__name__.encode()))
        headers.append(("streams.reason", reason.encode()))
        return Outcome(
            route=route,
            topic=self.settings.topic(route.value),
            key=key_from if key_from is not None else self._key(raw, document),
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


def _clip_text(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` UTF-8 bytes (never mid-character), and whether cut."""
    if len(text) * 4 <= limit:  # cheap: no character is wider than 4 bytes
        return text, False
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", errors="ignore"), True


def _header_bytes(raw: RawRecord) -> int:
    return sum(len(k.encode("utf-8", "surrogateescape")) + len(v or b"") for k, v in raw.headers)


def _raw_sha256(value: bytes | None) -> str | None:
    return None if value is None else hashlib.sha256(value).hexdigest()


def _lineage_headers(raw: RawRecord) -> list[dict[str, str | None]]:
    """The input's headers as the envelope keeps them: null values stay null."""
    return [{"key": key, "value_b64": raw_b64(value)} for key, value in raw.headers]
