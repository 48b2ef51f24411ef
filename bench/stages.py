"""Per-record cost of the worker's CPU stages, on the sample documents, without Kafka.

    python -m bench.stages                       # CPU µs per record, every stage/contract
    python -m bench.stages --stage ground --contract invoice
    python -m bench.stages --callgrind           # instructions per record (load-independent)

Each stage runs over every sample of a contract (``contracts/samples/<name>/*.txt`` with
the fixture answer ``.json`` next to it) ``--reps`` times after one warm-up pass:

=========  =========================================================================
stage      what one record costs
=========  =========================================================================
miss       ``Pipeline.process`` with an in-process model that answers at once (no HTTP)
hit        ``Pipeline.process`` of a cache hit (an in-memory result cache)
ground     ``ground(record, text)``
estimate   the prompt and its token estimate (``build_messages`` + ``Extractor.estimate``)
validate   ``repair`` + ``validate`` of the fixture answer
encode     the Avro encode of a valid outcome (record, provenance, grounding)
decode     ``decode_entry`` of the record's cache entry
=========  =========================================================================

With ``--callgrind`` each (stage, contract) runs in its own process under
``valgrind --tool=callgrind --toggle-collect=functools_reduce``: the measured passes run
inside one ``functools.reduce`` call, so imports and the warm-up are not counted, and the
figure does not depend on what else the machine is running. The CPU-time figures do.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTRACTS = {"invoice": 1, "claim": 1, "lead": 1}
STAGES = ("miss", "hit", "ground", "estimate", "validate", "encode", "decode")


@dataclass
class _Sample:
    text: str
    answer: str


class _InstantModel:
    """Answers every request at once with the current sample's fixture answer."""

    name = "openai"
    model = "sim-extractor-1"

    def __init__(self) -> None:
        self.answer = ""

    async def complete(self, request: Any) -> Any:
        from streams.providers.base import Completion

        return Completion(
            text=self.answer,
            finish_reason="stop",
            model_reported="sim-extractor-1",
            input_tokens=100,
            output_tokens=20,
            latency_s=0.001,
        )

    async def aclose(self) -> None:
        return None


class _MemoryCache:
    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.entries.get(key)

    async def put(self, key: str, value: bytes) -> None:
        self.entries[key] = value


def _samples(name: str) -> list[_Sample]:
    """The contract's labelled samples (``streams eval``'s loader), each label's file text
    as the model's answer."""
    from contracts import SAMPLES_DIR
    from streams.eval import load_samples

    folder = SAMPLES_DIR / name
    return [
        _Sample(s.text.decode("utf-8"), (folder / f"{s.name}.json").read_text())
        for s in load_samples(folder)
    ]


