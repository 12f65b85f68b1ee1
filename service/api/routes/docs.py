"""The OpenAPI schema and its browsable pages (Swagger UI at /docs, ReDoc at /redoc), behind the
API key like the routes they describe; their scripts come from the installed fastapi-offline
package, never from a CDN (docs/decisions.md #45)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse

from service.api.deps import Authorized

# Swagger UI's bundle and stylesheet and ReDoc's standalone bundle, as the wheel ships them;
# mounted without the key like the page's own files (routes/page.py): library code, no secrets.
ASSETS = Path(str(files("fastapi_offline") / "static"))
ASSETS_URL = "/static/docs"
FAVICON_URL = "/favicon.ico"
# This server only: ReDoc's menu shows Redocly's logo from cdn.redoc.ly whatever its options say;
# the policy stops that request in the browser (Swagger UI's and ReDoc's inline start-up script
# and styles, and ReDoc's search worker from a blob: URL, are allowed).
SAME_ORIGIN_ONLY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
    ]
)

router = APIRouter(dependencies=[Authorized], include_in_schema=False)


@router.get("/openapi.json")
async def openapi(request: Request) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema


@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return same_origin_only(
        get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{request.app.title} API",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{FAVICON_URL}",
            # Swagger UI would otherwise ask validator.swagger.io for a badge on non-local hosts.
            swagger_ui_parameters={"validatorUrl": None},
        )
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return same_origin_only(
        get_redoc_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{request.app.title} API",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{FAVICON_URL}",
            with_google_fonts=False,
        )
    )


def same_origin_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = SAME_ORIGIN_ONLY
    return page
