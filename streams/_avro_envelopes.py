"""Avro schemas of the envelopes on ``<pipeline>.invalid``, ``.over-budget`` and ``.dlq``.

The pipeline writes these envelopes as JSON today (:func:`streams.encode.envelope_bytes`,
body built in ``Pipeline._failed``). The schemas describe exactly that body, so
a sink that wants Avro, or a registry that wants to know the shape, gets the same
fields. All three kinds share one shape; which optional parts are set differs:

* ``invalid``: ``errors``, ``attempts`` and ``last_output`` say why the answer failed;
* ``over-budget``: ``budget`` names the cap, ``document`` keeps the full input for redrive;
* ``dlq``: ``document`` when the input decoded, else ``raw_value_b64``; ``provider_status``
  when the provider refused the request.

Every kind embeds at most ``worker.max_embedded_input_bytes`` of the input and of
the last output; ``truncated`` says when it cut, and ``source`` plus
``input_sha256`` are the reference that fetches the original (``streams redrive``
re-reads it by offset). ``headers`` keeps the input's headers (a null value stays
null) and ``provider_statuses`` the status of every provider request.

:func:`envelope_datum` turns a parsed JSON envelope into the datum these schemas
write (absent optional parts become null, ``document.source`` becomes a JSON string).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any, Final

from streams.errors import ConfigError

__all__ = ["ENVELOPE_KINDS", "ENVELOPE_SCHEMA_VERSION", "envelope_datum", "envelope_schema"]

#: Version of the envelope shape; the JSON envelopes carry it as ``envelope_version``.
ENVELOPE_SCHEMA_VERSION: Final = 1

_NAMESPACE = "streams.envelopes"

#: Envelope kind (the route it is written to) -> record name and what it means.
ENVELOPE_KINDS: Final[Mapping[str, tuple[str, str]]] = {
    "invalid": (
        "InvalidEnvelope",
        "A record whose model answers never satisfied the contract: the field errors, "
        "every attempt and the last output, with the input for redrive.",
    ),
    "over-budget": (
        "OverBudgetEnvelope",
        "A record not extracted because a token or spend budget was exhausted: which "
        "budget, its limit and use, with the full input for redrive.",
    ),
    "dlq": (
        "DeadLetterEnvelope",
        "A record that cannot be processed: undecodable input, a request the provider "
        "refused or a record that could not be encoded, with the input or its raw bytes.",
    ),
}

_OPTIONAL_PARTS: Final = (
    "budget",
    "provider_status",
    "document",
    "raw_value_b64",
    "input_sha256",
    "input_bytes",
)

#: Fields added after the first envelopes were written, with the value older ones imply.
_ADDED_DEFAULTS: Final[Mapping[str, Any]] = {
    "provider_statuses": [],
    "headers": [],
    "truncated": False,
}


def _field(
    name: str, type_: Any, doc: str, *, optional: bool = False, default: Any = ...
) -> dict[str, Any]:
    if optional:
        return {"name": name, "type": ["null", type_], "default": None, "doc": doc}
    if default is not ...:
        return {"name": name, "type": type_, "default": default, "doc": doc}
    return {"name": name, "type": type_, "doc": doc}


def _record(name: str, doc: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": _NAMESPACE, "doc": doc, "fields": fields}


_FIELD_ERROR = _record(
    "FieldError",
    "One field-level validation error.",
    [
        _field("path", "string", "Dotted path of the field, e.g. line_items.0.amount."),
        _field("type", "string", "Error type, e.g. total_mismatch or missing."),
        _field("message", "string", "What is wrong, in words a re-ask can use."),
        _field("value", "string", "The offending value as text.", optional=True),
    ],
)

_ATTEMPT = _record(
    "Attempt",
    "One model call for the record and why its answer was or was not accepted.",
    [
        _field("number", "int", "1 for the first call, then one more per re-ask."),
        _field("input_tokens", "long", "Prompt tokens of this call."),
        _field("output_tokens", "long", "Completion tokens of this call."),
        _field("finish_reason", "string", "Why the model stopped, as the provider said."),
        _field("model_reported", "string", "Model name and version the provider reported."),
        _field("latency_ms", "double", "Wall time of this call, in milliseconds."),
        _field("outcome", "string", "valid, truncated, malformed or contract_violation."),
        _field(
            "errors",
            {"type": "array", "items": f"{_NAMESPACE}.FieldError"},
            "Field errors of this attempt's answer.",
        ),
        _field("transient_retries", "int", "Transient failures retried within this attempt."),
    ],
)

_SOURCE = _record(
    "Source",
    "The input record's coordinates.",
    [
        _field("topic", "string", "Topic of the input record."),
        _field("partition", "int", "Partition of the input record."),
        _field("offset", "long", "Offset of the input record."),
        _field("key", "string", "Key, decoded as UTF-8; null when it had none.", optional=True),
        _field(
            "timestamp_ms",
            {"type": "long", "logicalType": "timestamp-millis"},
            "Kafka timestamp of the input record; null when it had none.",
            optional=True,
        ),
    ],
)

_BUDGET = _record(
    "Budget",
    "The budget that was exhausted.",
    [
        _field("name", "string", "Which budget, e.g. record_tokens or spend_cap."),
        _field("limit", "double", "Its limit, in tokens or US dollars."),
        _field("used", "double", "What was used or estimated when it tripped."),
    ],
)

_DOCUMENT = _record(
    "Document",
    "The decoded input, complete, so the record can be redriven.",
    [
        _field("id", "string", "Document id: the envelope's id, else the key or coordinates."),
        _field("text", "string", "The text extraction ran on."),
        _field("sha256", "string", "Hex SHA-256 of the normalised text."),
        _field("source", "string", "The input envelope's source metadata, as a JSON object."),
        _field("tenant", "string", "Tenant the input belongs to; null when none.", optional=True),
    ],
)

_HEADER = _record(
    "Header",
    "One header of the input record, as consumed.",
    [
        _field("key", "string", "Header key (not UTF-8 bytes are backslash-escaped)."),
        _field(
            "value_b64", "string", "Header value, base64; null when it had none.", optional=True
        ),
    ],
)

_FIELDS: Final = [
    _field("envelope", "string", "Envelope kind: the route, invalid, over-budget or dlq."),
    _field("envelope_version", "int", "Version of the envelope shape."),
    _field("pipeline", "string", "Name of the pipeline that routed the record."),
    _field("contract", "string", "Name of the contract extraction was for."),
    _field("contract_version", "int", "Version of that contract."),
    _field("prompt_version", "string", "Hash of the prompt that was (or would have been) sent."),
    _field("route", "string", "The outcome: invalid, over-budget or dlq."),
    _field("reason", "string", "Short machine-readable reason, e.g. budget:record_tokens."),
    _field("error_type", "string", "Class name of the error that routed the record."),
    _field("message", "string", "The error message."),
    _field("errors", {"type": "array", "items": _FIELD_ERROR}, "Field errors of the final answer."),
    _field("attempts", {"type": "array", "items": _ATTEMPT}, "Every model call, in order."),
    _field("last_output", "string", "The last raw model output, if any.", optional=True),
    _field("cost_usd", "double", "What the record's model calls cost, in US dollars."),
    _field("source", _SOURCE, "Where the input record was read from."),
    _field(
        "processed_at",
        {"type": "long", "logicalType": "timestamp-millis"},
        "When the envelope was produced (UTC).",
    ),
    _field("budget", _BUDGET, "The exhausted budget (over-budget only).", optional=True),
    _field("provider_status", "int", "HTTP status of a provider error.", optional=True),
    _field("document", _DOCUMENT, "The decoded input; null if it did not decode.", optional=True),
    _field(
        "raw_value_b64",
        "string",
        "The raw input bytes, base64, when it did not decode.",
        optional=True,
    ),
    _field(
        "provider_statuses",
        {"type": "array", "items": "string"},
        "Status of every provider request for the record, in order (e.g. 500, transport).",
        default=[],
    ),
    _field(
        "headers",
        {"type": "array", "items": _HEADER},
        "The input record's headers, kept for lineage and redrive.",
        default=[],
    ),
    _field(
        "input_sha256",
        "string",
        "SHA-256 of the input (normalised text if decoded).",
        optional=True,
    ),
    _field("input_bytes", "long", "Size of the input value in bytes.", optional=True),
    _field(
        "truncated",
        "boolean",
        "True when the embedded input or output was cut to the size limit; the original is "
        "at source.topic/partition/offset.",
        default=False,
    ),
]


def envelope_schema(kind: str) -> dict[str, Any]:
    """The Avro schema of one envelope kind (``invalid``, ``over-budget`` or ``dlq``).

    Returns a fresh copy each call; an unknown kind is a :class:`ConfigError`.
    """
    try:
        name, doc = ENVELOPE_KINDS[kind]
    except KeyError:
        raise ConfigError(
            f"unknown envelope kind {kind!r}; known: {', '.join(ENVELOPE_KINDS)}"
        ) from None
    return _record(name, doc, copy.deepcopy(_FIELDS))


def envelope_datum(envelope: Mapping[str, Any]) -> dict[str, Any]:
    """The datum for :func:`envelope_schema` from a parsed JSON envelope; the input is unchanged."""
    datum = copy.deepcopy(dict(envelope))
    for part in _OPTIONAL_PARTS:
        datum.setdefault(part, None)
    for part, default in _ADDED_DEFAULTS.items():
        datum.setdefault(part, copy.deepcopy(default))
    document = datum["document"]
    if document is not None and not isinstance(document.get("source"), str):
        document["source"] = json.dumps(
            document.get("source") or {}, ensure_ascii=False, sort_keys=True
        )
    return datum
