"""The local model's before/after quality run over every sample of the three contracts.

Not in CI (hours on 2 shared cores). Round-robin in rounds of ``--chunk`` samples per
contract, each round under both configurations, so a run stopped early still has
comparable figures for every contract. Every sample's result is appended to a JSON
Lines file as it finishes; ``--report`` summarises whatever is there::

    streams local-model serve --port 18712 &
    python -m bench.eval_local --base-url http://127.0.0.1:18712/v1 --out /tmp/eval-full.jsonl
    python -m bench.eval_local --report --out /tmp/eval-full.jsonl

"before" is the ``legacy`` profile (the transform before capability profiles), "after"
the ``llamacpp`` profile; both run this branch's repairs (REPAIR_VERSION 2: the float-
noise rule tightened) and the contracts' prompt versions as checked in.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from contracts import SAMPLES_DIR
from streams.contract import resolve
from streams.eval import ModelConfig, SampleResult, evaluate, load_samples, summarise

CONTRACTS = (("invoice", 1), ("claim", 1), ("lead", 1))
MODEL = "qwen2.5-coder-0.5b-instruct"
BUDGETS = {"max_attempts": 2, "max_output_tokens": 900, "max_record_seconds": 3000.0}


def configs(base_url: str) -> list[ModelConfig]:
    llm = {"base_url": base_url, "model": MODEL, "timeout_s": 1200.0, "max_connections": 1}
    return [
        ModelConfig("before", llm={**llm, "schema_profile": "legacy"}, budgets=BUDGETS),
        ModelConfig("after", llm={**llm, "schema_profile": "llamacpp"}, budgets=BUDGETS),
    ]


def _json(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else str(value)


def _done(out: Path) -> set[tuple[str, str, str]]:
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            row = json.loads(line)
            done.add((row["contract"], row["config"], row["result"]["name"]))
    return done


async def run(base_url: str, out: Path, chunk: int, only: str = "") -> None:
    done = _done(out)
    samples = {name: load_samples(SAMPLES_DIR / name) for name, _ in CONTRACTS}
    rounds = max(len(s) for s in samples.values())
    for start in range(0, rounds, chunk):
        for name, version in CONTRACTS:
            contract = resolve(name, version)
            for config in configs(base_url):
                if only and config.label != only:
                    continue
                todo = [
                    s
                    for s in samples[name][start : start + chunk]
                    if (contract.ref, config.label, s.name) not in done
                ]
                if not todo:
                    continue

                def save(
                    _i: int,
                    _n: int,
                    result: SampleResult,
                    ref: str = contract.ref,
                    label: str = config.label,
                    prompt: str = contract.prompt.version,
                ) -> None:
                    row = {
                        "contract": ref,
                        "config": label,
                        "prompt_version": prompt,
                        "result": dataclasses.asdict(result),
                    }
                    with out.open("a") as f:
                        f.write(json.dumps(row, default=_json) + "\n")
                    print(
                        f"{ref} {label} {result.name}: {result.route} {result.seconds:.0f}s",
                        flush=True,
                    )

                await evaluate(contract, todo, config, progress=save)


def report(out: Path) -> dict[str, Any]:
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by: dict[tuple[str, str], list[SampleResult]] = {}
    for row in rows:
        r = row["result"]
        result = SampleResult(**{**r, "errors": tuple(r["errors"]), "repairs": tuple(r["repairs"])})
        by.setdefault((row["contract"], row["config"]), []).append(result)
    return {f"{ref} {label}": summarise(label, results) for (ref, label), results in by.items()}


RESULTS = Path(__file__).parent / "eval_local.json"


def write_results(out: Path, path: Path = RESULTS, note: str = "") -> dict[str, Any]:
    """Summaries of the run in ``out`` (per sample only its route), as checked in."""
    summaries = report(out)
    slim: dict[str, Any] = {}
    for key, s in summaries.items():
        routes = [{k: p[k] for k in ("name", "route", "reason")} for p in s["per_sample"]]
        slim[key] = {k: v for k, v in s.items() if k != "per_sample"} | {"per_sample": routes}
    if note:
        slim["_note"] = note
    path.write_text(json.dumps(slim, indent=2, sort_keys=True) + "\n")
    return slim


def markdown_section(path: Path = RESULTS) -> str:
    """The BENCHMARKS.md section for ``bench/eval_local.json``, or nothing without it."""
    if not path.exists():
        return ""
    data = json.loads(path.read_text())
    lines = [
        "## Extraction quality with the local model, before and after (issue 13)",
        "",
        "Measured by `python -m bench.eval_local` (not in CI): `streams eval`'s stages and "
        "scoring, the llama.cpp server with Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 2 threads, "
        "one request at a time, at most 2 attempts and 900 output tokens. **before**: the "
        "`legacy` schema profile (every constraint as words, the transform before profiles); "
        "**after**: the `llamacpp` profile (pattern, `format: date`, lengths, item counts "
        "and money as a places regex in the grammar). Same prompts (the contracts' checked-in "
        "versions) and repairs for both. Field accuracy is the exact match over every field "
        "of the valid records. Raw figures: [`bench/eval_local.json`](bench/eval_local.json).",
        "",
        "| contract | config | documents | valid rate | field exact (valid) | "
        "field normalised | s/document | not valid because |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    keys = [k for k in data if not k.startswith("_")]
    for key in sorted(keys, key=lambda k: (k.split()[0], k.split()[1] != "before")):
        s = data[key]
        ref, label = key.split()
        reasons = ", ".join(f"`{k}` {v}" for k, v in s["invalid_reasons"].items()) or "-"
        lines.append(
            f"| {ref} | {label} | {s['samples']} | {s['valid_rate'] * 100:.0f}% | "
            f"{s['field_exact'] * 100:.1f}% | {s['field_normalised'] * 100:.1f}% | "
            f"{s['seconds']['mean']:.0f} | {reasons} |"
        )
    for label in ("before", "after"):
        rows = [data[k] for k in keys if k.split()[1] == label]
        docs = sum(r["samples"] for r in rows)
        valid = sum(r["routes"]["valid"] for r in rows)
        n = sum(f["n"] for r in rows for f in r["fields"].values())
        exact = sum(f["exact"] for r in rows for f in r["fields"].values())
        normal = sum(f["normalised"] for r in rows for f in r["fields"].values())
        secs = sum(r["seconds"]["total"] for r in rows)
        if docs:
            lines.append(
                f"| **all three** | {label} | {docs} | {valid / docs * 100:.0f}% | "
                f"{exact / n * 100 if n else 0:.1f}% | {normal / n * 100 if n else 0:.1f}% | "
                f"{secs / docs:.0f} | |"
            )
    if data.get("_note"):
        lines += ["", data["_note"]]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-url", default="http://127.0.0.1:18712/v1")
    p.add_argument("--out", type=Path, default=Path("/tmp/eval-full.jsonl"))
    p.add_argument("--chunk", type=int, default=2)
    p.add_argument("--config", default="", choices=("", "before", "after"), help="run one only")
    p.add_argument("--report", action="store_true")
    p.add_argument("--write", action="store_true", help="with --report: bench/eval_local.json")
    p.add_argument("--note", default="", help="with --write: a paragraph under the table")
    args = p.parse_args()
    if args.report and args.write:
        write_results(args.out, note=args.note)
        print(markdown_section())
        return
    if args.report:
        for key, s in report(args.out).items():
            fields = {k: round(v["exact_rate"], 3) for k, v in s["fields"].items()}
            print(
                key,
                json.dumps(
                    {
                        "n": s["samples"],
                        "valid_rate": round(s["valid_rate"], 3),
                        "field_exact": round(s["field_exact"], 3),
                        "field_normalised": round(s["field_normalised"], 3),
                        "s_per_doc": s["seconds"]["mean"],
                        "reasons": s["invalid_reasons"],
                        "most_wrong": s["most_wrong"],
                        "fields": fields,
                    }
                ),
            )
        return
    asyncio.run(run(args.base_url, args.out, args.chunk, args.config))


if __name__ == "__main__":
    main()
