"""Make this checkout's ``streams.contracts`` entry points visible to the test run.

An editable install writes its entry points once, at install time, so a venv
installed before ``pyproject.toml`` gained or changed an entry point does not
see it. When the installed metadata differs from the checkout's, a copy of the
checkout's is written to a temporary folder and put first on ``sys.path`` and
``PYTHONPATH`` (for the workers and commands the tests start). importlib.metadata
takes the first distribution of a name it finds, so the copy wins. On a fresh
install (CI) the two agree and nothing is done.
"""

from __future__ import annotations

import os
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

GROUP = "streams.contracts"

#: The folder written by :func:`ensure_checkout_entry_points`, if one was needed.
ACTIVE: list[Path] = []


def ensure_checkout_entry_points(root: Path) -> Path | None:
    """Write and activate the checkout's entry points if the installed ones are stale."""
    project = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))["project"]
    declared = project.get("entry-points", {}).get(GROUP, {})
    try:
        installed = metadata.distribution(project["name"]).entry_points.select(group=GROUP)
    except metadata.PackageNotFoundError:
        installed = metadata.EntryPoints(())
    if {ep.name: ep.value for ep in installed} == declared:
        return None
    folder = Path(tempfile.mkdtemp(prefix="streams-entry-points-"))
    info = folder / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
        "utf-8",
    )
    lines = [f"[{GROUP}]", *(f"{name} = {value}" for name, value in declared.items())]
    scripts = project.get("scripts", {})
    lines += ["", "[console_scripts]", *(f"{n} = {v}" for n, v in scripts.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", "utf-8")
    ACTIVE.append(folder)
    sys.path.insert(0, str(folder))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p
    )
    return folder
