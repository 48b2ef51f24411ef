"""Redrive on the real broker: from the DLQ, of truncated envelopes, lineage and the redrive cap.

Envelopes are made by the real :class:`Pipeline` (a scripted provider that is
never reached: over-budget and undecodable inputs stop before the model call)
and produced to the outcome topics exactly as a worker would.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from contracts import SAMPLES_DIR, get_contract
from streams.devstack.kafka import LocalKafka
from streams.encode import AvroWireEncoder
from streams.envelope import RawRecord
from streams.extract import Extractor
from streams.pipeline import DEFAULT_MAX_EMBEDDED_BYTES, Outcome, Pipeline
from streams.redrive import RedriveResult, redrive
from streams.settings import BudgetSettings, PipelineSettings
from tests.fakes import ScriptedProvider, answer
from tests.integration.pipeline_utils import new_name

pytestmark = pytest.mark.integration

TEXT = (SAMPLES_DIR / "invoice" / "01-acme-industrial-usd.txt").read_text(encoding="utf-8")
# CRLF and trailing blanks: the raw bytes' sha256 differs from the document's (normalised) one.
CRLF_TEXT = TEXT.replace("\n", "  \r\n").encode()

Headers = list[tuple[str, bytes | None]]


def _pipeline(name: str, *, max_embedded_bytes: int = DEFAULT_MAX_EMBEDDED_BYTES) -> Pipeline:
    """A pipeline whose 50-token budget sends every invoice over budget before any call."""
    contract = get_contract("invoice", 1)
    provider = ScriptedProvider([answer("{}")], name="openai", model="sim-extractor-1")
    extractor = Extractor(contract, provider, BudgetSettings(max_input_tokens=50))
    registry = SchemaRegistryClient.new_client({"url": "mock://"})
    encoder = AvroWireEncoder(contract, registry, f"{name}.valid-value", manage_compatibility=False)
    settings = PipelineSettings(
        name=name, input_topic=f"{name}.raw", contract="invoice", contract_version=1
    )
    return Pipeline(settings, contract, extractor, encoder, max_embedded_bytes=max_embedded_bytes)


def _produce(
    bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes, Headers]]
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value, headers in records:
        producer.produce(topic, value=value, key=key, headers=list(headers))
    assert producer.flush(30) == 0, "records not acknowledged by the broker"


def _read(bootstrap: str, topic: str, *, timeout: float = 30.0) -> list[RawRecord]:
    """Every record in ``topic`` from its low watermarks, header values kept null when null."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"redrive-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    out: list[RawRecord] = []
    try:
        meta = consumer.list_topics(timeout=10).topics.get(topic)
        if meta is None:
            return out
        remaining: dict[int, int] = {}
        starts = []
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                remaining[p] = high
                starts.append(TopicPartition(topic, p, low))
        consumer.assign(starts)
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, str(error)
                continue
            part, offset = int(msg.partition() or 0), int(msg.offset() or 0)
            out.append(
                RawRecord(
                    topic=topic,
                    partition=part,
                    offset=offset,
                    key=msg.key(),
                    value=msg.value(),
                    headers=_headers(msg.headers()),
                    timestamp_ms=msg.timestamp()[1],
                )
            )
            if offset + 1 >= remaining.get(part, 0):
                remaining.pop(part, None)
        assert not remaining, f"timed out reading {topic}: {remaining}"
    finally:
        consumer.close()
    return sorted(out, key=lambda r: (r.partition, r.offset))


def _headers(found: object) -> tuple[tuple[str, bytes | None], ...]:
    assert isinstance(found, list | type(None))
    return tuple((str(k), v) for k, v in found or [])


async def _route(bootstrap: str, pipeline: Pipeline, raws: list[RawRecord]) -> list[Outcome]:
    """Run ``raws`` through ``pipeline`` and produce each outcome as the worker would."""
    outcomes = [await pipeline.process(raw) for raw in raws]
    _publish(bootstrap, outcomes)
    return outcomes


