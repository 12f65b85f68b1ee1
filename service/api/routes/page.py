"""The translation page: ``/``, its icon and its files under ``/static``, served from the package
itself, and the API docs' scripts under ``/static/docs`` (from fastapi-offline)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from service.api.routes import docs

STATIC = Path(__file__).parents[1] / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    """The page itself; it asks this server only (no CDN, no fonts from elsewhere)."""
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get(docs.FAVICON_URL)
async def favicon() -> FileResponse:
    """The icon browsers ask for by this name (the page links its SVG, which this one mirrors)."""
    return FileResponse(STATIC / "favicon.ico", media_type="image/x-icon")


def mount_static(app: FastAPI) -> None:
    # The more specific mount first: /static would answer /static/docs/... with a 404.
    app.mount(docs.ASSETS_URL, StaticFiles(directory=docs.ASSETS), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
