"""The README's "Your own contract" tutorial, run verbatim outside the repository."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streams.devstack.kafka import LocalKafka
from tests._entry_points import ACTIVE

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"^```bash\n(.*?)^```$", re.S | re.M)


def tutorial_blocks() -> list[str]:
    """The shell blocks between the tutorial markers, in order, exactly as printed."""
    readme = (REPO / "README.md").read_text("utf-8")
    start = readme.index("<!-- tutorial:start -->")
    end = readme.index("<!-- tutorial:end -->")
    return _BLOCK.findall(readme[start:end])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pythonpath() -> str:
    """Empty when the installed project is this checkout; else the checkout, and nothing more.

    CI installs the clone, so a user's clean environment is reproduced exactly. A
    shared development venv may hold another checkout's editable install, and its
    entry points may be older than this pyproject.toml (tests/_entry_points.py).
    """
    probe = subprocess.run(
        [sys.executable, "-c", "import streams; print(streams.__file__)"],
        cwd="/",
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if Path(probe).resolve().is_relative_to(REPO) and not ACTIVE:
        return ""
    return os.pathsep.join([*(str(p) for p in ACTIVE), str(REPO)])


def test_tutorial_runs_verbatim(
    tmp_path_factory: pytest.TempPathFactory, kafka: LocalKafka, registry_url: str
) -> None:
    """Scaffold, edit, schemas, try, run on Kafka, read with AvroDeserializer, v2 ok, v3 409."""
    work = tmp_path_factory.mktemp("tutorial")
    assert not work.resolve().is_relative_to(REPO)
    blocks = tutorial_blocks()
    assert len(blocks) == 8
    script = "set -euo pipefail\n" + "\n".join(blocks)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "STREAMS_CONFIG"} and not key.startswith("PYTEST")
    }
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": _pythonpath(),
        "STREAMS_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap,
        "STREAMS_REGISTRY__URL": registry_url,
        "SIM_PORT": str(_free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=240)
    finally:
        # The script's own background jobs (simulator, worker) if it stopped half-way:
        # they share the session this test started.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    assert proc.returncode == 0, output[-6000:]
    assert "4 passed" in output
    assert "schemas match their contracts" in output
    assert "route: valid" in output
    valid = sorted(line for line in output.splitlines() if line.startswith("valid: "))
    assert valid == [
        "valid: CT/2026/77 89.90 GBP purchase_order",
        "valid: FAB-5521 4999.00 USD purchase_order",
        "valid: NW-1001 1250.00 EUR purchase_order",
    ]
    assert re.search(r"^registry accepted v2 as schema id \d+$", output, re.M)
    assert "purchase_order.v3 is not BACKWARD compatible with purchase_order.v2" in output
    assert "registry refused v3: HTTP 409" in output
    assert (work / "acme" / "avro" / "purchase_order" / "v3.avsc").is_file()
