"""`streams contract new` and `try`, and the schema tools on a user's package."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.authoring import scaffold
from streams.authoring._try import try_document
from streams.cli import main
from streams.errors import ConfigError, Route
from streams.settings import Settings
from streams.simulator import SimulatorConfig, SimulatorThread

PACKAGE = "purchase_order_contract"

V2 = """
from pydantic import Field

from streams.contract import Contract, Prompt
from purchase_order_contract import v1


class PurchaseOrder(v1.PurchaseOrder):
    buyer_reference: str | None = Field(default=None, description="The buyer's own reference.")


PURCHASE_ORDER_V2 = Contract(
    name="purchase_order", version=2, model=PurchaseOrder,
    prompt=Prompt(v1.INSTRUCTIONS, v1.PURCHASE_ORDER_V1.prompt.examples),
    compatibility="BACKWARD", compatible_with=1, samples=v1.PURCHASE_ORDER_V1.samples,
)
"""

V3_BREAKING = """
from datetime import date

from pydantic import BaseModel, ConfigDict

from streams.contract import Contract, Prompt
from purchase_order_contract import v1


class PurchaseOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reference: int
    issued_on: date


PURCHASE_ORDER_V3 = Contract(
    name="purchase_order", version=3, model=PurchaseOrder,
    prompt=Prompt(v1.INSTRUCTIONS), compatibility="BACKWARD", compatible_with=2,
    samples=v1.PURCHASE_ORDER_V1.samples,
)
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A freshly scaffolded package; its module is forgotten again after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    scaffold("purchase_order", tmp_path / "acme")
    yield tmp_path / "acme"
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def test_scaffold_writes_model_prompt_samples_and_a_test(package: Path) -> None:
    """Three NAME.txt + NAME.json samples, a v1 module, the entry point, a test file."""
    samples = package / PACKAGE / "samples"
    assert sorted(p.name for p in samples.iterdir()) == [
        "01-northwind.json",
        "01-northwind.txt",
        "02-contoso.json",
        "02-contoso.txt",
        "03-fabrikam.json",
        "03-fabrikam.txt",
    ]
    pyproject = (package / "pyproject.toml").read_text("utf-8")
    assert 'purchase_order = "purchase_order_contract:CONTRACTS"' in pyproject
    assert (package / "tests" / f"test_{PACKAGE}.py").is_file()


def test_scaffolded_tests_pass(package: Path) -> None:
    """The generated test file passes as generated."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=package,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout


def test_scaffold_refuses_a_bad_name_and_a_used_folder(tmp_path: Path) -> None:
    """A name that cannot be a package or Avro name, or a folder with a project, is refused."""
    with pytest.raises(ConfigError, match="lower-case letters"):
        scaffold("Purchase-Order", tmp_path)
    scaffold("po", tmp_path)
    with pytest.raises(ConfigError, match="already holds a project"):
        scaffold("po", tmp_path)


def test_schemas_generate_and_check_a_users_versions(
    package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """generate writes avro/<name>/v<N>.avsc where asked; check proves v2 against v1."""
    (package / PACKAGE / "v2.py").write_text(V2, "utf-8")
    refs = [f"{PACKAGE}.v1:PURCHASE_ORDER_V1", f"{PACKAGE}.v2:PURCHASE_ORDER_V2"]
    args = ["--search-path", str(package), "--root", str(package / "avro")]
    assert main(["schemas", "generate", *refs, *args]) == 0
    assert (package / "avro" / "purchase_order" / "v2.avsc").is_file()
    schema = json.loads((package / "avro" / "purchase_order" / "v1.avsc").read_text("utf-8"))
    assert schema["namespace"] == "purchase_order.v1"
    assert main(["schemas", "check", *refs, *args]) == 0
    assert "schemas match their contracts" in capsys.readouterr().out


def test_check_fails_a_version_that_breaks_what_it_claims(
    package: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A v3 claiming BACKWARD compatibility with v2 while changing types fails the proof."""
    (package / PACKAGE / "v2.py").write_text(V2, "utf-8")
    (package / PACKAGE / "v3.py").write_text(V3_BREAKING, "utf-8")
    refs = [f"{PACKAGE}.v{n}:PURCHASE_ORDER_V{n}" for n in (1, 2, 3)]
    args = ["--search-path", str(package), "--root", str(package / "avro")]
    assert main(["schemas", "generate", *refs, *args]) == 0
    capsys.readouterr()
    assert main(["schemas", "check", *refs, *args]) == 1
    err = capsys.readouterr().err
    assert "purchase_order.v3 is not BACKWARD compatible with purchase_order.v2" in err


def test_try_prints_record_provenance_grounding_and_route(package: Path) -> None:
    """One sample through the real pipeline stages against the simulator over HTTP, no Kafka."""
    samples = package / PACKAGE / "samples"
    sim = SimulatorThread(SimulatorConfig(fixture_dirs=[samples]))
    url = sim.start()
    try:
        settings = Settings(llm={"base_url": f"{url}/v1"})
        out = io.StringIO()
        outcome = _run(
            try_document(
                samples / "02-contoso.txt",
                settings,
                f"{PACKAGE}:PURCHASE_ORDER_V1",
                None,
                search_path=[package],
                out=out,
            )
        )
    finally:
        sim.stop()
    text = out.getvalue()
    assert outcome.route is Route.VALID
    assert text.startswith("route: valid")
    assert '"reference": "CT/2026/77"' in text
    assert '"model_reported": "sim-extractor-1' in text
    assert "  reference                        exact            at 21..31" in text


def test_try_reports_an_invalid_answer_with_its_field_errors(package: Path) -> None:
    """A document whose answer breaks the contract prints the invalid route and the errors."""
    samples = package / PACKAGE / "samples"
    bad = package / "bad"
    bad.mkdir()
    (bad / "04-bad.txt").write_text("ACME\nRef A-1\nDated 2026-02-30\nTotal 5 EUR\n", "utf-8")
    answer = {"reference": "A-1", "counterparty": "ACME", "issued_on": "2026-02-30"}
    (bad / "04-bad.json").write_text(json.dumps(answer | {"total": 5, "currency": "EUR"}))
    sim = SimulatorThread(SimulatorConfig(fixture_dirs=[samples, bad]))
    url = sim.start()
    try:
        out = io.StringIO()
        outcome = _run(
            try_document(
                bad / "04-bad.txt",
                Settings(llm={"base_url": f"{url}/v1"}),
                f"{PACKAGE}.v1:PURCHASE_ORDER_V1",
                1,
                search_path=[package],
                out=out,
            )
        )
    finally:
        sim.stop()
    assert outcome.route is Route.INVALID
    assert out.getvalue().startswith("route: invalid")
    assert "issued_on" in out.getvalue()


def _run(coro: object) -> object:
    import asyncio

    return asyncio.run(coro)  # type: ignore[arg-type]
