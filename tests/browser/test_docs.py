"""/docs (Swagger UI) and /redoc (ReDoc) render in a real browser with every non-loopback address
blocked: their scripts come from this server (the fastapi-offline wheel), not from a CDN."""

from __future__ import annotations

from pathlib import Path

from tests.service.conftest import Server

KEY = "s3cret"


def test_swagger_ui_and_redoc_render_offline(page, page_server: Server, artifacts: Path) -> None:
    page.goto(page_server.url + "/docs")
    page.wait_for_selector(".opblock-summary-path")
    paths = page.locator(".opblock-summary-path").all_text_contents()
    assert {"/v1/translate", "/v1/models", "/translate_file", "/v2/translate"} <= set(paths)
    assert page_server.url + "/static/docs/swagger-ui-bundle.js" in page.requests
    page.screenshot(path=str(artifacts / "docs-swagger.png"))
    page.goto(page_server.url + "/redoc")
    page.wait_for_selector("redoc [role=navigation] li, .menu-content li")
    assert page.locator("h1").first.inner_text().startswith("Tongyeok")
    page.get_by_text("/v1/translate", exact=True).first.wait_for()
    assert page_server.url + "/static/docs/redoc.standalone.js" in page.requests
    page.screenshot(path=str(artifacts / "docs-redoc.png"))
    # the fixture fails the test if any request left loopback (a CDN script, a font, a badge)


def test_docs_behind_the_key_with_their_scripts_open(new_page, keyed_server: Server) -> None:
    """Like the page's own files, the scripts need no key; the pages and the schema do."""
    anonymous = new_page()
    assert anonymous.goto(keyed_server.url + "/docs").status == 401
    assert anonymous.goto(keyed_server.url + "/redoc").status == 401
    keyed = new_page(extra_http_headers={"X-API-Key": KEY})
    keyed.goto(keyed_server.url + "/docs")
    keyed.wait_for_selector(".opblock-summary-path")
    assert "/v1/translate" in keyed.locator(".opblock-summary-path").all_text_contents()
