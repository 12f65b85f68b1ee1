"""Images built for real for the deploy tests: podman with runc, and the build context a clean
clone plus `tongyeok export` would give deploy/container/build.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("buildah", "podman", "runc", "debootstrap")
# Rootful podman raises the open-files and processes limits by default; this sandbox may not.
LIMITS = ("--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")


def require_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    assert not missing, f"{missing} not found: install Debian's {' '.join(TOOLS)} (see .ci/run)"


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["podman", "--runtime", "runc", *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
    )


def unique_tag(name: str) -> str:
    return f"localhost/{name}:{uuid.uuid4().hex[:8]}"


def build(script: str, *args: str, env: dict[str, str] | None = None) -> None:
    """Run one of deploy/container/'s build scripts; its output is the failure message."""
    result = subprocess.run(
        [str(REPO / "deploy" / "container" / script), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def build_tongyeok_image(shipped_package: Path, context: Path) -> str:
    """The CPU image, built from the files git tracks or would track (not the ignored ones) and
    models/en-de: what a clean clone plus `tongyeok export` holds."""
    require_tools()
    listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    tracked = subprocess.run(listing, cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (t.decode() for t in tracked)):
        if (REPO / name).is_file():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, context / name)
    shutil.copytree(shipped_package, context / "models" / "en-de")
    tag = unique_tag("tongyeok-test")
    build("build.sh", tag, "cpu", env={"CONTEXT": str(context)})
    return tag


def remove_image(tag: str) -> None:
    podman("rmi", "--force", tag, check=False)
    podman("image", "prune", "--force", check=False)  # a build's untagged intermediate stages
