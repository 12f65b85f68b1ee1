"""Session fixtures of the deploy tests: the shipped package and the CPU image built from it once,
shared by the container test and the Compose test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.images import build_tongyeok_image, remove_image


@pytest.fixture(scope="session")
def shipped_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from export.onnx_export import export_package

    return export_package(None, tmp_path_factory.mktemp("shipped") / "en-de")


@pytest.fixture(scope="session")
def image(shipped_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tag = build_tongyeok_image(shipped_package, tmp_path_factory.mktemp("context"))
    yield tag
    remove_image(tag)
