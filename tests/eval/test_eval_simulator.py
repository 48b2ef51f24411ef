"""``streams eval`` end to end against the project's simulator over real HTTP, no Kafka."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts import SAMPLES_DIR
from streams.cli import main
from streams.eval._score import compare_fields, percentile
from streams.simulator import SimulatorConfig, SimulatorThread
from streams.textnorm import text_sha256

INVOICES = SAMPLES_DIR / "invoice"
#: The first four invoice samples: the documents every run here uses.
FOUR = sorted(p.stem for p in INVOICES.glob("*.txt"))[:4]
#: The two documents the worse "model" answers wrongly on every attempt.
BROKEN = FOUR[1:3]


def _sim(script: dict[str, list[str]] | None = None) -> Iterator[str]:
    sim = SimulatorThread(SimulatorConfig(fixture_dirs=[INVOICES], script=script or {}))
    sim.start()
    try:
        yield f"{sim.url}/v1"
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def good_sim() -> Iterator[str]:
    yield from _sim()


@pytest.fixture(scope="module")
def worse_sim() -> Iterator[str]:
    """The same fixtures, but two documents always get a contract-breaking answer."""
    script = {
        text_sha256((INVOICES / f"{name}.txt").read_text(encoding="utf-8")): ["invalid"] * 3
        for name in BROKEN
    }
    yield from _sim(script)


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    folder = tmp_path / "samples"
    folder.mkdir()
    for name in FOUR:
        for suffix in (".txt", ".json"):
            (folder / f"{name}{suffix}").write_bytes((INVOICES / f"{name}{suffix}").read_bytes())
    (folder / "unlabelled.txt").write_text("no label beside me", encoding="utf-8")
    return folder


def _model(label: str, url: str) -> str:
    return f"label={label},base_url={url},model=sim-extractor-1,timeout_s=5"


def test_one_model_reports_valid_rate_fields_and_costs(
    good_sim: str, samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every labelled sample valid, every field exact, costs and grounding reported."""
    out = tmp_path / "eval.json"
    code = main(
        [
            *("eval", "invoice.v1", str(samples), "--model", _model("sim", good_sim)),
            *("--json", str(out), "--min-valid-rate", "100%", "--min-field-accuracy", "1"),
        ]
    )
    printed = capsys.readouterr()
    assert code == 0
    assert "valid rate                      100.0%" in printed.out
    assert "[eval sim] 4/4" in printed.err  # the progress line per sample
    report = json.loads(out.read_text())
    (s,) = report["configurations"]
    assert (s["samples"], s["valid_rate"], s["field_exact"]) == (4, 1.0, 1.0)
    assert s["routes"] == {"valid": 4, "invalid": 0, "over-budget": 0, "dlq": 0}
    assert s["fields"]["line_items[].amount"]["n"] == 4
    assert s["tokens"]["per_document"] > 0
    assert s["grounding_coverage"] > 0.9
    assert s["attempts"]["p90"] == 1


def test_a_worse_second_model_is_shown_side_by_side_and_fails_the_gate(
    good_sim: str,
    worse_sim: str,
    samples: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two configurations: the diff, the disagreeing samples, HTML, and exit 1 on the gate."""
    out, page = tmp_path / "eval.json", tmp_path / "eval.html"
    argv = ["eval", "invoice", "--contract-version", "1", str(samples)]
    argv += ["--model", _model("a", good_sim), "--model", _model("b", worse_sim)]
    argv += ["--json", str(out), "--html", str(page), "--min-valid-rate", "0.8"]
    code = main(argv)
    printed = capsys.readouterr()
    assert code == 1
    assert "gate failed: b valid rate 50.0% < 80.0%" in printed.err
    assert "samples where a and b disagree: 2" in printed.out
    report = json.loads(out.read_text())
    a, b = report["configurations"]
    assert (a["valid_rate"], b["valid_rate"]) == (1.0, 0.5)
    assert b["routes"]["invalid"] == 2
    assert b["invalid_reasons"]  # the contract's field error kinds, counted
    comparison = report["comparison"]
    assert comparison["valid_rate_diff"] == -0.5
    assert sorted(d["name"] for d in comparison["disagreements"]) == BROKEN
    text = page.read_text()
    assert "<svg" in text
    assert "http" not in text.split("<body>", 1)[1].replace("http://www.w3.org/2000/svg", "")


def test_the_gate_passes_for_the_same_pair_when_the_floor_is_lower(
    good_sim: str, worse_sim: str, samples: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--min-valid-rate 50% lets the worse model through: the gate is the only judge."""
    argv = ["eval", "invoice.v1", str(samples), "--min-valid-rate", "50%"]
    argv += ["--model", _model("a", good_sim), "--model", _model("b", worse_sim)]
    assert main(argv) == 0
    capsys.readouterr()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "invoice", "SAMPLES", "--model", "model=m"], "add --contract-version"),
        (["eval", "invoice.v1", "SAMPLES", "--model", "colour=red"], "key 'colour' is unknown"),
        (["eval", "invoice.v1", "/nonexistent", "--model", "model=m"], "does not exist"),
        (
            ["eval", "invoice.v1", "SAMPLES", "--model", "base_url=http://127.0.0.1:9/v1"],
            "did not answer a probe",
        ),
    ],
)
def test_mistakes_are_one_line(
    argv: list[str], message: str, samples: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad contract ref, model spec, folder or unreachable endpoint: exit 2 and one line."""
    code = main([str(samples) if a == "SAMPLES" else a for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_fields_compare_exactly_and_normalised() -> None:
    """12.5 equals 12.50; 'ACME  Ltd.' matches 'acme ltd' only normalised; lines by position."""
    expected = {"total": 12.5, "vendor": "acme ltd", "lines": [{"a": 1}, {"a": 2}]}
    record = {"total": "12.50", "vendor": "ACME  Ltd.", "lines": [{"a": 1}]}
    got = compare_fields(expected, {**record, "total": 12.50})
    assert got["total"] == (True, True)
    assert got["vendor"] == (False, True)
    assert got["lines[].a"] == (False, False)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
