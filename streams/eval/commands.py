"""``streams eval CONTRACT SAMPLES --model SPEC [--model SPEC] ...``: the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from streams.errors import ConfigError

__all__ = ["register"]

_VERSIONED = re.compile(r"^(?P<name>[A-Za-z0-9_]+)\.v(?P<version>\d+)$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "eval",
        help="measure extraction quality per model on labelled samples (no Kafka)",
        description="Run every labelled sample (NAME.txt beside NAME.json, the expected record) "
        "in SAMPLES through the real pipeline stages (call, repair, validate, re-ask, grounding, "
        "Avro encode) with no Kafka, once per --model, and report the valid rate, exact and "
        "normalised match per field, the fields most often wrong, routes with the invalid "
        "reasons, attempts, tokens, cost, latency percentiles and grounding coverage. With two "
        "--model, side by side with the per-field difference and the samples where they "
        "disagree. Exits 1 when a --min-* gate fails for any configuration.",
    )
    p.add_argument(
        "contract",
        help="module:OBJECT, or an entry-point name with --contract-version (or NAME.vN), "
        "as a pipeline's contract and contract_version take it",
    )
    p.add_argument(
        "--contract-version", type=int, default=None, metavar="N", help="the version of a name"
    )
    p.add_argument("samples", type=Path, help="folder of NAME.txt + NAME.json labelled samples")
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="SPEC",
        help="a configuration: a settings TOML file, or key=value pairs such as "
        "label=after,base_url=http://127.0.0.1:8080/v1,model=qwen,schema_profile=llamacpp "
        "(llm keys: provider base_url model schema_profile timeout_s temperature "
        "max_connections; budget keys: max_attempts max_output_tokens max_input_tokens; "
        "config=PATH starts from a file). Repeat to compare",
    )
    p.add_argument("--limit", type=int, default=None, metavar="N", help="the first N samples only")
    p.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="write the report as JSON"
    )
    p.add_argument(
        "--html", type=Path, default=None, metavar="PATH", help="write a self-contained HTML report"
    )
    p.add_argument(
        "--min-valid-rate",
        type=_fraction,
        default=None,
        metavar="RATE",
        help="fail (exit 1) if a configuration's valid rate is below RATE (0.8 or 80%%)",
    )
    p.add_argument(
        "--min-field-accuracy",
        type=_fraction,
        default=None,
        metavar="RATE",
        help="fail (exit 1) if a configuration's exact field match on valid samples is below RATE",
    )
    p.add_argument(
        "--search-path",
        type=Path,
        action="append",
        default=[],
        help="a folder to import contracts from (repeatable)",
    )
    p.add_argument(
        "--log-level", default="WARNING", help="pipeline log level on stderr (default WARNING)"
    )
    p.set_defaults(func=_eval)


def _fraction(text: str) -> float:
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate: write 0.8 or 80%")
    return value


def _eval(args: argparse.Namespace) -> int:
    from streams.contract import resolve
    from streams.eval import evaluate, load_samples, parse_model, summarise
    from streams.eval._html import render_html
    from streams.eval._render import comparison, render_table
    from streams.logs import configure_logging

    configure_logging(args.log_level)
    models = [parse_model(spec) for spec in args.model]
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"two --model configurations share a label ({labels}); set label=")
    match = _VERSIONED.match(args.contract)
    if match:
        contract = resolve(match["name"], int(match["version"]), search_path=args.search_path)
    elif ":" not in args.contract and args.contract_version is None:
        raise ConfigError(
            f"contract {args.contract!r} is a name: add --contract-version N "
            f"(or write {args.contract}.vN)"
        )
    else:
        contract = resolve(args.contract, args.contract_version, search_path=args.search_path)
    samples = load_samples(args.samples, limit=args.limit)
    summaries = []
    for model in models:
        bar = _Bar(model.label, sys.stderr)
        results = asyncio.run(
            evaluate(contract, samples, model, search_path=args.search_path, progress=bar)
        )
        bar.done()
        summaries.append(summarise(model.label, results))
    title = (
        f"streams eval {contract.ref} (prompt {contract.prompt.version}): "
        f"{len(samples)} samples from {args.samples}"
    )
    sys.stdout.write(render_table(title, summaries))
    report: dict[str, Any] = {
        "contract": contract.ref,
        "prompt_version": contract.prompt.version,
        "samples_dir": str(args.samples),
        "configurations": summaries,
    }
    if len(summaries) == 2:
        report["comparison"] = comparison(summaries[0], summaries[1])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(render_html(title, report), encoding="utf-8")
    return _gates(args, summaries)


def _gates(args: argparse.Namespace, summaries: list[dict[str, Any]]) -> int:
    failed = False
    for s in summaries:
        checks = (
            ("valid rate", s["valid_rate"], args.min_valid_rate),
            ("exact field match", s["field_exact"], args.min_field_accuracy),
        )
        for what, value, floor in checks:
            if floor is not None and what == "exact field match" and not s["routes"]["valid"]:
                # Nothing to measure; the valid-rate gate is the one that judges this.
                print(
                    f"gate: {s['label']} has no valid record, so no field accuracy", file=sys.stderr
                )
                continue
            if floor is not None and value < floor:
                failed = True
                print(
                    f"gate failed: {s['label']} {what} {value * 100:.1f}% < {floor * 100:.1f}%",
                    file=sys.stderr,
                )
    return 1 if failed else 0


class _Bar:
    """A progress bar on a terminal; one line per sample in a log (CI)."""

    def __init__(self, label: str, out: TextIO) -> None:
        self._label = label
        self._out = out
        self._tty = out.isatty()
        self._started = time.monotonic()
        logging.getLogger("streams").debug("eval %s started", label)

    def __call__(self, done: int, total: int, result: Any) -> None:
        elapsed = time.monotonic() - self._started
        status = f"{done}/{total} {result.name} {result.route} ({elapsed / done:.1f} s/doc)"
        if self._tty:
            filled = int(24 * done / total)
            line = f"\r{self._label} [{'#' * filled}{'.' * (24 - filled)}] {status}"
            self._out.write(f"{line[:120]:<120}")
        else:
            self._out.write(f"[eval {self._label}] {status}\n")
        self._out.flush()

    def done(self) -> None:
        if self._tty:
            self._out.write("\n")
            self._out.flush()
