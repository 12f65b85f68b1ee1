"""LibreTranslate's file translation: /translate_file for .txt and .html (bounded) and every
document format DeepL's document API takes (service/usecase/documents/), the result
kept briefly in memory, by the key that made it, and fetched from /download_file/NAME with that
key."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from fastapi import APIRouter, Request, Response

from contract.options import SearchOptions
from service.api.body import read_body
from service.api.deps import (
    Authorized,
    DetectorDep,
    DisconnectDep,
    OwnerDep,
    RepositoryDep,
    SettingsDep,
    TranslateDep,
)
from service.api.handlers import ERROR_RESPONSES
from service.api.routes.documents import document_pair, in_turn
from service.api.routes.dropin import aligner, batched, pair_for, text_field
from service.errors import InvalidRequest, NotFound, PayloadTooLarge
from service.scheduling.repository import ModelRepository
from service.usecase.documents import FORMATS, Translator, format_of
from service.usecase.markup import TagOptions, translate_markup
from service.usecase.segment import split
from service.usecase.translate import TranslateUseCase

router = APIRouter(tags=["LibreTranslate"], responses=ERROR_RESPONSES)

KEPT_FILES = 32  # translated files each owner may have waiting; its oldest goes first
MEDIA_TYPES = {".txt": "text/plain; charset=utf-8", ".html": "text/html; charset=utf-8"}


@dataclass(frozen=True)
class KeptFile:
    owner: str
    media_type: str
    content: bytes
    expires: float  # clock seconds


class KeptFiles:
    """Translated files waiting to be downloaded: each owner's last ``per_owner``, each for
    ``seconds``; one owner's uploads never push out another's."""

    def __init__(
        self,
        seconds: float,
        per_owner: int = KEPT_FILES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds, self.per_owner, self.clock = seconds, per_owner, clock
        self.files: dict[str, KeptFile] = {}  # oldest first: the first to expire

    def put(self, owner: str, media_type: str, content: bytes, suffix: str) -> str:
        """Keep a file; its name."""
        self.expire()
        name = f"{uuid.uuid4().hex}{suffix}"
        self.files[name] = KeptFile(owner, media_type, content, self.clock() + self.seconds)
        mine = [n for n, kept in self.files.items() if kept.owner == owner]
        for old in mine[: len(mine) - self.per_owner]:
            del self.files[old]
        return name

    def get(self, owner: str, name: str) -> KeptFile | None:
        """The file ``name`` if ``owner`` made it and it has not expired."""
        self.expire()
        kept = self.files.get(name)
        return kept if kept is not None and kept.owner == owner else None

    def expire(self) -> None:
        now = self.clock()
        while self.files and next(iter(self.files.values())).expires <= now:
            del self.files[next(iter(self.files))]


def kept(request: Request, settings: SettingsDep) -> KeptFiles:
    files: KeptFiles | None = getattr(request.app.state, "translated_files", None)
    if files is None:
        files = request.app.state.translated_files = KeptFiles(settings.file_expiry_seconds)
    return files


@router.post("/translate_file", dependencies=[Authorized])
async def translate_file(
    request: Request,
    repository: RepositoryDep,
    settings: SettingsDep,
    translate: TranslateDep,
    disconnect: DisconnectDep,
    detector: DetectorDep,
    owner: OwnerDep,
) -> dict[str, Any]:
    """A .txt (line by line) or .html (text nodes) file; at most max_texts × max_text_chars
    characters, every line of a .txt at most max_text_chars, its sentences within what one
    request may ask for (413 beyond: it could never be served)."""
    data = await read_body(request)
    upload, target = data.get("file"), data.get("target")
    if upload is None or isinstance(upload, str) or not target:
        raise InvalidRequest("'file' (a multipart upload) and 'target' are required")
    suffix = PurePath(upload.filename or "").suffix.lower()
    if suffix not in MEDIA_TYPES:
        if suffix not in FORMATS:
            known = ", ".join(sorted({*MEDIA_TYPES, *FORMATS}))
            raise InvalidRequest(f"file type {suffix or '(none)'!r} is not supported: {known}")
        document = await translate_document(data, str(target), repository, translate)
        files = kept(request, settings)
        name = files.put(owner, document[0], document[1], suffix)
        return {"translatedFileUrl": str(request.url_for("download_file", name=name))}
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
        # its batches run at once: together they must fit the queue and the request timeout
        sentences = sum(len(split(lines[i]).sentences) for i in wanted)
        translate.check_size(sentences, SearchOptions())
        for i, line in zip(wanted, await run([lines[i] for i in wanted]), strict=True):
            lines[i] = line
        translated = "\n".join(lines)
    files = kept(request, settings)
    name = files.put(owner, MEDIA_TYPES[suffix], translated.encode("utf-8"), suffix)
    return {"translatedFileUrl": str(request.url_for("download_file", name=name))}


async def translate_document(
    data: dict[str, Any],
    target: str,
    repository: ModelRepository,
    translate: TranslateUseCase,
) -> tuple[str, bytes]:
    """A document of one of DeepL's formats (service/usecase/documents/), translated while the
    client waits, as DeepL's document API does it in the background: (media type, bytes)."""
    upload = data["file"]
    _, fmt = format_of(upload.filename)
    content = await upload.read()
    await asyncio.to_thread(fmt.verify, content, target)  # hostile, malformed, another target
    source = text_field(data, "source")
    fields = {"target_lang": target}
    if source and source.lower() != "auto":
        fields["source_lang"] = source
    pair = await document_pair(repository, fields, content, fmt, translate.detector)
    strings = in_turn(translate, pair.source, pair.target)
    align = aligner(translate, pair.source, pair.target)
    translator = Translator(strings, align, target_lang=target)
    return fmt.media_type, await fmt.translate(content, translator)


@router.get("/download_file/{name}", name="download_file", dependencies=[Authorized])
async def download_file(
    request: Request, name: str, settings: SettingsDep, owner: OwnerDep
) -> Response:
    """A translated file, by the name /translate_file answered with, for the key that made it."""
    found = kept(request, settings).get(owner, name)
    if found is None:
        raise NotFound(
            f"no translated file {name!r} for this key (each key's last {KEPT_FILES} are kept "
            f"for file_expiry_seconds={settings.file_expiry_seconds:g})"
        )
    return Response(found.content, media_type=found.media_type)
