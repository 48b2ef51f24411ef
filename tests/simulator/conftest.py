"""A simulator per test over real HTTP, serving two fixtures (one with a directive)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from streams.simulator import RunningSimulator, SimulatorConfig
from tests.simulator.support import ANSWER, DIRECTED, DIRECTED_ANSWER, DOCUMENT


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    root = tmp_path / "samples"
    (root / "nested").mkdir(parents=True)
    (root / "inv-42.txt").write_text(DOCUMENT, encoding="utf-8")
    (root / "inv-42.json").write_text(json.dumps(ANSWER), encoding="utf-8")
    (root / "nested" / "inv-7.txt").write_text(DIRECTED, encoding="utf-8")
    (root / "nested" / "inv-7.json").write_text(json.dumps(DIRECTED_ANSWER), encoding="utf-8")
    (root / "notes.txt").write_text("no answer next to me", encoding="utf-8")
    return root


@pytest.fixture
def make_sim(samples: Path) -> Any:
    @contextlib.asynccontextmanager
    async def make(**options: Any) -> AsyncIterator[tuple[RunningSimulator, httpx.AsyncClient]]:
        config = SimulatorConfig(fixture_dirs=[samples], **options)
        async with (
            RunningSimulator(config) as sim,
            httpx.AsyncClient(base_url=sim.url, timeout=10) as client,
        ):
            yield sim, client

    return make


@pytest.fixture
async def client(make_sim: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with make_sim() as (_, http):
        yield http
