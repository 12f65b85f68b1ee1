"""Debian's Chromium driven by Playwright against a real server on loopback; screenshots go to
$TONGYEOK_ARTIFACTS (default tests/artifacts)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

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
TIMEOUT_MS = 20_000
DESKTOP = {"width": 1100, "height": 800}
PHONE = {"width": 375, "height": 667}  # an iPhone SE: the smallest common phone screen
LOOPBACK = ("127.0.0.1", "localhost", "::1")


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


def offline(blocked: list[str]) -> Callable[..., None]:
    """A route handler that lets loopback requests through and aborts (and records) any other:
    the air-gapped host the README promises, so a CDN script fails the test that needs it."""

    def handle(route, request) -> None:
        url = urlsplit(request.url)
        if url.scheme in ("data", "blob") or url.hostname in LOOPBACK:
            route.fallback()
        else:
            blocked.append(request.url)
            route.abort("internetdisconnected")

    return handle


@pytest.fixture
def new_page(browser, artifacts: Path, request: pytest.FixtureRequest):
    """Pages in fresh contexts with every non-loopback request blocked (DESKTOP by default;
    ``phone=True`` for PHONE, ``color_scheme="dark"``, context options); each page's last state
    is saved as a screenshot, and a test that tried to reach outside fails."""
    made = []

    def make(phone: bool = False, **options: object):
        context = browser.new_context(
            viewport=PHONE if phone else DESKTOP, is_mobile=phone, has_touch=phone, **options
        )
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.requests = []  # every URL the page asks for: this server's, nothing else
        page.blocked = []
        page.on("request", lambda r: page.requests.append(r.url))
        context.route("**/*", offline(page.blocked))
        made.append((context, page))
        return page

    yield make
    for i, (context, page) in enumerate(made):
        page.screenshot(path=str(artifacts / f"{request.node.name}-{i}-end.png"), full_page=True)
        context.close()
    outside = [url for _, page in made for url in page.blocked]
    assert outside == [], f"the page asked for addresses outside this server: {outside}"


@pytest.fixture
def page(new_page):
    return new_page()


def run_axe(page, axe_source: str) -> list[tuple[str, str, list[object]]]:
    """axe-core's violations on the page as it is now (every impact), as (rule, impact, nodes)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=axe_source)
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [(v["id"], v["impact"], [n["target"] for n in v["nodes"]]) for v in result["violations"]]
