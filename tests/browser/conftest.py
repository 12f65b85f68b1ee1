"""Debian's Chromium driven by Playwright against a real server on loopback; screenshots go to
$TONGYEOK_ARTIFACTS (default tests/artifacts)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from export.onnx_export import export_package
from model.checkpoint import load_checkpoint
from tests.service.conftest import Server, running_server

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(os.environ.get("TONGYEOK_ARTIFACTS", Path(__file__).parents[1] / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium per module (the system's: never `playwright install`); Playwright's
    event loop ends with it, so later tests may run their own."""
    if not CHROMIUM.exists() and os.environ.get("CI"):
        pytest.fail("chromium is not installed (apt-get install chromium)")
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def two_way_repository(toy_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """en→de and de→en (the toy copy task reads the same both ways), so the swap button shows."""
    repo = tmp_path_factory.mktemp("two-way")
    export_package(toy_checkpoint, repo / "en-de")
    reverse = load_checkpoint(toy_checkpoint)
    reverse.source_lang, reverse.target_lang = "de", "en"
    reverse.save(repo.parent / "de-en.pt")
    export_package(repo.parent / "de-en.pt", repo / "de-en")
    return repo


@pytest.fixture(scope="module")
def page_server(two_way_repository: Path) -> Iterator[Server]:
    with running_server(two_way_repository) as server:
        yield server


@pytest.fixture(scope="module")
def keyed_server(toy_repository: Path) -> Iterator[Server]:
    with running_server(toy_repository, api_keys=["s3cret"]) as server:
        yield server


@pytest.fixture
def axe_source() -> str:
    if not AXE.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{AXE} missing: run `npm ci --prefix tests/browser`")
        pytest.skip(f"{AXE} missing: run `npm ci --prefix tests/browser`")
    return AXE.read_text(encoding="utf-8")
