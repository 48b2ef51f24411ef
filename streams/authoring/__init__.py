"""Contract authoring: ``streams contract new`` scaffolds a package, ``try`` runs one document.

Usage::

    streams contract new purchase_order --dir acme
    streams contract try acme/purchase_order_contract/samples/01-northwind.txt \\
        --contract purchase_order_contract:PURCHASE_ORDER_V1 --search-path acme
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from streams.authoring._scaffold import scaffold
from streams.errors import Route

__all__ = ["register", "scaffold"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    contract = sub.add_parser("contract", help="write and try your own contract")
    actions = contract.add_subparsers(dest="action", required=True, metavar="ACTION")
    new = actions.add_parser(
        "new", help="scaffold a contract package: model, prompt, three samples, a test"
    )
    new.add_argument("name", help="the contract's name, e.g. purchase_order")
    new.add_argument("--dir", type=Path, default=Path("."), help="where to write it")
    new.set_defaults(func=_new)
    trial = actions.add_parser(
        "try",
        help="run one document through the pipeline against the configured provider, no Kafka",
    )
    trial.add_argument("file", type=Path, help="the document (text, or a JSON envelope)")
    trial.add_argument(
        "--contract", required=True, help="module:OBJECT, or a name with --contract-version"
    )
    trial.add_argument("--contract-version", type=int, default=None)
    trial.add_argument(
        "--search-path", type=Path, action="append", default=[], help="a folder to import from"
    )
    trial.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML settings file for the provider (default: $STREAMS_CONFIG, else built-in)",
    )
    trial.add_argument(
        "--timeout", type=float, default=120.0, help="give up after this many seconds"
    )
    trial.set_defaults(func=_try)


def _new(args: argparse.Namespace) -> int:
    for path in scaffold(args.name, args.dir):
        print(f"wrote {path}")
    return 0


def _try(args: argparse.Namespace) -> int:
    from streams.authoring._try import try_document
    from streams.settings import load_settings

    outcome = asyncio.run(
        try_document(
            args.file,
            load_settings(args.config),
            args.contract,
            args.contract_version,
            search_path=args.search_path,
            timeout_s=args.timeout,
            out=sys.stdout,
        )
    )
    return 0 if outcome.route is Route.VALID else 1
