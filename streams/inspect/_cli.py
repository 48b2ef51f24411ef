"""The ``tail`` and ``explain`` subcommands: argument parsing only."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streams.inspect._explain import explain
from streams.inspect._tail import DEFAULT_TAIL, tail
from streams.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = sub.add_parser(
        "tail",
        help="print the records of an output topic, one readable row each",
        description="Decode <pipeline>.valid (Avro wire format) or the JSON envelopes of "
        ".invalid/.over-budget/.dlq. Like tail -n N [-f]: without --from-beginning, prints "
        f"the last --max records (default {DEFAULT_TAIL}), then new ones with --follow; with "
        "--from-beginning, stops after --max records in total.",
    )
    t.add_argument("topic")
    _common(t)
    t.add_argument("--from-beginning", action="store_true", help="read from the first record")
    t.add_argument(
        "--max", type=int, default=None, metavar="N", help="how many records (see above)"
    )
    t.add_argument("--follow", action="store_true", help="keep printing new records (Ctrl-C)")
    t.add_argument("--format", choices=["table", "json"], default="table")
    t.set_defaults(func=_tail_cmd)

    e = sub.add_parser(
        "explain",
        help="show one record's journey through a pipeline",
        description="Scan the pipeline's raw topic and its four output topics for KEY and "
        "print the input, each attempt, the outcome topic, the reason, the cost and the "
        "provenance.",
    )
    e.add_argument("pipeline")
    e.add_argument("key")
    _common(e)
    e.set_defaults(func=_explain_cmd)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", help="override kafka.bootstrap_servers")
    p.add_argument("--config", type=Path, default=None, help="TOML settings file")
    p.add_argument("--schemas", type=Path, default=None, help="folder holding avro/ (default .)")


def _settings(args: argparse.Namespace) -> Settings:
    from streams.kafka.preflight import check_connection
    from streams.settings import load_settings

    overrides: dict[str, Any] = {}
    if args.bootstrap:
        overrides["kafka"] = {"bootstrap_servers": args.bootstrap}
    settings = load_settings(args.config, **overrides)
    check_connection(settings.kafka)  # a wrong password or CA is one line, not a hang
    return settings


def _tail_cmd(args: argparse.Namespace) -> int:
    return tail(
        _settings(args),
        args.topic,
        from_beginning=args.from_beginning,
        max_records=args.max,
        follow=args.follow,
        fmt=args.format,
        schemas_root=args.schemas,
    )


def _explain_cmd(args: argparse.Namespace) -> int:
    return explain(_settings(args), args.pipeline, args.key, schemas_root=args.schemas)
