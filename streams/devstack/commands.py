"""``streams dev up|down|status``: a long-lived local Kafka and Schema Registry.

Both outlive the command. Their PIDs and addresses are kept in
``<cache-dir>/dev/kafka.json`` and ``<cache-dir>/dev/registry.json``, which is how
``down`` and ``status`` find them again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from streams.devstack.dev_kafka import dev_down, dev_status, dev_up
from streams.devstack.kafka import KAFKA_VERSION
from streams.devstack.registry import (
    APICURIO_VERSION,
    dev_registry_down,
    dev_registry_status,
    dev_registry_up,
)
from streams.devstack.secure import USERS
from streams.errors import ConfigError
from streams.settings import default_cache_dir


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``dev`` command and its ``up``, ``down`` and ``status`` subcommands."""
    dev = subparsers.add_parser(
        "dev",
        help="run a local Kafka broker and Schema Registry for development (no Docker)",
        description=(
            f"Run a single-node Apache Kafka {KAFKA_VERSION} broker (KRaft) and an Apicurio "
            f"Registry {APICURIO_VERSION} Schema Registry (Confluent-compatible API, schemas "
            "kept in memory) on 127.0.0.1, from jars that Maven fetches and builds once into "
            "the cache dir. Needs `java` (17+) and, on first use, `mvn`."
        ),
    )
    commands = dev.add_subparsers(dest="dev_command", metavar="{up,down,status}", required=True)

    up = commands.add_parser(
        "up",
        help="start the broker and the registry in the background (or report running ones)",
        description=(
            "Start the broker, then the Schema Registry, detached from this shell, and wait "
            "until each answers. Whatever is already running is reported, not started twice."
        ),
    )
    up.add_argument(
        "--port",
        type=_port,
        default=None,
        help="Kafka client port on 127.0.0.1 (default: the previous run's port if free, else any)",
    )
    up.add_argument(
        "--registry-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="Schema Registry HTTP port (default: the previous run's port if free, else any)",
    )
    up.add_argument(
        "--secure",
        action="store_true",
        help=(
            "also open a SASL_SSL listener: a generated CA, SCRAM-SHA-512 and PLAIN users "
            f"({', '.join(USERS)}), ACLs enforced; the PLAINTEXT port stays, for admin"
        ),
    )
    up.add_argument(
        "--no-registry",
        dest="registry",
        action="store_false",
        help="start only Kafka",
    )
    _add_common(up)
    up.set_defaults(func=_up)

    down = commands.add_parser(
        "down",
        help="stop the broker and the registry started by `dev up`",
        description=(
            "Stop the Schema Registry and the broker recorded by `dev up`, by their PIDs. "
            "The broker's data is kept; the registry's schemas are lost."
        ),
    )
    _add_common(down, json_flag=False)
    down.set_defaults(func=_down)

    status = commands.add_parser(
        "status",
        help="show whether the broker and the registry run, and where",
        description=(
            "Print the broker's bootstrap address and the Schema Registry's URL, with their "
            "PIDs and logs. Exits 3 when the broker is not running (the registry is optional: "
            "see `dev up --no-registry`)."
        ),
    )
    _add_common(status)
    status.set_defaults(func=_status)


def _add_common(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="jars, broker data and state files (default: $STREAMS_CACHE_DIR or ./.cache)",
    )
    if json_flag:
        parser.add_argument(
            "--json",
            action="store_true",
            help='print {"kafka": ..., "registry": ...} as JSON on stdout (null: not running)',
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
    lines = exc.message.splitlines()
    log = exc.context.get("log")
    if len(lines) > 1 and log is not None:
        # A start-up failure carries the log's tail for tracebacks; here, point at the file.
        print(f"error: {lines[0].rstrip(':')} (log: {log})", file=sys.stderr)
    else:
        print(f"error: {exc}", file=sys.stderr)
    return 1


def _describe(kafka: dict[str, Any] | None, registry: dict[str, Any] | None) -> None:
    if kafka is None:
        print("kafka:         not running")
    else:
        print(f"bootstrap:     {kafka['bootstrap']}")
        print(f"kafka pid:     {kafka['pid']}")
        print(f"kafka data:    {kafka['data_dir']}")
        print(f"kafka log:     {kafka['log']}")
        if "secure_bootstrap" in kafka:
            print(f"sasl_ssl:      {kafka['secure_bootstrap']} (SCRAM-SHA-512, PLAIN)")
            print(f"mtls (SSL):    {kafka['mtls_bootstrap']} (client certificate beside the CA)")
            print(f"ca file:       {kafka['ca_file']}")
            print(
                f"users:         {', '.join(kafka['users'])} (passwords: {kafka['secrets_file']})"
            )
    if registry is None:
        print("registry:      not running")
    else:
        print(f"registry url:  {registry['url']}")
        print(f"registry pid:  {registry['pid']}")
        print(f"registry log:  {registry['log']}")


def _print_json(kafka: dict[str, Any] | None, registry: dict[str, Any] | None) -> None:
    print(json.dumps({"kafka": kafka, "registry": registry}, indent=2))


def _up(args: argparse.Namespace) -> int:
    cache_dir = _cache_dir(args)
    try:
        kafka = dev_up(cache_dir, args.port, _progress, secure=args.secure)
        if kafka["already_running"] and not args.json:
            _progress(f"Kafka is already running (pid {kafka['pid']})")
        registry = None
        if args.registry:
            registry = dev_registry_up(cache_dir, args.registry_port, _progress)
            if registry["already_running"] and not args.json:
                _progress(f"The Schema Registry is already running (pid {registry['pid']})")
    except ConfigError as exc:
        return _error(exc)
    if args.json:
        _print_json(kafka, registry)
    else:
        _describe(kafka, registry)
    return 0


def _down(args: argparse.Namespace) -> int:
    cache_dir = _cache_dir(args)
    try:
        registry_stopped = dev_registry_down(cache_dir)
        print("Schema Registry stopped" if registry_stopped else "Schema Registry was not running")
        kafka_stopped = dev_down(cache_dir)
        print("Kafka stopped" if kafka_stopped else "Kafka was not running")
    except ConfigError as exc:
        return _error(exc)
    return 0


def _status(args: argparse.Namespace) -> int:
    cache_dir = _cache_dir(args)
    kafka = dev_status(cache_dir)
    registry = dev_registry_status(cache_dir)
    if args.json:
        _print_json(kafka, registry)
    else:
        _describe(kafka, registry)
        if kafka is None:
            print("(start them with `streams dev up`)")
    return 3 if kafka is None else 0
