"""Documents, request bodies and small HTTP helpers shared by the simulator tests."""

from __future__ import annotations

from typing import Any

import httpx

from streams.textnorm import text_sha256

DOCUMENT = "INVOICE INV-42\nDate: 2026-03-01\nWidget  10.00\nTOTAL 10.00 EUR"
ANSWER: dict[str, Any] = {
    "invoice_number": "INV-42",
    "issue_date": "2026-03-01",
    "currency": "EUR",
    "lines": [{"description": "Widget", "amount": 10.0}],
    "total": 10.0,
}
DIRECTED = "[[sim: http_500, malformed, valid]]\nINVOICE INV-7\nTOTAL 7.00"
DIRECTED_ANSWER: dict[str, Any] = {"invoice_number": "INV-7", "total": 7.0}
KEY = text_sha256(DOCUMENT)

STRICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Invoice",
    "additionalProperties": False,
    "properties": {
        "invoice_number": {"type": "string", "description": "as printed"},
        "issue_date": {"type": "string"},
        "currency": {"anyOf": [{"type": "string", "enum": ["EUR", "USD"]}, {"type": "null"}]},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/Line"}},
        "total": {"type": "number"},
    },
    "required": ["invoice_number", "issue_date", "currency", "lines", "total"],
    "$defs": {
        "Line": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"description": {"type": "string"}, "amount": {"type": "number"}},
            "required": ["description", "amount"],
        }
    },
}


def wrap(text: str) -> str:
    return f"<document>\n{text}\n</document>"


def openai_body(
    text: str = DOCUMENT,
    *,
    schema: dict[str, Any] | None = STRICT_SCHEMA,
    strict: bool = True,
    max_tokens: int | None = 2000,
    model: str = "gpt-test",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "Extract the invoice."},
            {"role": "user", "content": wrap(text)},
        ],
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "invoice", "strict": strict, "schema": schema},
        }
    return body


def anthropic_body(text: str = DOCUMENT, *, max_tokens: int = 2000) -> dict[str, Any]:
    return {
        "model": "claude-test",
        "system": "Extract the invoice.",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": [{"type": "text", "text": wrap(text)}]}],
        "tools": [{"name": "record_invoice", "description": "d", "input_schema": STRICT_SCHEMA}],
        "tool_choice": {"type": "tool", "name": "record_invoice"},
    }


def content(response: httpx.Response) -> str:
    text: str = response.json()["choices"][0]["message"]["content"]
    return text


async def chat(client: httpx.AsyncClient, body: dict[str, Any] | None = None) -> httpx.Response:
    return await client.post("/v1/chat/completions", json=body or openai_body())


async def script(client: httpx.AsyncClient, rules: dict[str, list[str]]) -> httpx.Response:
    return await client.post("/_sim/script", json={"rules": rules})


async def requests_seen(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = (await client.get("/_sim/requests")).json()["requests"]
    return records
