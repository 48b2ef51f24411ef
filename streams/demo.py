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
import contextlib
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from streams.contract import discover
from streams.envelope import RawRecord
from streams.errors import ConfigError
from streams.pipeline import Outcome
from streams.textnorm import text_sha256

# librdkafka writes its own lines to stderr unless given a logger; through this one they
# are project log lines at their level (INFO for its housekeeping, hidden in the demo).
_LIBRDKAFKA = logging.getLogger("streams.demo.librdkafka")

if TYPE_CHECKING:
    from streams.settings import KafkaSettings

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
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait for outputs")
    p.add_argument(
        "--model",
        choices=["auto", "local", "simulator"],
        default="auto",
        help="auto: the embedded local model if the local-model extra is installed, "
        "else the simulator (default)",
    )
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    from streams.localmodel import local_model_available
    from streams.localmodel.assemble import INSTALL_COMMAND
    from streams.settings import default_cache_dir

    local = args.model == "local" or (args.model == "auto" and local_model_available())
    if args.model == "auto" and not local:
        _progress(
            "the local-model extra is not installed, so this demo uses the LLM simulator. "
            f"For real extraction by a local model: {INSTALL_COMMAND}"
        )
    timeout = args.timeout or (1200.0 if local else 180.0)
    return asyncio.run(
        run_demo(args.cache_dir or default_cache_dir(), timeout=timeout, local=local)
    )


def _invoice_samples() -> Path:
    """The demo's documents: the samples of the invoice contract its pipeline runs."""
    samples = discover().get("invoice", 1).samples
    if samples is None:
        raise ConfigError("contract invoice.v1 declares no samples folder for the demo")
    return samples


def demo_inputs(local: bool = False) -> tuple[list[DemoInput], dict[str, list[str]]]:
    """The demo's records, and the simulator script (document sha256 -> behaviours).

    With the local model every document costs seconds of CPU, so it gets four
    samples and no scripted faults (a real model makes its own mistakes).
    """
    folder = _invoice_samples()
    samples = sorted(folder.glob("*.txt"))[: 4 if local else None]
    inputs: list[DemoInput] = []
    script: dict[str, list[str]] = {}
    faults: dict[int, list[str]] = (
        {}
        if local
        else {0: ["malformed", "valid"], 1: ["http_429", "valid"], 2: ["truncated", "valid"]}
    )
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
    bad = folder / "_bad" / "bad-total.txt"
    if bad.exists() and not local:
        inputs.append(
            DemoInput("bad-total", bad.read_bytes(), "model keeps getting the total wrong")
        )
    inputs.append(DemoInput("huge-scan", ("INVOICE line item " * 12000).encode(), "over token cap"))
    inputs.append(
        DemoInput("latin1-bytes", "Rechnung über 5€".encode("latin-1", "replace"), "not UTF-8")
    )
    inputs.append(DemoInput("broken-envelope", b'{"id": "x1", "text": ', "truncated JSON envelope"))
    return inputs, script


async def run_demo(cache_dir: Path, *, timeout: float = 180.0, local: bool = False) -> int:
    from streams.devstack.kafka import LocalKafka
    from streams.devstack.registry import LocalRegistry
    from streams.logs import configure_logging
    from streams.simulator import SimulatorConfig, SimulatorThread

    configure_logging("WARNING", json_logs=False)
    say = _progress
    inputs, script = demo_inputs(local)
    say(f"demo: {len(inputs)} inputs, {len(script)} with scripted model faults")
    kafka = LocalKafka(
        cache_dir, data_dir=cache_dir / "demo" / f"kafka-{int(time.time())}", progress=say
    )
    registry = LocalRegistry(cache_dir, progress=say)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, kafka.data_dir, ignore_errors=True)
        stack.callback(kafka.stop)  # stop() is idempotent: safe even if start() fails
        kafka.start()
        stack.callback(registry.stop)
        registry.start()
        if local:
            from streams.localmodel import LocalModelServer

            server = LocalModelServer(cache_dir, progress=say)
            stack.callback(server.stop)
            base_url = server.start()
            model, label = server.model_name, f"local llama.cpp server ({server.model_name})"
        else:
            sim = SimulatorThread(
                SimulatorConfig(fixture_dirs=[_invoice_samples()], script=script, latency_ms=50)
            )
            stack.callback(sim.stop)
            base_url = f"{sim.start()}/v1"
            model, label = "sim-extractor-1", "LLM simulator (fixture answers, scripted faults)"
        say(f"kafka on {kafka.bootstrap}; schema registry on {registry.url}")
        say(f"model: {label} at {base_url}")
        return await _run(inputs, kafka.bootstrap, registry.url, base_url, model, label, timeout)


async def _run(
    inputs: list[DemoInput],
    bootstrap: str,
    registry_url: str,
    base_url: str,
    model: str,
    label: str,
    timeout: float,
) -> int:
    from streams.app import build_worker
    from streams.kafka import clients
    from streams.settings import load_settings

    say = _progress
    settings = load_settings(
        None,
        kafka={"bootstrap_servers": bootstrap},
        registry={"url": registry_url},
        llm={"provider": "openai", "base_url": base_url, "model": model, "timeout_s": 300},
    )
    rows: dict[str, tuple[RawRecord, Outcome]] = {}

    def record(raw: RawRecord, outcome: Outcome) -> None:
        rows[raw.key_str or raw.coordinates] = (raw, outcome)
        say(f"  [{len(rows)}/{len(inputs)}] {raw.key_str} -> {outcome.route.value}")

    worker = build_worker(settings, "invoices", on_outcome=record)
    producer = clients.producer(settings.kafka, {"enable.idempotence": True, "logger": _LIBRDKAFKA})
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
    print(f"\nmodel: {label}")
    _print_table(inputs, rows)
    counts = _topic_counts(settings.kafka, "invoices")
    print("\noutput topics: " + ", ".join(f"{t}={n}" for t, n in counts.items()))
    enc = worker.pipeline.encoder
    print(
        f"schema registry: subject {enc.subject} -> schema id {enc.schema_id} "
        f"({worker.pipeline.contract.compatibility})"
    )
    ok = len(rows) == len(inputs) and sum(counts.values()) == len(inputs)
    print("accounting: every input landed in exactly one topic" if ok else "accounting FAILED")
    return 0 if ok else 1


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


def _topic_counts(kafka: KafkaSettings, pipeline: str) -> dict[str, int]:
    from confluent_kafka import TopicPartition

    from streams.kafka import clients

    consumer = clients.consumer(kafka, {"group.id": "demo-counter", "logger": _LIBRDKAFKA})
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
