"""``streams simulate-llm``: run the LLM simulator as a server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from streams.errors import ConfigError
from streams.simulator.config import (
    DEFAULT_MODEL_SUFFIX,
    Behaviour,
    SimulatorConfig,
    parse_fault_mix,
)
from streams.simulator.server import serve

__all__ = ["register"]

T = TypeVar("T", int, float)

_DESCRIPTION = """\
A deterministic LLM over real HTTP: POST /v1/chat/completions (OpenAI, strict
json_schema checked) and POST /v1/messages (Anthropic, answer as a tool call).
It never reads meaning into text: valid answers come from fixtures, NAME.txt
documents with a NAME.json answer, keyed by the document's sha256.

{behaviours}

Per document and attempt, highest priority first: a "[[sim: http_500, valid]]"
line in the document (the last item repeats, so "[[sim: http_500]]" fails on
every attempt); the runtime script (POST /_sim/script); --fault-mix; else valid.
Inspect with GET /_sim/requests and /_sim/stats.

  http_429            429 + Retry-After: a rate limit that clears
  http_429_too_large  429, no Retry-After: the request alone is over the TPM
                      limit (OpenAI type "tokens"); 413 request_too_large on
                      /v1/messages
  http_502_html       502 text/html page from an nginx in front of the API
  http_403, http_404  permission error; model_not_found for the asked model
  empty_choices       200 with "choices": [] (Anthropic: "content": [])

Outage: POST /_sim/outage {{"status": 503, "seconds": 60}} makes every
completion and /v1/models request fail with that status (any 4xx/5xx; omit
"seconds" to last until DELETE /_sim/outage). GET /_sim/outage shows it.

GET /v1/models (and /v1/models/ID) answers a health probe without spending
budget: it lists sim-extractor-1 plus every model asked for so far.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    behaviours = textwrap.fill(
        "Behaviours: " + ", ".join(b.value for b in Behaviour) + ".", width=78
    )
    parser = subparsers.add_parser(
        "simulate-llm",
        help="run the deterministic LLM simulator (OpenAI + Anthropic endpoints)",
        description=_DESCRIPTION.format(behaviours=behaviours),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=_checked(int, 0, 65535), default=8700, help="port (default %(default)s)"
    )
    parser.add_argument(
        "--fixtures",
        metavar="DIR",
        type=Path,
        action="append",
        default=[],
        help="directory searched recursively for NAME.txt + NAME.json pairs (repeatable)",
    )
    parser.add_argument(
        "--fault-mix",
        metavar="SPEC",
        type=_fault_mix,
        default={},
        help='probabilities per behaviour, e.g. "http_500=0.2,http_429=0.1,malformed=0.1"; '
        "the rest is valid",
    )
    parser.add_argument(
        "--seed",
        metavar="N",
        type=int,
        default=0,
        help="fault-mix seed; same seed, same behaviour per (document, attempt) (default 0)",
    )
    parser.add_argument(
        "--latency-ms",
        metavar="MS",
        type=_checked(float, 0),
        default=0.0,
        help="fixed latency added to every answer (default 0)",
    )
    parser.add_argument(
        "--hang-s",
        metavar="S",
        type=_checked(float, 0),
        default=30.0,
        help="how long the hang behaviour sleeps before answering (default 30)",
    )
    parser.add_argument(
        "--max-concurrency",
        metavar="N",
        type=_checked(int, 1),
        default=None,
        help="requests in flight beyond N get 429 with Retry-After (default: no limit)",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        default=None,
        help="require 'Authorization: Bearer KEY' (OpenAI) or 'x-api-key: KEY' (Anthropic)",
    )
    parser.add_argument(
        "--model-suffix",
        metavar="SUFFIX",
        default=DEFAULT_MODEL_SUFFIX,
        help="appended to the requested model to give the reported one (default %(default)s)",
    )
    parser.add_argument(
        "--retry-after-s",
        metavar="S",
        type=_checked(int, 0),
        default=1,
        help="Retry-After seconds sent with every 429 (default 1)",
    )
    parser.add_argument(
        "--record-limit",
        metavar="N",
        type=_checked(int, 1),
        default=10_000,
        help="requests kept for GET /_sim/requests, oldest dropped (default 10000)",
    )
    parser.set_defaults(func=_handler)


def _checked(
    convert: Callable[[str], T], low: float, high: float | None = None
) -> Callable[[str], T]:
    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= (high if high is not None else float("inf")):
            bound = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
            raise argparse.ArgumentTypeError(f"{text!r} must be {bound}")
        return value

    return parse


def _fault_mix(spec: str) -> dict[Behaviour, float]:
    try:
        return parse_fault_mix(spec)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _handler(args: argparse.Namespace) -> int:
    config = SimulatorConfig(
        fixture_dirs=args.fixtures,
        fault_mix=args.fault_mix,
        seed=args.seed,
        latency_ms=args.latency_ms,
        hang_s=args.hang_s,
        max_concurrency=args.max_concurrency,
        api_key=args.api_key,
        model_suffix=args.model_suffix,
        retry_after_s=args.retry_after_s,
        record_limit=args.record_limit,
    )
    try:
        asyncio.run(_serve_until_signalled(config, args.host, args.port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from exc
    return 0


async def _serve_until_signalled(config: SimulatorConfig, host: str, port: int) -> None:
    def listening(url: str) -> None:
        print(f"LLM simulator listening on {url}", flush=True)

    task = asyncio.create_task(serve(config, host, port, on_listening=listening))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    print("LLM simulator stopped", file=sys.stderr, flush=True)
