"""``streams dev up|down|status``: one long-lived local Kafka for development.

The broker outlives the command; its PID, bootstrap address and data dir are kept in
``<cache-dir>/dev/kafka.json``, which is how ``down`` and ``status`` find it again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from streams.devstack.kafka import KAFKA_VERSION, dev_down, dev_status, dev_up
from streams.errors import ConfigError
from streams.settings import default_cache_dir


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``dev`` command and its ``up``, ``down`` and ``status`` subcommands."""
    dev = subparsers.add_parser(
        "dev",
        help="run a local Kafka broker for development (no Docker)",
        description=(
            f"Run a single-node Apache Kafka {KAFKA_VERSION} broker (KRaft) on 127.0.0.1, "
            "from jars that Maven fetches once into the cache dir. Needs `java` (17+) and, "
            "on first use, `mvn`."
        ),
    )
    commands = dev.add_subparsers(dest="dev_command", metavar="{up,down,status}", required=True)

    up = commands.add_parser(
        "up",
        help="start the broker in the background (or report the running one)",
        description=(
            "Start the broker detached from this shell and wait until it serves metadata. "
            "If one is already running, report it instead of starting another."
        ),
    )
    up.add_argument(
        "--port",
        type=_port,
        default=None,
        help="client port on 127.0.0.1 (default: the previous run's port if free, else any)",
    )
    _add_common(up)
    up.set_defaults(func=_up)

    down = commands.add_parser(
        "down",
        help="stop the broker started by `dev up`",
        description="Stop the broker recorded by `dev up`, by its PID. Its data is kept.",
    )
    _add_common(down, json_flag=False)
    down.set_defaults(func=_down)

    status = commands.add_parser(
        "status",
        help="show whether the broker runs, and where",
        description=(
            "Print the running broker's bootstrap address, PID and data dir. "
            "Exits 3 when no broker runs."
        ),
    )
    _add_common(status)
    status.set_defaults(func=_status)


def _add_common(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="jars, broker data and state file (default: $STREAMS_CACHE_DIR or ./.cache)",
    )
    if json_flag:
        parser.add_argument(
            "--json", action="store_true", help="print the broker's state as JSON on stdout"
        )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {port}")
    return port


def _cache_dir(args: argparse.Namespace) -> Path:
    cache_dir: Path | None = args.cache_dir
    return default_cache_dir() if cache_dir is None else cache_dir.resolve()


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _error(exc: ConfigError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 1


def _describe(state: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(state, indent=2))
        return
    print(f"bootstrap: {state['bootstrap']}")
    print(f"pid:       {state['pid']}")
    print(f"data dir:  {state['data_dir']}")
    print(f"log:       {state['log']}")


def _up(args: argparse.Namespace) -> int:
    try:
        state = dev_up(_cache_dir(args), args.port, _progress)
    except ConfigError as exc:
        return _error(exc)
    if state["already_running"] and not args.json:
        _progress(f"Kafka is already running (pid {state['pid']})")
    _describe(state, args.json)
    return 0


def _down(args: argparse.Namespace) -> int:
    try:
        stopped = dev_down(_cache_dir(args))
    except ConfigError as exc:
        return _error(exc)
    print("Kafka stopped" if stopped else "Kafka was not running")
    return 0


def _status(args: argparse.Namespace) -> int:
    state = dev_status(_cache_dir(args))
    if state is None:
        if args.json:
            print("null")
        else:
            print("Kafka is not running (start it with `streams dev up`)")
        return 3
    _describe(state, args.json)
    return 0
