"""Shared test material: a realistic contract, a scripted endpoint, canned answers."""

from __future__ import annotations

import datetime
import enum
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, Field, SecretStr

from streams.providers import AnthropicProvider, OpenAICompatProvider
from streams.providers.base import ChatMessage, CompletionRequest

#: A key that must never show up anywhere but the outgoing auth header.
CANARY_KEY = "sk-canary-3f9d2c7e41b8a6"
CANARY = SecretStr(CANARY_KEY)


class Currency(enum.Enum):
    EUR = "EUR"
    USD = "USD"
    GBP = "GBP"


class Address(BaseModel):
    street: str = Field(min_length=1, description="Street and number")
    postcode: str | None = Field(None, pattern=r"^[0-9]{5}$")
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")


class LineItem(BaseModel):
    description: str
    quantity: int = Field(ge=1)
    unit_price: Decimal = Field(gt=0, max_digits=12, decimal_places=2)


class Invoice(BaseModel):
    """An invoice extracted from OCR text."""

    number: str = Field(pattern=r"^[A-Z]{3}-[0-9]+$", description="Invoice number")
    issued: datetime.date
    due: datetime.date | None = None
    currency: Currency
    kind: Literal["invoice", "credit_note"] = "invoice"
    seller: Address = Field(description="Who issued the invoice")
    buyer: Address | None = None
    lines: list[LineItem] = Field(min_length=1)
    total: Annotated[Decimal, Field(ge=0)]
    tax_rate: Decimal | None = Field(None, ge=0, le=100)
    notes: list[str] = Field(default_factory=list, max_length=5)


def invoice_schema() -> dict[str, Any]:
    return Invoice.model_json_schema()


def make_request(**overrides: Any) -> CompletionRequest:
    fields: dict[str, Any] = {
        "messages": (
            ChatMessage("system", "Extract the invoice."),
            ChatMessage("user", "INV-7 from ACME, total 12.50 EUR"),
        ),
        "schema_name": "invoice",
        "json_schema": invoice_schema(),
        "max_output_tokens": 512,
        "temperature": 0.0,
    }
    fields.update(overrides)
    return CompletionRequest(**fields)


Handler = Callable[[httpx.Request], httpx.Response]


class Server:
    """A scripted endpoint for ``httpx.MockTransport``: records requests, answers by function."""

    def __init__(self, respond: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._respond = respond

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._respond(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def last_json(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.requests[-1].content)
        return body


#: ``make(respond, *, api_key=CANARY, **provider_kwargs) -> (provider, server)``
OpenAIFactory = Callable[..., tuple[OpenAICompatProvider, Server]]
AnthropicFactory = Callable[..., tuple[AnthropicProvider, Server]]


RECORD = {"number": "INV-7", "total": 12.5}


def openai_answer(
    *,
    content: str | None = json.dumps(RECORD),
    finish_reason: str = "stop",
    usage: dict[str, Any] | None = None,
    model: str = "gpt-4o-2024-08-06",
    refusal: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if refusal is not None:
        message["refusal"] = refusal
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }
    body["usage"] = usage if usage is not None else {"prompt_tokens": 321, "completion_tokens": 45}
    return body


def anthropic_answer(
    *,
    content: list[dict[str, Any]] | None = None,
    stop_reason: str = "tool_use",
    usage: dict[str, Any] | None = None,
    model: str = "claude-sonnet-4-5-20250929",
) -> dict[str, Any]:
    blocks = (
        content
        if content is not None
        else [{"type": "tool_use", "id": "toolu_1", "name": "invoice", "input": RECORD}]
    )
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop_reason,
        "usage": usage if usage is not None else {"input_tokens": 400, "output_tokens": 60},
    }
