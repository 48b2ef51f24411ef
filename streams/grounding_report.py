"""Measure grounding recall on the contract samples: every sample value is in its text.

The sample authors' rule is that each value of an answer (``NN-name.json``)
appears in its document (``NN-name.txt``), so every value :func:`ground` fails
to find is a false negative. As a control against a matcher that finds
everything, each record is also grounded against the *next* sample's document:
its coverage there should stay far below 1.0 (small numbers and common words
do recur across invoices, so it is not 0 either).

Usage::

    python -m streams.grounding_report                # table on stdout
    python -m streams.grounding_report --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from streams.contract import ContractRegistry, ContractVersion, discover
from streams.grounding import ground

__all__ = ["main", "measure"]


def measure(
    samples_root: Path | None = None, registry: ContractRegistry | None = None
) -> dict[str, Any]:
    """Ground every sample under ``samples_root/<contract>/`` and count the misses.

    Without ``samples_root``, each registered contract's own ``samples`` folder.
    Folders starting with ``_`` (deliberately broken samples) are skipped, at
    both levels. Each answer is validated by the highest registered version of
    the folder's contract that accepts it.
    """
    versions: dict[str, list[ContractVersion]] = {}
    for contract in registry if registry is not None else discover():
        versions.setdefault(contract.name, []).append(contract)
    if samples_root is None:
        folders = sorted(
            {c.samples for cs in versions.values() for c in cs if c.samples is not None}
        )
    else:
        folders = sorted(p for p in samples_root.iterdir() if p.is_dir())
    report: dict[str, Any] = {
        "samples_root": str(samples_root) if samples_root else None,
        "contracts": {},
        "unknown": [],
    }
    for folder in folders:
        if folder.name.startswith("_"):
            continue
        if folder.name not in versions:
            report["unknown"].append(folder.name)
            continue
        newest_first = sorted(versions[folder.name], key=lambda c: c.version, reverse=True)
        report["contracts"][folder.name] = _measure_contract(folder, newest_first)
    return report


def _measure_contract(folder: Path, newest_first: list[ContractVersion]) -> dict[str, Any]:
    samples: list[tuple[str, BaseModel, str]] = []
    problems: list[dict[str, str]] = []
    used: Counter[str] = Counter()
    for answer in sorted(folder.glob("*.json")):
        document = answer.with_suffix(".txt")
        if not document.is_file():
            problems.append({"file": answer.name, "error": "no .txt document next to it"})
            continue
        record = _validate(answer.read_text(encoding="utf-8"), newest_first)
        if isinstance(record, str):
            problems.append({"file": answer.name, "error": record})
            continue
        contract, model = record
        used[contract.ref] += 1
        samples.append((answer.stem, model, document.read_text(encoding="utf-8")))

    groundings = [(name, ground(model, text)) for name, model, text in samples]
    considered = [(n, f) for n, g in groundings for f in g.fields if f.considered]
    misses = [{"file": n, "path": f.path, "value": f.value} for n, f in considered if not f.found]
    controls = [
        ground(model, samples[(i + 1) % len(samples)][2]).coverage
        for i, (_, model, _) in enumerate(samples)
        if len(samples) > 1
    ]
    return {
        "documents": len(samples),
        "versions": dict(sorted(used.items())),
        "values_considered": len(considered),
        "values_grounded": len(considered) - len(misses),
        "false_negatives": misses,
        "false_negative_rate": len(misses) / len(considered) if considered else 0.0,
        "mean_coverage": _mean([g.coverage for _, g in groundings]),
        "methods": dict(sorted(Counter(f.method for _, f in considered).items())),
        "control_coverage": _mean(controls),
        "invalid_samples": problems,
    }


def _validate(
    raw: str, newest_first: list[ContractVersion]
) -> tuple[ContractVersion, BaseModel] | str:
    """The newest version whose model accepts ``raw``, or why none does."""
    errors = []
    for contract in newest_first:
        try:
            return contract, contract.model.model_validate_json(raw)
        except ValidationError as exc:
            errors.append(f"{contract.ref}: {exc.error_count()} errors")
    return "; ".join(errors) or "no version registered"


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _table(report: dict[str, Any]) -> str:
    header = ("contract", "docs", "values", "grounded", "FN", "FN rate", "coverage", "control")
    rows = [header]
    for name, r in report["contracts"].items():
        rows.append(
            (
                name,
                str(r["documents"]),
                str(r["values_considered"]),
                str(r["values_grounded"]),
                str(len(r["false_negatives"])),
                f"{r['false_negative_rate']:.2%}",
                f"{r['mean_coverage']:.3f}",
                f"{r['control_coverage']:.3f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    for name, r in report["contracts"].items():
        lines.extend(
            f"  {name} FN  {m['file']}  {m['path']} = {m['value']!r}" for m in r["false_negatives"]
        )
        lines.extend(f"  {name} invalid  {p['file']}: {p['error']}" for p in r["invalid_samples"])
    lines.extend(f"  no contract registered for samples/{u}/" for u in report["unknown"])
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.grounding_report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--samples", type=Path, help="samples root folder (default: each contract's samples)"
    )
    parser.add_argument("--json", type=Path, help="also write the full report here")
    args = parser.parse_args(argv)
    report = measure(args.samples)
    print(_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