def _workload(stage: str, name: str) -> tuple[Callable[[], None], int]:
    """A function that runs ``stage`` once over every sample, and the number of samples."""
    from contracts import get_contract
    from streams.attempts import Extraction, build_messages
    from streams.cache_entry import decode_entry
    from streams.encode import AvroWireEncoder
    from streams.envelope import RawRecord, decode
    from streams.extract import Extractor
    from streams.grounding import ground
    from streams.kafka.clients import schema_registry_client
    from streams.pipeline import Pipeline
    from streams.settings import BudgetSettings, PipelineSettings, Price, RegistrySettings

    contract = get_contract(name, CONTRACTS[name])
    samples = _samples(name)
    model = _InstantModel()
    cache = _MemoryCache() if stage in ("hit", "decode") else None
    extractor = Extractor(
        contract,
        model,
        BudgetSettings(),
        price=Price(input_per_mtok=0.15, output_per_mtok=0.6),
        cache=cache,
    )
    registry = schema_registry_client(RegistrySettings(url="mock://"))
    encoder = AvroWireEncoder(contract, registry, "p.valid-value", manage_compatibility=False)
    encoder.register()
    settings = PipelineSettings(name="p", input_topic="p.raw", contract=name, contract_version=1)
    pipeline = Pipeline(settings, contract, extractor, encoder, clock=lambda: 1.7e9)
    raws = [
        RawRecord(
            topic="p.raw", partition=0, offset=i, key=b"k%d" % i, value=s.text.encode("utf-8")
        )
        for i, s in enumerate(samples)
    ]
    loop = asyncio.new_event_loop()
    outcomes = []
    for raw, sample in zip(raws, samples, strict=True):  # fills the cache for "hit"/"decode"
        model.answer = sample.answer
        outcomes.append(loop.run_until_complete(pipeline.process(raw)))
    records = [_record(contract, extractor.schema, s.answer) for s in samples]
    documents = [decode(raw) for raw in raws]

    def process() -> None:
        for raw, sample in zip(raws, samples, strict=True):
            model.answer = sample.answer
            loop.run_until_complete(pipeline.process(raw))

    def grounded() -> None:
        for record, sample in zip(records, samples, strict=True):
            if record is not None:
                ground(record, sample.text)

    def estimated() -> None:
        for document in documents:
            extractor.estimate(build_messages(contract, document))

    def validated() -> None:
        for sample in samples:
            _record(contract, extractor.schema, sample.answer)

    from streams.avro_schema import grounding_datum

    encode_args = []
    for raw, doc, record in zip(raws, documents, records, strict=True):
        if record is None:
            continue
        grounding = ground(record, doc.text)
        extraction = Extraction(record, (), (), 100, 20, 0.0, 1.0, "m", "", grounding=grounding)
        prov = pipeline.provenance(raw, doc, extraction, time.perf_counter())
        encode_args.append((record, prov, grounding_datum(grounding)))

    def encoded() -> None:
        for record, prov, datum in encode_args:
            encoder.encode(record, prov, datum)

    entries = []
    if cache is not None:
        entries = [(cache.get(extractor.cache_key(d)), d.text) for d in documents]

    def decoded() -> None:
        for entry, text in entries:
            if entry is not None:
                decode_entry(entry, contract.model, text, required=contract.grounding_required)

    run = {
        "miss": process,
        "hit": process,
        "ground": grounded,
        "estimate": estimated,
        "validate": validated,
        "encode": encoded,
        "decode": decoded,
    }[stage]
    count = len(samples)
    if stage in ("hit", "decode"):
        count = sum(o.cache_hit or o.route.value == "valid" for o in outcomes)
    return run, count


def _record(contract: Any, schema: Any, answer: str) -> Any:
    """The fixture answer as a record, or None if it does not pass the contract."""
    from streams.errors import OutputError
    from streams.repair import repair
    from streams.validate import validate

    try:
        return validate(contract, repair(answer, schema).value, raw_output=answer)
    except OutputError:
        return None


def _measure(stage: str, name: str, reps: int, counted: bool) -> float:
    run, count = _workload(stage, name)
    run()  # warm-up: caches, lazy imports
    if counted:  # under callgrind: only what runs inside reduce() is collected
        functools.reduce(lambda _, __: run(), range(reps), None)
        return 0.0
    best = float("inf")
    for _ in range(reps):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best / count * 1e6


def _callgrind(stage: str, name: str, reps: int) -> float:
    _run, count = _workload(stage, name) if stage in ("hit", "decode") else (None, 0)
    if not count:
        from contracts import SAMPLES_DIR

        count = sum(
            1 for p in (SAMPLES_DIR / name).glob("*.txt") if p.with_suffix(".json").exists()
        )
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    argv += ["--toggle-collect=functools_reduce", sys.executable, "-m", "bench.stages"]
    argv += ["--stage", stage, "--contract", name, "--reps", str(reps), "--counted"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=Path.cwd())
    m = re.search(r"Collected : (\d+)", out.stderr)
    if m is None:
        raise RuntimeError(out.stderr[-2000:])
    return int(m.group(1)) / reps / count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stages", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--stage", choices=STAGES, action="append", help="default: all")
    parser.add_argument(
        "--contract", choices=sorted(CONTRACTS), action="append", help="default: all"
    )
    parser.add_argument(
        "--reps", type=int, default=None, help="measured passes (default 20; 2 under --callgrind)"
    )
    parser.add_argument(
        "--callgrind", action="store_true", help="instructions per record, under valgrind"
    )
    parser.add_argument("--counted", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    stages, names = args.stage or list(STAGES), args.contract or list(CONTRACTS)
    if args.counted:
        _measure(stages[0], names[0], args.reps, counted=True)
        return
    reps = args.reps or (2 if args.callgrind else 20)
    unit = "k instructions/record" if args.callgrind else "µs CPU/record (best pass)"
    print(f"{'stage':10s} {'contract':8s} {unit}")
    for stage in stages:
        for name in names:
            if args.callgrind:
                figure = _callgrind(stage, name, reps) / 1000
            else:
                figure = _measure(stage, name, reps, counted=False)
            print(f"{stage:10s} {name:8s} {figure:10.1f}", flush=True)


if __name__ == "__main__":
    main()
