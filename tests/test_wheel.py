"""A wheel built from the repository installs and runs a scaffolded contract, outside the repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streams.simulator import SimulatorConfig, SimulatorThread

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository built as a wheel and installed (without dependencies) into a folder."""
    dist = tmp_path_factory.mktemp("dist")
    target = tmp_path_factory.mktemp("site")
    # Built from a copy of the tracked files: setuptools writes build/ and *.egg-info
    # into the source folder, and an egg-info at the repo root would shadow the
    # installed entry points of every later run from there.
    source = tmp_path_factory.mktemp("source")
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, tracked):
        if (REPO / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, source / rel)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dist), str(source)], check=True)
    (wheel,) = dist.glob("kafka_llm_streams-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    return target


def _run(target: Path, cwd: Path, *args: str, **env: str) -> str:
    """``python -m streams ARGS`` with only the installed wheel on PYTHONPATH."""
    environ = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**environ, "PYTHONPATH": str(target), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_wheel_registers_the_examples_by_entry_point(installed: Path, tmp_path: Path) -> None:
    """From the wheel, streams and the examples load from the install, found by entry point."""
    out = _run(
        installed,
        tmp_path,
        "-c",
        "import streams, contracts; from streams.contract import discover; "
        "print(streams.__file__); print(contracts.__file__); print([c.ref for c in discover()])",
    )
    streams_file, contracts_file, refs = out.splitlines()
    assert Path(streams_file).is_relative_to(installed)
    assert Path(contracts_file).is_relative_to(installed)
    assert refs == "['claim.v1', 'invoice.v1', 'invoice.v2', 'invoice.v3', 'lead.v1']"


def test_wheel_scaffolds_checks_and_tries_a_contract(installed: Path, tmp_path: Path) -> None:
    """contract new, schemas generate/check and contract try all work from the wheel."""
    streams = ["-m", "streams"]
    _run(installed, tmp_path, *streams, "contract", "new", "purchase_order", "--dir", "acme")
    refs = ["purchase_order_contract:CONTRACTS", "--search-path", "acme", "--root", "acme/avro"]
    _run(installed, tmp_path, *streams, "schemas", "generate", *refs)
    assert "schemas match" in _run(installed, tmp_path, *streams, "schemas", "check", *refs)
    samples = tmp_path / "acme" / "purchase_order_contract" / "samples"
    sim = SimulatorThread(SimulatorConfig(fixture_dirs=[samples]))
    url = sim.start()
    try:
        out = _run(
            installed,
            tmp_path,
            *streams,
            "contract",
            "try",
            str(samples / "03-fabrikam.txt"),
            "--contract",
            "purchase_order_contract:PURCHASE_ORDER_V1",
            "--search-path",
            "acme",
            STREAMS_LLM__BASE_URL=f"{url}/v1",
        )
    finally:
        sim.stop()
    assert out.startswith("route: valid")
    assert '"reference": "FAB-5521"' in out
