"""/docs and /redoc name only this server's files (fastapi-offline's Swagger UI and ReDoc) and keep
the browser to this server; the pages and the schema need the key, their scripts and the icon do
not (like the translation page's own files)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import Server, running_server

KEY = "s3cret"


@pytest.fixture(scope="module")
def guarded(toy_repository: Path) -> Iterator[Server]:
    with running_server(toy_repository, api_keys=[KEY]) as server:
        yield server


def get(server: Server, path: str, key: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(server.url + path, headers={"x-api-key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


@pytest.mark.parametrize(
    ("path", "script"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")]
)
def test_docs_pages_name_only_this_servers_files(guarded: Server, path: str, script: str) -> None:
    assert get(guarded, path)[0] == 401
    status, headers, body = get(guarded, path, KEY)
    assert status == 200
    html = body.decode()
    addresses = re.findall(r"""(?:src|href|url)\s*[=:(]\s*['"]([^'"]+)['"]""", html)
    assert f"/static/docs/{script}" in addresses and "/favicon.ico" in addresses
    assert [a for a in addresses if not a.startswith("/")] == []
    assert "googleapis" not in html and "cdn." not in html
    policy = headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    assert get(guarded, "/openapi.json")[0] == 401


def test_docs_scripts_and_the_icon_need_no_key(guarded: Server) -> None:
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        status, headers, body = get(guarded, f"/static/docs/{name}")
        assert status == 200 and len(body) > 100_000, name
        assert headers["content-type"].split(";")[0] in ("text/javascript", "text/css"), name
    status, headers, body = get(guarded, "/favicon.ico")
    assert status == 200 and headers["content-type"] == "image/x-icon"
    assert body[:4] == b"\x00\x00\x01\x00" and len(body) < 4096
    assert get(guarded, "/static/favicon.svg")[0] == 200
