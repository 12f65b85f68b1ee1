"""``pip install -c constraints.txt '.[train]'`` resolves, wheels only, on the platforms a user
installs on, each with exactly one ONNX Runtime: onnxruntime-gpu on Linux x86_64, onnxruntime on a
Mac (Apple silicon), on Linux ARM and on Windows (docs/decisions.md #46).

Resolved with uv for the target platform: pip's ``--platform`` picks wheels for the target but
evaluates environment markers for the machine it runs on, so on Linux it asks a Mac for
onnxruntime-gpu. Needs the package index (PyPI), nothing installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNTIMES = ("onnxruntime", "onnxruntime-gpu")


@pytest.mark.index
@pytest.mark.parametrize(
    ("platform", "python", "runtime"),
    [
        ("aarch64-apple-darwin", "3.12", "onnxruntime"),
        ("aarch64-apple-darwin", "3.11", "onnxruntime"),
        ("x86_64-manylinux_2_28", "3.12", "onnxruntime-gpu"),
        ("aarch64-manylinux_2_28", "3.12", "onnxruntime"),  # onnxruntime-gpu has no ARM wheels
        ("x86_64-pc-windows-msvc", "3.12", "onnxruntime"),
    ],
)
def test_the_dependencies_resolve_with_one_onnx_runtime_per_platform(
    tmp_path: Path, platform: str, python: str, runtime: str
) -> None:
    pins = tmp_path / "pins.txt"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "uv"),
            *("pip", "compile", "pyproject.toml", "--extra", "train", "-c", "constraints.txt"),
            *("--python-platform", platform, "--python-version", python),
            *("--only-binary", ":all:", "--no-header", "--no-annotate", "-o", str(pins)),
        ],
        cwd=REPO,
        # onnxruntime 1.31.1's Mac wheels are for macOS 14 and later (uv assumes 13 otherwise);
        # the Python it runs under is enough (no interpreter of the target version downloaded)
        env={**os.environ, "MACOSX_DEPLOYMENT_TARGET": "14.0", "UV_PYTHON_DOWNLOADS": "never"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    resolved = dict(line.split("==") for line in pins.read_text().splitlines() if "==" in line)
    assert [name for name in RUNTIMES if name in resolved] == [runtime]
    assert resolved[runtime] == "1.31.1" and resolved["torch"] == "2.13.0"
