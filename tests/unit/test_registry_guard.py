"""`streams run` refuses the mock registry unless the config names it, and then warns."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from streams.app import check_registry, warn_mock_registry
from streams.errors import ConfigError
from streams.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_a_forgotten_registry_is_refused() -> None:
    """No registry.url at all: a one-line ConfigError that says what to set."""
    with pytest.raises(ConfigError, match=r"^registry.url is not set, and the in-process mock://"):
        check_registry(load_settings(None))


def test_an_explicit_mock_registry_runs_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """registry.url = "mock://" named in the config: allowed, and a warning says so."""
    caplog.set_level(logging.WARNING, logger="streams.app")
    settings = load_settings(None, registry={"url": "mock://"})
    check_registry(settings)
    assert caplog.records == []
    warn_mock_registry(settings)  # what each worker process does when it starts
    assert [r.getMessage() for r in caplog.records] == [
        "registry.url is mock://: the valid topic's schema ids resolve in no real registry; "
        "use it only for tests"
    ]


def test_a_real_registry_passes_silently(caplog: pytest.LogCaptureFixture) -> None:
    """An http(s) registry URL needs no guard and logs nothing."""
    caplog.set_level(logging.DEBUG, logger="streams.app")
    settings = load_settings(None, registry={"url": "https://registry:8081"})
    check_registry(settings)
    warn_mock_registry(settings)
    assert caplog.records == []


def test_streams_run_without_a_registry_exits_2_with_one_line(tmp_path: Path) -> None:
    """The CLI path: `streams run` with a config that forgot [registry] stops before Kafka."""
    config = tmp_path / "w.toml"
    config.write_text(
        '[[pipelines]]\nname = "x"\ninput_topic = "x.raw"\ncontract = "invoice"\n'
        "contract_version = 1\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "streams", "run", "x", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "streams: error: registry.url is not set, and the in-process mock:// registry writes "
        "schema ids no consumer can resolve: set registry.url to your Schema Registry "
        '(or to "mock://" explicitly, for a test)'
    ]