def _publish(bootstrap: str, outcomes: list[Outcome]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for out in outcomes:
        headers: list[tuple[str, str | bytes | None]] = list(out.headers)
        producer.produce(out.topic, value=out.value, key=out.key, headers=headers)
    assert producer.flush(30) == 0


async def _envelopes(
    kafka: LocalKafka, name: str, records: list[tuple[bytes | None, bytes, Headers]], **kw: Any
) -> tuple[list[RawRecord], list[dict[str, Any]]]:
    """Produce ``records`` to ``<name>.raw`` and route them; (the originals, their envelopes)."""
    _produce(kafka.bootstrap, f"{name}.raw", records)
    originals = _read(kafka.bootstrap, f"{name}.raw")
    outcomes = await _route(kafka.bootstrap, _pipeline(name, **kw), originals)
    return originals, [json.loads(o.value) for o in outcomes]


def _redriven(kafka: LocalKafka, name: str) -> list[RawRecord]:
    return [
        r for r in _read(kafka.bootstrap, f"{name}.raw") if "streams.redrive-of" in dict(r.headers)
    ]


def _run(kafka: LocalKafka, name: str, route: str, lines: list[str], **kw: Any) -> RedriveResult:
    return redrive(kafka.bootstrap, f"{name}.{route}", f"{name}.raw", progress=lines.append, **kw)


def _counts(result: RedriveResult) -> tuple[int, int, int, int, int]:
    return (result.read, result.redriven, result.skipped, result.gone, result.refused)


def _delete_up_to(bootstrap: str, raw: RawRecord) -> None:
    """Move ``raw``'s partition's low watermark past it, as retention would."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    tp = TopicPartition(raw.topic, raw.partition, raw.offset + 1)
    for future in admin.delete_records([tp]).values():
        future.result(timeout=15)


async def test_dlq_undecodable_input_is_reinjected_byte_for_byte(kafka: LocalKafka) -> None:
    """--from dlq re-injects an undecodable input as its original bytes, with its original key."""
    name = new_name("redrive-dlq")
    binary, keyless = b"\xff\xfe not utf-8 \x00\x01", b"\xc3\x28"
    originals, envelopes = await _envelopes(
        kafka, name, [(b"bin-1", binary, [("trace", b"t-1")]), (None, keyless, [])]
    )
    assert [e["reason"] for e in envelopes] == ["not_utf8", "not_utf8"]
    assert all(e["truncated"] is False and "document" not in e for e in envelopes)
    lines: list[str] = []
    assert _counts(_run(kafka, name, "dlq", lines)) == (2, 2, 0, 0, 0)
    back = {r.value: r for r in _redriven(kafka, name)}
    assert set(back) == {binary, keyless}
    assert back[binary].key == b"bin-1"
    assert back[keyless].key is None  # the envelope's key was a stand-in; none is restored
    headers = dict(back[binary].headers)
    assert headers["trace"] == b"t-1"
    assert headers["streams.redrive-count"] == b"1"
    assert headers["streams.redrive-reason"] == b"not_utf8"
    assert (headers["streams.redrive-of"] or b"").startswith(f"{name}.dlq[".encode())
    source = json.loads(headers["streams.original-source"] or b"")
    first = next(r for r in originals if r.value == binary)
    assert (source["topic"], source["partition"], source["offset"]) == (
        first.topic,
        first.partition,
        first.offset,
    )
    assert lines == [
        "read 2, redriven 2, skipped 0 (nothing to redrive), gone 0 (original no longer in "
        "Kafka), refused 0 (at worker.max_redrives = 3)"
    ]


async def test_truncated_envelope_reinjects_the_exact_original_bytes(kafka: LocalKafka) -> None:
    """A truncated over-budget envelope re-injects the original record, byte for byte."""
    name = new_name("redrive-cut")
    as_json = json.dumps({"id": "inv-7", "text": TEXT, "tenant": "acme"}).encode()
    records: list[tuple[bytes | None, bytes, Headers]] = [
        (b"plain", CRLF_TEXT, [("trace", b"p")]),
        (b"enveloped", as_json, []),
    ]
    _, envelopes = await _envelopes(kafka, name, records, max_embedded_bytes=64)
    assert all(e["route"] == "over-budget" and e["truncated"] is True for e in envelopes)
    assert all(len(e["document"]["text"].encode()) <= 64 for e in envelopes)
    lines: list[str] = []
    assert _counts(_run(kafka, name, "over-budget", lines)) == (2, 2, 0, 0, 0)
    back = {r.key: r for r in _redriven(kafka, name)}
    assert set(back) == {b"plain", b"enveloped"}
    assert back[b"plain"].value == CRLF_TEXT
    assert back[b"enveloped"].value == as_json
    assert dict(back[b"plain"].headers)["trace"] == b"p"
    assert dict(back[b"enveloped"].headers)["streams.redrive-count"] == b"1"
    assert len(lines) == 1  # the summary; no record needed a line of its own


async def test_truncated_envelope_whose_original_is_deleted_is_gone(kafka: LocalKafka) -> None:
    """When retention removed the original, redrive says so in one line and produces nothing."""
    name = new_name("redrive-gone")
    originals, envelopes = await _envelopes(
        kafka, name, [(b"doc", CRLF_TEXT, [])], max_embedded_bytes=64
    )
    assert envelopes[0]["truncated"] is True
    (original,) = originals
    _delete_up_to(kafka.bootstrap, original)
    (stored,) = _read(kafka.bootstrap, f"{name}.over-budget")
    lines: list[str] = []
    assert _counts(_run(kafka, name, "over-budget", lines)) == (1, 0, 0, 1, 0)
    assert lines[0] == (
        f"cannot redrive {name}.over-budget[{stored.partition}]@{stored.offset}: the original "
        f"{name}.raw[{original.partition}]@{original.offset} is gone (retention); "
        "nothing changed for it"
    )
    assert lines[1].startswith("read 1, redriven 0, skipped 0 (nothing to redrive), gone 1 ")
    assert _read(kafka.bootstrap, f"{name}.raw") == []


async def test_truncated_envelope_whose_original_differs_is_gone(kafka: LocalKafka) -> None:
    """An envelope whose source offset now holds another record re-injects nothing for it."""
    name = new_name("redrive-differs")
    records: list[tuple[bytes | None, bytes, Headers]] = [(b"a", CRLF_TEXT, [])]
    _, envelopes = await _envelopes(kafka, name, records, max_embedded_bytes=64)
    _produce(kafka.bootstrap, f"{name}.raw", [(b"other", b"another document", [])])
    other = next(r for r in _read(kafka.bootstrap, f"{name}.raw") if r.key == b"other")
    # The envelope exactly as Pipeline._failed wrote it, but pointing at the other record.
    forged = {**envelopes[0], "source": {**envelopes[0]["source"], "offset": other.offset}}
    forged["source"]["partition"] = other.partition
    _produce(kafka.bootstrap, f"{name}.dlq", [(b"a", json.dumps(forged).encode(), [])])
    (stored,) = _read(kafka.bootstrap, f"{name}.dlq")
    lines: list[str] = []
    assert _counts(_run(kafka, name, "dlq", lines)) == (1, 0, 0, 1, 0)
    sha = envelopes[0]["input_sha256"][:12]
    assert lines[0] == (
        f"cannot redrive {name}.dlq[{stored.partition}]@{stored.offset}: the original "
        f"{name}.raw[{other.partition}]@{other.offset} is gone (the record there does not "
        f"match input_sha256 {sha}); nothing changed for it"
    )
    assert _redriven(kafka, name) == []


async def test_redrive_count_starts_at_one_and_grows(kafka: LocalKafka) -> None:
    """A first redrive carries count 1; redriving the envelope of that record carries count 2."""
    name = new_name("redrive-count")
    await _envelopes(kafka, name, [(b"k", TEXT.encode(), [("trace", b"t")])])
    assert _counts(_run(kafka, name, "over-budget", [])) == (1, 1, 0, 0, 0)
    (first,) = _redriven(kafka, name)
    assert dict(first.headers)["streams.redrive-count"] == b"1"
    # The redriven record runs again, lands in over-budget again, and both envelopes go back.
    await _route(kafka.bootstrap, _pipeline(name), [first])
    assert _counts(_run(kafka, name, "over-budget", [])) == (2, 2, 0, 0, 0)
    redriven = _redriven(kafka, name)
    counts = sorted(dict(r.headers)["streams.redrive-count"] or b"" for r in redriven)
    assert counts == [b"1", b"1", b"2"]
    second = next(r for r in redriven if dict(r.headers)["streams.redrive-count"] == b"2")
    names = [k for k, _ in second.headers]
    assert names.count("streams.redrive-count") == 1  # old lineage replaced, not stacked
    assert names.count("streams.redrive-of") == 1
    assert dict(second.headers)["trace"] == b"t"


async def test_envelope_already_at_max_redrives_is_refused(kafka: LocalKafka) -> None:
    """An input whose headers say it was redriven 3 times is refused with max_redrives=3."""
    name = new_name("redrive-refused")
    await _envelopes(kafka, name, [(b"k", TEXT.encode(), [("streams.redrive-count", b"3")])])
    lines: list[str] = []
    result = _run(kafka, name, "over-budget", lines, max_redrives=3)
    assert _counts(result) == (1, 0, 0, 0, 1)
    (stored,) = _read(kafka.bootstrap, f"{name}.over-budget")
    assert lines[0] == (
        f"refusing to redrive {name}.over-budget[{stored.partition}]@{stored.offset}: "
        "already redriven 3 times (worker.max_redrives = 3)"
    )
    assert lines[1].endswith("refused 1 (at worker.max_redrives = 3)")
    assert _redriven(kafka, name) == []


@pytest.mark.parametrize("embedded", [DEFAULT_MAX_EMBEDDED_BYTES, 64], ids=["whole", "truncated"])
async def test_original_headers_survive_with_null_values(kafka: LocalKafka, embedded: int) -> None:
    """The input's headers go back as they were (a null value stays null); old lineage goes."""
    name = new_name("redrive-headers")
    headers: Headers = [
        ("trace", b"abc"),
        ("flag", None),
        ("streams.redrive-of", b"somewhere[0]@1"),
        ("bin", b"\x00\xff"),
    ]
    originals, _ = await _envelopes(
        kafka, name, [(b"k", TEXT.encode(), headers)], max_embedded_bytes=embedded
    )
    assert _counts(_run(kafka, name, "over-budget", [])) == (1, 1, 0, 0, 0)
    (back,) = [r for r in _read(kafka.bootstrap, f"{name}.raw") if r not in originals]
    kept = [(k, v) for k, v in back.headers if not k.startswith("streams.")]
    assert kept == [("trace", b"abc"), ("flag", None), ("bin", b"\x00\xff")]
    lineage = dict(back.headers)
    assert lineage["streams.redrive-of"] != b"somewhere[0]@1"
    assert [k for k, _ in back.headers].count("streams.redrive-of") == 1
    assert lineage["streams.redrive-count"] == b"1"


async def test_output_too_large_envelope_reinjects_the_original(kafka: LocalKafka) -> None:
    """A DLQ envelope with no document and no raw bytes (output_too_large) re-reads the original."""
    name = new_name("redrive-too-large")
    _produce(kafka.bootstrap, f"{name}.raw", [(b"big", CRLF_TEXT, [("trace", b"x")])])
    (original,) = _read(kafka.bootstrap, f"{name}.raw")
    pipeline = _pipeline(name)
    outcome = pipeline.too_large(original, await pipeline.process(original), limit=100)
    _publish(kafka.bootstrap, [outcome])
    envelope = json.loads(outcome.value)
    assert (envelope["reason"], envelope["raw_value_b64"], envelope["headers"]) == (
        "output_too_large",
        None,
        [],
    )
    assert "document" not in envelope
    assert _counts(_run(kafka, name, "dlq", [])) == (1, 1, 0, 0, 0)
    (back,) = _redriven(kafka, name)
    assert (back.key, back.value) == (b"big", CRLF_TEXT)
    assert dict(back.headers)["trace"] == b"x"  # from the original: the envelope had dropped it
