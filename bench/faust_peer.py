"""The naive faust peer: one model call per record, the way a faust user would write it.

Run by :mod:`bench.procs` as ``python -m bench.faust_peer worker`` with its settings in
``BENCH_PEER_*`` environment variables. Per record it does what the pipeline's common
path does, and nothing more:

* the chat-completions body the worker sends (model, the contract's system turn and
  the normalised document, ``temperature``, ``max_tokens``, and ``response_format``
  ``json_schema`` strict with the contract's strict schema), POSTed with
  ``httpx.AsyncClient`` (its own connection pool, sized to the concurrency);
* the answer validated with the pydantic contract (``model_validate_json``, strict, as
  the worker validates);
* the record's JSON produced to the output topic with faust's producer.

``concurrency=`` is the worker's in-flight limit. That is also what makes it naive:
faust's actors ack records out of order, and faust commits past an in-flight record
at the head of a partition (faust-streaming issue 606), so a crash loses it. A 429 or
5xx is retried after ``Retry-After``, so overload alone loses nothing; an answer that
still fails is produced as ``{"error": ...}``, so every input has one output.

The moment the group hands it partitions is printed as one JSON line on stdout,
``{"event": "assigned", "ts": <epoch s>}``: the same clock start the workers get.
Faust's defaults are kept (acks=all, a 2.8 s commit interval), apart from reading from
the earliest offset, no web server, and a 6 s session timeout (the benchmark's workers
get the same; faust's 60 s would only make a restart after a kill wait longer).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import faust
import httpx
from pydantic import ValidationError

from contracts import get_contract
from streams.providers.strict_schema import to_strict_schema
from streams.textnorm import normalize_text

CONCURRENCY = int(os.environ.get("BENCH_PEER_CONCURRENCY", "64"))
SIM_URL = os.environ.get("BENCH_PEER_SIM_URL", "http://127.0.0.1:8700/v1")
MODEL = "sim-extractor-1"
MAX_TOKENS = 1024  # budgets.max_output_tokens, the worker's default
RETRIES = 8
SESSION_TIMEOUT_S = float(os.environ.get("BENCH_PEER_SESSION_TIMEOUT_S", "6"))

CONTRACT = get_contract("invoice", 1)
SYSTEM = CONTRACT.prompt.system_message()
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": f"{CONTRACT.name}_v{CONTRACT.version}",
        "strict": True,
        "schema": to_strict_schema(CONTRACT.json_schema()),
    },
}

app = faust.App(
    os.environ.get("BENCH_PEER_ID", "bench-peer"),
    broker=f"kafka://{os.environ.get('BENCH_PEER_BROKER', '127.0.0.1:9092')}",
    datadir=os.environ.get("BENCH_PEER_DATADIR", "/tmp/bench-peer-data"),
    consumer_auto_offset_reset="earliest",
    web_enabled=False,  # and `--without-web`: the worker command starts it regardless
    topic_allow_declare=False,
    broker_session_timeout=SESSION_TIMEOUT_S,
    broker_heartbeat_interval=SESSION_TIMEOUT_S / 3,
    key_serializer="raw",
    value_serializer="raw",
)
source = app.topic(os.environ.get("BENCH_PEER_IN", "in"), key_type=bytes, value_type=bytes)
sink = app.topic(os.environ.get("BENCH_PEER_OUT", "out"), key_type=bytes, value_type=bytes)

_client: httpx.AsyncClient | None = None
_announced = False


@app.on_partitions_assigned.connect  # type: ignore[arg-type]  # faust's stub wants signal=
async def _assigned(sender: Any, assigned: Any, **_kw: Any) -> None:
    global _announced
    if assigned and not _announced:
        _announced = True
        print(json.dumps({"event": "assigned", "ts": time.time()}), flush=True)


def client() -> httpx.AsyncClient:
    global _client
    if _client is None:
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        _client = httpx.AsyncClient(base_url=SIM_URL, timeout=60.0, limits=limits)
    return _client


def body(text: str) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"<document>\n{normalize_text(text)}\n</document>"},
        ],
        "temperature": 0.0,
        "max_tokens": MAX_TOKENS,
        "response_format": RESPONSE_FORMAT,
    }


async def extract(value: bytes) -> bytes:
    """One model call and one validation; the record's JSON, or an error object."""
    request = body(value.decode("utf-8"))
    error = ""
    for _attempt in range(RETRIES):
        try:
            response = await client().post("/chat/completions", json=request)
        except httpx.TransportError as exc:
            error = f"transport: {exc!r}"
            await asyncio.sleep(0.5)
            continue
        if response.status_code == 429 or response.status_code >= 500:
            error = f"HTTP {response.status_code}"
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            continue
        if response.status_code != 200:
            return json.dumps({"error": f"HTTP {response.status_code}"}).encode()
        content = response.json()["choices"][0]["message"]["content"]
        try:
            record = CONTRACT.model.model_validate_json(content, strict=True)
        except ValidationError as exc:
            return json.dumps({"error": f"invalid: {exc.error_count()} errors"}).encode()
        return record.model_dump_json().encode()
    return json.dumps({"error": error}).encode()


@app.agent(source, concurrency=CONCURRENCY)
async def peer(stream: Any) -> None:
    async for event in stream.events():
        out = await extract(event.value)
        message = event.message
        # The input's coordinates, so the benchmark can check key order on the output.
        headers = {"src": f"{message.partition}:{message.offset}".encode()}
        await sink.send(key=event.key, value=out, headers=headers)


if __name__ == "__main__":
    sys.exit(app.main())
