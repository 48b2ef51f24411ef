"""``streams``: the command line. Each command module registers its own subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from streams.errors import ConfigError

__all__ = ["main"]

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _registrars() -> list[Register]:
    from streams import authoring, commands, demo, inspect
    from streams.devstack import commands as dev
    from streams.eval import commands as evaluation
    from streams.localmodel import commands as local_model
    from streams.simulator import commands as sim

    return [
        demo.register,
        commands.register,
        inspect.register,
        authoring.register,
        dev.register,
        sim.register,
        local_model.register,
        evaluation.register,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streams",
        description="Contract-first LLM extraction on Kafka: raw documents in, typed Avro "
        "records out, every bad case routed to its own topic.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in _registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"streams: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
