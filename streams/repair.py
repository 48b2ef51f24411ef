"""Deterministic repair: fix what can be fixed without another model call.

Runs before validation and before any re-ask. Every change it makes is named
in :attr:`Repaired.repairs`, which ends up in the record's provenance, so a
repaired record never pretends to be the model's verbatim answer.

Text repairs: code fences, prose around the object, trailing commas.
Value repairs, guided by the contract's JSON schema: numbers written as
strings with currency symbols or thousands separators, dates in common
non-ISO layouts, stray whitespace, ISO-code case.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.errors import MalformedOutput

__all__ = ["REPAIR_VERSION", "Repaired", "repair"]

#: Part of the cache key (:mod:`streams.cache_key`): a cached record is the repaired
#: answer, so a change to what any repair produces for some input bumps this, and the
#: old entries become misses instead of replaying the old repair.
REPAIR_VERSION = 2

# The info string after an opening fence ("```json"). The fence itself is found with
# str methods: "^\s*```...(.*?)\n?```\s*$" backtracks quadratically on a long blank run.
_FENCE_INFO = re.compile(r"[a-zA-Z0-9_-]*")
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
#: Relative tolerance of ``round_float_noise``: more than this apart is a different value.
_FLOAT_NOISE = 1e-9
#: A decimal written the way a ``pattern`` profile asks for it: digits, one optional point.
_PLAIN_DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
_NUMBER_STRING = re.compile(r"^[^\d\-+.,]*([-+]?[\d.,' ]*\d)[^\d]*$")
_DATE_FORMATS = (
    "%Y/%m/%d",
    "%d.%m.%Y",
    "%Y.%m.%d",
    "%B %d, %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%d %b %Y",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
)


#: Per schema (by identity, the schema kept alive with it): each node's resolved kinds
#: and types, so a record's walk does not resolve ``$ref``/``anyOf`` again. A handful of
#: schemas at most (one per contract version in use); the oldest is dropped past that.
_PLANS: dict[int, tuple[Mapping[str, Any], dict[int, Any]]] = {}
_MAX_PLANS = 16
#: The node of a value the schema says nothing about: one object, so the plan keeps one
#: entry for it (a fresh ``{}`` per unknown key would add one per record).
_NO_SCHEMA: Mapping[str, Any] = {}


def _plan_for(root: Mapping[str, Any]) -> dict[int, Any]:
    entry = _PLANS.get(id(root))
    if entry is None or entry[0] is not root:
        if len(_PLANS) >= _MAX_PLANS:
            del _PLANS[next(iter(_PLANS))]
        entry = _PLANS[id(root)] = (root, {})
    return entry[1]


@dataclass(frozen=True)
class Repaired:
    """The parsed answer after repair, and the names of the repairs applied."""

    value: Any
    repairs: tuple[str, ...]


def repair(text: str, schema: Mapping[str, Any]) -> Repaired:
    """Parse ``text`` into JSON, repairing it guided by ``schema``.

    Raises :class:`MalformedOutput` when no JSON object can be recovered.
    """
    repairs: list[str] = []
    candidate = text.strip()
    fenced = _unfence(candidate)
    if fenced is not None:
        candidate = fenced
        repairs.append("strip_code_fence")
    obj = _loads(candidate)
    if obj is None:
        start, end = candidate.find("{"), candidate.rfind("}")
        if start != -1 and end > start and (start > 0 or end < len(candidate) - 1):
            candidate = candidate[start : end + 1]
            repairs.append("extract_json_object")
            obj = _loads(candidate)
    if obj is None:
        fixed = _TRAILING_COMMA.sub(r"\1", candidate)
        if fixed != candidate:
            obj = _loads(fixed)
            if obj is not None:
                repairs.append("remove_trailing_commas")
    if obj is None:
        raise MalformedOutput(
            "the answer is not a JSON object, even after repair", last_output=text
        )
    if not isinstance(obj, dict):
        raise MalformedOutput(
            f"the answer is JSON {type(obj).__name__}, not an object", last_output=text
        )
    walker = _Walker(schema)
    value = walker.walk(obj, schema, "")
    return Repaired(value=value, repairs=tuple(repairs) + tuple(walker.repairs))


def _unfence(candidate: str) -> str | None:
    """The inside of a stripped text wrapped in a code fence, stripped; None if it isn't.

    Equal to the old ``^\\s*```[a-zA-Z0-9_-]*\\s*\\n?(.*?)\\n?```\\s*$`` (DOTALL) match's
    group stripped: on a stripped text the closing fence is its last three characters.
    """
    if len(candidate) < 6 or not (candidate.startswith("```") and candidate.endswith("```")):
        return None
    body = candidate[3:-3]
    info = _FENCE_INFO.match(body)
    return body[info.end() if info else 0 :].strip()


def _loads(text: str) -> Any | None:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None


class _Walker:
    """Walks the answer alongside its JSON schema and coerces obvious slips."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.repairs: list[str] = []
        self._plan = _plan_for(root)

    def _resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in node and seen < 32:
            ref = str(node["$ref"])
            target: Any = self.root
            for part in ref.lstrip("#/").split("/"):
                target = target.get(part, {}) if isinstance(target, Mapping) else {}
            node = target
            seen += 1
        return node

    def _kinds(self, node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        node = self._resolve(node)
        options = node.get("anyOf") or node.get("oneOf")
        if isinstance(options, list):
            return [self._resolve(o) for o in options if isinstance(o, Mapping)]
        return [node]

    def walk(self, value: Any, node: Mapping[str, Any], path: str) -> Any:
        planned = self._plan.get(id(node))
        if planned is None:
            kinds = self._kinds(node)
            planned = self._plan[id(node)] = (node, kinds, {k.get("type") for k in kinds})
        _, kinds, types = planned
        if isinstance(value, dict):
            obj_schema = next((k for k in kinds if k.get("type") == "object"), None)
            if obj_schema is None:
                return value
            props = obj_schema.get("properties", {})
            out: dict[str, Any] = {}
            for key, v in value.items():
                sub_path = f"{path}.{key}" if path else key
                prop = props.get(key, _NO_SCHEMA)
                if v is None and prop.get("default", None) is not None:
                    # Strict mode makes every field required-but-nullable; a null for a
                    # field that has a default means "use the default".
                    self.repairs.append(f"drop_null_default:{sub_path}")
                    continue
                out[key] = self.walk(v, prop, sub_path)
            return out
        if isinstance(value, list):
            arr_schema = next((k for k in kinds if k.get("type") == "array"), None)
            items = arr_schema.get("items", _NO_SCHEMA) if arr_schema else _NO_SCHEMA
            return [self.walk(v, items, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str):
            return self._string(value, kinds, types, path)
        if isinstance(value, float) and not value.is_integer():
            return self._float(value, kinds, path)
        return value

    def _float(self, value: float, kinds: list[Mapping[str, Any]], path: str) -> float:
        """Binary float noise from the decoder (12.4999999999 for 12.50) rounded away.

        To the node's ``x-decimal-places`` (else 6), and only when the rounded value is
        within 1e-9 *relative* of the answer: that is noise, never a different amount.
        """
        places = next(
            (k["x-decimal-places"] for k in kinds if isinstance(k.get("x-decimal-places"), int)),
            6,
        )
        rounded = round(value, places)
        if rounded != value and abs(rounded - value) <= _FLOAT_NOISE * abs(value):
            self.repairs.append(f"round_float_noise:{path}")
            return rounded
        return value

    def _string(
        self, value: str, kinds: list[Mapping[str, Any]], types: set[Any], path: str
    ) -> Any:
        stripped = value.strip()
        if stripped != value:
            self.repairs.append(f"strip_whitespace:{path}")
            value = stripped
        if _PLAIN_DECIMAL.match(value) and any("x-decimal-places" in k for k in kinds):
            return value  # a decimal sent as a string (profile decimals="pattern"): exact as is
        if "number" in types or "integer" in types:
            number = _parse_number(value)
            if number is not None:
                self.repairs.append(f"number_from_string:{path}")
                return number
        if any(k.get("format") == "date" for k in kinds):
            iso = _parse_date(value)
            if iso is not None and iso != value:
                self.repairs.append(f"date_to_iso:{path}")
                return iso
        for k in kinds:
            pattern = k.get("pattern")
            if (
                isinstance(pattern, str)
                and pattern in {"^[A-Z]{3}$", "^[A-Z]{2}$"}
                and value.upper() != value
                and re.match(pattern, value.upper())
            ):
                self.repairs.append(f"uppercase_code:{path}")
                return value.upper()
        return value


def _parse_number(value: str) -> int | float | None:
    match = _NUMBER_STRING.match(value)
    if not match:
        return None
    digits = match.group(1).replace(" ", "").replace("'", "")
    if "," in digits and "." in digits:
        # The later separator is the decimal point: 1.234,50 or 1,234.50.
        if digits.rfind(",") > digits.rfind("."):
            digits = digits.replace(".", "").replace(",", ".")
        else:
            digits = digits.replace(",", "")
    elif "," in digits:
        head, _, tail = digits.rpartition(",")
        digits = digits.replace(",", "") if len(tail) == 3 else f"{head.replace(',', '')}.{tail}"
    try:
        number = float(digits)
    except ValueError:
        return None
    return int(number) if number.is_integer() and "." not in digits else number


def _parse_date(value: str) -> str | None:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(value, fmt).date().isoformat()
        except ValueError:
            continue
    return None
