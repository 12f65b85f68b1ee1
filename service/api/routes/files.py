"""LibreTranslate's file translation: /translate_file for .txt and .html (bounded), the result
kept briefly in memory and fetched from /download_file/NAME."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from pathlib import PurePath
from typing import Any

from fastapi import APIRouter, Request, Response

from service.api.body import read_body
from service.api.deps import (
    Authorized,
    DetectorDep,
    DisconnectDep,
    RepositoryDep,
    SettingsDep,
    TranslateDep,
)
from service.api.handlers import ERROR_RESPONSES
from service.api.routes.dropin import aligner, batched, pair_for
from service.errors import InvalidRequest, NotFound, PayloadTooLarge
from service.usecase.markup import TagOptions, translate_markup

router = APIRouter(tags=["LibreTranslate"], responses=ERROR_RESPONSES)

KEPT_FILES = 32  # translated files waiting to be downloaded; the oldest goes first
MEDIA_TYPES = {".txt": "text/plain; charset=utf-8", ".html": "text/html; charset=utf-8"}


def kept(request: Request) -> OrderedDict[str, tuple[str, bytes]]:
    files: OrderedDict[str, tuple[str, bytes]] | None = getattr(
        request.app.state, "translated_files", None
    )
    if files is None:
        files = request.app.state.translated_files = OrderedDict()
    return files


@router.post("/translate_file", dependencies=[Authorized])
async def translate_file(
    request: Request,
    repository: RepositoryDep,
    settings: SettingsDep,
    translate: TranslateDep,
    disconnect: DisconnectDep,
    detector: DetectorDep,
) -> dict[str, Any]:
    """A .txt (line by line) or .html (text nodes) file; at most max_texts × max_text_chars
    characters, every line of a .txt at most max_text_chars."""
    data = await read_body(request)
    upload, target = data.get("file"), data.get("target")
    if upload is None or isinstance(upload, str) or not target:
        raise InvalidRequest("'file' (a multipart upload) and 'target' are required")
    suffix = PurePath(upload.filename or "").suffix.lower()
    if suffix not in MEDIA_TYPES:
        raise InvalidRequest(f"file type {suffix or '(none)'!r} is not supported: .txt or .html")
    try:
        text = (await upload.read()).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("the file is not UTF-8 text") from None
    limit = settings.max_texts * settings.max_text_chars
    if len(text) > limit:
        raise PayloadTooLarge(f"the file has {len(text)} characters, more than {limit}")
    pair = pair_for(repository, data.get("source"), str(target), [text], detector)
    source, target = pair.source, pair.target
    run = batched(translate, disconnect, source, target)
    if suffix == ".html":
        align = aligner(translate, source, target)
        translated = (await translate_markup([text], TagOptions(mode="html"), run, align))[0]
    else:
        lines = text.split("\n")
        wanted = [i for i, line in enumerate(lines) if line.strip()]
        for i in wanted:
            if len(lines[i]) > settings.max_text_chars:
                raise InvalidRequest(
                    f"line {i + 1} has {len(lines[i])} characters, more than "
                    f"max_text_chars={settings.max_text_chars}"
                )
        for i, line in zip(wanted, await run([lines[i] for i in wanted]), strict=True):
            lines[i] = line
        translated = "\n".join(lines)
    name = f"{uuid.uuid4().hex}{suffix}"
    files = kept(request)
    files[name] = (MEDIA_TYPES[suffix], translated.encode("utf-8"))
    while len(files) > KEPT_FILES:
        files.popitem(last=False)
    return {"translatedFileUrl": str(request.url_for("download_file", name=name))}


@router.get("/download_file/{name}", name="download_file")
async def download_file(request: Request, name: str) -> Response:
    """A translated file, by the name /translate_file answered with."""
    found = kept(request).get(name)
    if found is None:
        raise NotFound(f"no translated file {name!r} (files are kept for the last {KEPT_FILES})")
    media_type, content = found
    return Response(content, media_type=media_type)
