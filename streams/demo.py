"""``streams demo``: local Kafka + simulator + a worker, sample documents in, a table out.

Everything is real except the model: a single-node Kafka broker started from
Maven Central jars, the project's OpenAI-compatible simulator over HTTP, and
the same worker ``streams run`` starts. The simulator answers from fixtures
(the correct record for each sample), and the demo scripts a few faults so
every route shows up: a malformed answer that is re-asked, a 429 that is
retried, a contract-breaking answer, a document over the token budget, and
input that cannot be decoded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from contracts import SAMPLES_DIR
from streams.envelope import RawRecord
from streams.pipeline import Outcome
from streams.textnorm import text_sha256

__all__ = ["register", "run_demo"]


@dataclass(frozen=True)
class DemoInput:
    key: str
    value: bytes
    note: str


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the end-to-end demo on a local Kafka",
        description="Start a local Kafka (Maven jars, no Docker), the LLM simulator and a "
        "worker; feed the invoice samples plus scripted faults; print where each landed.",
    )
    p.add_argument("--cache-dir", type=Path, default=None, help="jar and broker cache")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for outputs")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    from streams.settings import default_cache_dir

    return asyncio.run(run_demo(args.cache_dir or default_cache_dir(), timeout=args.timeout))


def demo_inputs() -> tuple[list[DemoInput], dict[str, list[str]]]:
    """The demo's records, and the simulator script (document sha256 -> behaviours)."""
    samples = sorted((SAMPLES_DIR / "invoice").glob("*.txt"))
    inputs: list[DemoInput] = []
    script: dict[str, list[str]] = {}
    faults = {0: ["malformed", "valid"], 1: ["http_429", "valid"], 2: ["truncated", "valid"]}
    for i, path in enumerate(samples):
        text = path.read_text(encoding="utf-8")
        note = "clean"
        if i in faults:
            script[text_sha256(text)] = faults[i]
            note = " then ".join(faults[i])
        if i % 2:
            value = json.dumps({"id": path.stem, "text": text, "source": {"file": path.name}})
            inputs.append(DemoInput(path.stem, value.encode(), note + " (JSON envelope)"))
        else:
            inputs.append(DemoInput(path.stem, text.encode(), note))
    bad = SAMPLES_DIR / "invoice" / "_bad" / "bad-total.txt"
    if bad.exists():
        inputs.append(
            DemoInput("bad-total", bad.read_bytes(), "model keeps getting the total wrong")
        )
    inputs.append(DemoInput("huge-scan", ("INVOICE line item " * 12000).encode(), "over token cap"))
    inputs.append(
        DemoInput("latin1-bytes", "Rechnung über 5€".encode("latin-1", "replace"), "not UTF-8")
    )
    inputs.append(DemoInput("broken-envelope", b'{"id": "x1", "text": ', "truncated JSON envelope"))
    return inputs, script


async def run_demo(cache_dir: Path, *, timeout: float = 180.0) -> int:
    from confluent_kafka import Producer

    from streams.app import build_worker
    from streams.devstack.kafka import LocalKafka
    from streams.devstack.registry import LocalRegistry
    from streams.logs import configure_logging
    from streams.settings import load_settings
    from streams.simulator import SimulatorConfig, SimulatorThread

    configure_logging("WARNING", json_logs=False)
    say = _progress
    inputs, script = demo_inputs()
    say(f"demo: {len(inputs)} inputs, {len(script)} with scripted model faults")
    kafka = LocalKafka(
        cache_dir, data_dir=cache_dir / "demo" / f"kafka-{int(time.time())}", progress=say
    )
    sim = SimulatorThread(
        SimulatorConfig(fixture_dirs=[SAMPLES_DIR / "invoice"], script=script, latency_ms=50)
    )
    registry = LocalRegistry(cache_dir, progress=say)
    kafka.start()
    registry.start()
    sim_url = sim.start()
    say(f"kafka on {kafka.bootstrap}; schema registry on {registry.url}; simulator on {sim_url}")
    try:
        settings = load_settings(
            None,
            kafka={"bootstrap_servers": kafka.bootstrap},
            registry={"url": registry.url},
            llm={"provider": "openai", "base_url": f"{sim_url}/v1", "model": "sim-extractor-1"},
        )
        rows: dict[str, tuple[RawRecord, Outcome]] = {}

        def record(raw: RawRecord, outcome: Outcome) -> None:
            rows[raw.key_str or raw.coordinates] = (raw, outcome)
            say(f"  [{len(rows)}/{len(inputs)}] {raw.key_str} -> {outcome.route.value}")

        worker = build_worker(settings, "invoices", on_outcome=record)
        producer = Producer({"bootstrap.servers": kafka.bootstrap, "enable.idempotence": True})
        for item in inputs:
            producer.produce("invoices.raw", value=item.value, key=item.key.encode())
        producer.flush(30)
        del producer  # close its connections before the broker goes away
        say(f"produced {len(inputs)} records to invoices.raw; processing…")
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        deadline = time.monotonic() + timeout
        while len(rows) < len(inputs) and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.2)
        stop.set()
        await task
        await worker.pipeline.extractor.provider.aclose()
        _print_table(inputs, rows)
        counts = _topic_counts(kafka.bootstrap, "invoices")
        print("\noutput topics: " + ", ".join(f"{t}={n}" for t, n in counts.items()))
        enc = worker.pipeline.encoder
        print(
            f"schema registry: subject {enc.subject} -> schema id {enc.schema_id} "
            f"({worker.pipeline.contract.compatibility})"
        )
        ok = len(rows) == len(inputs) and sum(counts.values()) == len(inputs)
        print("accounting: every input landed in exactly one topic" if ok else "accounting FAILED")
        return 0 if ok else 1
    finally:
        sim.stop()
        registry.stop()
        kafka.stop()
        shutil.rmtree(kafka.data_dir, ignore_errors=True)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_table(inputs: list[DemoInput], rows: dict[str, tuple[RawRecord, Outcome]]) -> None:
    header = ("input", "scripted", "route", "attempts", "cost $", "grounded", "detail")
    table: list[tuple[str, ...]] = []
    for item in inputs:
        got = rows.get(item.key)
        if got is None:
            table.append((item.key, item.note, "MISSING", "-", "-", "-", "no outcome"))
            continue
        _raw, out = got
        detail = out.reason if out.route.value != "valid" else _valid_detail(out)
        grounded = "-" if out.coverage is None else f"{out.coverage:.0%}"
        table.append(
            (
                item.key,
                item.note,
                out.route.value,
                str(out.attempts),
                f"{out.cost_usd:.6f}",
                grounded,
                detail,
            )
        )
    widths = [min(max(len(r[i]) for r in [header, *table]), 48) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print("\n" + line + "\n" + "-" * len(line))
    for row in table:
        print("  ".join(c[:w].ljust(w) for c, w in zip(row, widths, strict=True)))


def _valid_detail(out: Outcome) -> str:
    headers = dict(out.headers)
    repairs = headers.get("streams.repairs", b"").decode()
    model = headers.get("streams.model", b"").decode()
    return f"model={model}" + (f" repairs={repairs}" if repairs else "")


def _topic_counts(bootstrap: str, pipeline: str) -> dict[str, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "demo-counter"})
    counts: dict[str, int] = {}
    try:
        for route in ("valid", "invalid", "over-budget", "dlq"):
            topic = f"{pipeline}.{route}"
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            total = 0
            if meta is not None and not meta.error:
                for p in meta.partitions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    total += high - low
            counts[topic] = total
    finally:
        consumer.close()
    return counts
