"""Strict validation of a repaired answer against its contract."""

from __future__ import annotations

import json
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from streams.contract import ContractVersion
from streams.errors import ContractViolation, FieldError

__all__ = ["field_errors", "validate"]

_MAX_VALUE_CHARS = 200


def validate(contract: ContractVersion, value: Any, *, raw_output: str) -> BaseModel:
    """Validate ``value`` strictly (JSON mode: no silent type coercion beyond JSON's own).

    Raises :class:`ContractViolation` carrying one :class:`FieldError` per problem.
    """
    try:
        body = orjson.dumps(value)
    except TypeError:  # an int past 64 bits: orjson refuses it, json does not
        body = json.dumps(value).encode()
    try:
        return contract.model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        errors = field_errors(exc)
        summary = "; ".join(f"{e.path}: {e.message}" for e in errors[:5])
        raise ContractViolation(
            f"{len(errors)} field error(s): {summary}", errors=errors, last_output=raw_output
        ) from exc


def field_errors(exc: ValidationError) -> list[FieldError]:
    """Flatten a pydantic error into path/type/message/value tuples."""
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or "$"
        raw_value = err.get("input")
        value: str | None
        if raw_value is None or isinstance(raw_value, dict):
            value = None if raw_value is None or path != "$" else "<object>"
        else:
            value = json.dumps(raw_value, default=str)[:_MAX_VALUE_CHARS]
        out.append(FieldError(path=path, type=err["type"], message=err["msg"], value=value))
    return out
