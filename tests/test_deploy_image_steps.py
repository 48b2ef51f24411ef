"""The image's Python steps, run without Docker: deploy/Dockerfile's `pip install` line, as
written there (without the local-model extra), in a clean venv on a copy of the tracked
files, then the commands the pods run."""

from __future__ import annotations

import re
import shutil
import subprocess
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "deploy" / "Dockerfile"


def _pip_step() -> list[str]:
    """The Dockerfile's pip command, with the build argument EXTRAS empty (its default)."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    (line,) = [m.group(1) for m in re.finditer(r"^RUN (pip install [^&]*)", text, re.M)]
    assert 'ARG EXTRAS=""' in text
    args = line.split()
    # ".${EXTRAS:+[$EXTRAS]}" with EXTRAS empty is ".". --no-cache-dir keeps an image
    # small; here pip's cache only saves downloads and changes nothing installed.
    return [a.strip('"').replace("${EXTRAS:+[$EXTRAS]}", "") for a in args if a != "--no-cache-dir"]


def test_dockerfile_pip_step_installs_a_working_worker(tmp_path: Path) -> None:
    source = tmp_path / "app"  # the image's WORKDIR /app, after COPY . /app
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    for rel in filter(None, tracked.split("\0")):
        if (REPO / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, source / rel)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    step = _pip_step()
    assert step == ["pip", "install", "-e", "."], step
    subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "-q", *step[1:]],
        cwd=source,
        check=True,
    )
    streams = env_dir / "bin" / "streams"
    assert (
        "usage: streams"
        in subprocess.run(
            [str(streams), "--help"], cwd=tmp_path, capture_output=True, text=True, check=True
        ).stdout
    )
    # The container's checks, outside the source tree: the schemas of the examples, found
    # through the installed distribution's entry points.
    done = subprocess.run(
        [str(streams), "schemas", "check", "--root", str(source)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
