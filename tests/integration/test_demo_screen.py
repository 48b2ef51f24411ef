"""`streams demo` as a new user runs it: the first screen has no error line nobody caused."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from streams.settings import default_cache_dir
from tests.integration.pipeline_utils import REPO

pytestmark = pytest.mark.integration

# librdkafka's own lines are "%<syslog level>|..."; 0-4 are emergency .. warning.
LIBRDKAFKA_LOUD = re.compile(r"^%[0-4]\|")
PYTHON_LOUD = re.compile(r"\b(ERROR|CRITICAL|Traceback)\b|\"level\": \"(error|critical)\"")


def test_demo_prints_progress_and_the_table_without_library_errors() -> None:
    """The demo succeeds; no ERROR line, traceback or librdkafka warning reaches the screen."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams",
            "demo",
            "--model",
            "simulator",
            "--cache-dir",
            str(default_cache_dir()),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    screen = result.stdout + result.stderr
    assert result.returncode == 0, screen
    assert "accounting: every input landed in exactly one topic" in result.stdout
    loud = [
        line
        for line in screen.splitlines()
        if LIBRDKAFKA_LOUD.match(line) or PYTHON_LOUD.search(line)
    ]
    assert loud == [], "\n".join(loud)
