"""The core install does not need the faust extra: only streams.faust_app imports faust."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Imports every streams module but the faust engine with faust and mode unimportable.
_PROBE = """
import importlib, pkgutil, sys

class _NoFaust:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("faust", "mode"):
            raise ImportError(f"{name} is in the faust extra")
        return None

sys.meta_path.insert(0, _NoFaust())
import streams
for info in pkgutil.walk_packages(streams.__path__, "streams."):
    if info.name.startswith("streams.faust_app") or info.name.endswith("__main__"):
        continue
    importlib.import_module(info.name)
import contracts
print("ok")
"""


def test_every_core_module_imports_without_faust() -> None:
    """No module outside streams.faust_app imports faust or mode, even indirectly."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
