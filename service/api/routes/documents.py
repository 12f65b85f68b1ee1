"""DeepL's document API: /v2/document (upload: an id and a key), /v2/document/{id} (status) and
/v2/document/{id}/result (the translated document, once), over the formats of
service/usecase/documents/ and the job store of its jobs.py (records and results in the state
store: any replica answers a status or a download)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from service.api.body import read_body
from service.api.deps import (
    DetectorDep,
    RepositoryDep,
    SettingsDep,
    TranslateDep,
    given_key,
)
from service.api.routes.deepl import deepl_router
from service.api.routes.dropin import TAG, Pair, aligner, native_request, pair_for, text_field
from service.errors import InvalidRequest
from service.scheduling.repository import ModelRepository
from service.usecase.access import ACCOUNT
from service.usecase.detect import Detector
from service.usecase.documents import Format, Translator, format_of
from service.usecase.documents.jobs import JobStore, Progress, State
from service.usecase.segment import split
from service.usecase.translate import TranslateUseCase

router = deepl_router()

# Sentences one batch of a document sends at once: its batches go one after another, each well
# inside the queue and the request timeout, so a long document never gets a 413 or a 504.
BATCH_SENTENCES = 256
ANONYMOUS = "anonymous"  # the owner of every document when the service has no keys


async def get_owner(request: Request, settings: SettingsDep) -> str:
    """Whose documents a request makes and may fetch: its key's (a digest, never the key), or
    everyone's without keys; ``authorize`` has refused a missing or wrong key already."""
    key = await given_key(request) if ACCOUNT.get() is not None else None
    if key is None:
        return ANONYMOUS
    return "key:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


OwnerDep = Annotated[str, Depends(get_owner)]


def store(request: Request) -> JobStore:
    jobs: JobStore = request.app.state.document_jobs  # built with the app, in its state store
    return jobs


async def never() -> None:
    """A background job has no client to lose: its translation runs to its end or expiry."""
    await asyncio.Event().wait()


def in_turn(
    translate: TranslateUseCase, source: str, target: str, progress: Progress | None = None
) -> Callable[[list[str]], Awaitable[list[str]]]:
    """Strings through the use case in batches of at most ``max_texts`` strings and
    ``BATCH_SENTENCES`` sentences, one batch after another; their sentences counted in
    ``progress`` as they are planned and as each batch is done."""
    step = translate.settings.max_texts
    progress = progress or Progress()

    async def run(strings: list[str]) -> list[str]:
        counts = [len(split(text).sentences) for text in strings]
        progress.total += sum(counts)
        out: list[str] = []
        batch: list[str] = []
        sentences = 0
        for text, count in [*zip(strings, counts, strict=True), (None, 0)]:
            if batch and (
                text is None or len(batch) >= step or sentences + count > BATCH_SENTENCES
            ):
                result = await translate(native_request(batch, source, target), never)
                out.extend(t.text for t in result.translations)
                progress.done += sentences
                batch, sentences = [], 0
            if text is not None:
                batch.append(text)
                sentences += count
        return out

    return run


async def document_pair(
    repository: ModelRepository,
    data: dict[str, Any],
    upload: bytes,
    fmt: Format,
    detector: Detector,
) -> Pair:
    """The pair from ``source_lang``/``target_lang``; without a source, detected from a text
    format's own text, or the one source served into the target."""
    target_lang = text_field(data, "target_lang")
    if not target_lang:
        raise InvalidRequest("'target_lang' is required")
    target = target_lang.split("-")[0].lower()
    source_lang = text_field(data, "source_lang")
    if source_lang:
        return pair_for(repository, source_lang.lower(), target)
    if not fmt.text:
        return pair_for(repository, None, target)
    if not detector.loaded:
        await asyncio.to_thread(detector.load)
    sample = TAG.sub(" ", upload[:20_000].decode("utf-8", "ignore"))
    return pair_for(repository, None, target, [sample], detector)


@router.post("/document")
async def upload_document(
    request: Request,
    repository: RepositoryDep,
    settings: SettingsDep,
    translate: TranslateDep,
    detector: DetectorDep,
    owner: OwnerDep,
) -> dict[str, str]:
    """A document (multipart ``file``) with ``target_lang`` and optional ``source_lang`` and
    ``output_format`` (only the upload's own); translated in the background. Its size is
    bounded by max_body_bytes; the formats by service/usecase/documents/."""
    data = await read_body(request)
    upload = data.get("file")
    if upload is None or isinstance(upload, str):
        raise InvalidRequest("'file' (a multipart upload) is required")
    suffix, fmt = format_of(upload.filename)
    wanted = text_field(data, "output_format")
    if wanted and f".{wanted.lower().lstrip('.')}" != suffix:
        raise InvalidRequest(f"output_format {wanted!r}: only the upload's own format ({suffix})")
    content = await upload.read()
    target_lang = text_field(data, "target_lang")
    await asyncio.to_thread(fmt.verify, content, target_lang)  # a 400 here, not a failed job
    pair = await document_pair(repository, data, content, fmt, detector)
    align = aligner(translate, pair.source, pair.target)

    async def run(document: bytes, progress: Progress) -> tuple[bytes, int]:
        strings = in_turn(translate, pair.source, pair.target, progress)
        translator = Translator(strings, align, target_lang=target_lang or pair.target)
        return await fmt.translate(document, translator), translator.billed

    name = upload.filename or ""
    job = await store(request).submit(owner, content, fmt.media_type, name, run)
    return {"document_id": job.id, "document_key": job.key}


async def document_key(request: Request) -> str:
    key = text_field(await read_body(request), "document_key")
    if not key:
        raise InvalidRequest("'document_key' is required")
    return key


@router.post("/document/{document_id}")
async def document_status(
    request: Request, document_id: str, settings: SettingsDep, owner: OwnerDep
) -> dict[str, Any]:
    """``status`` (queued, translating, done, error); ``seconds_remaining`` while translating,
    once its first sentences give a rate (as DeepL: only while translating, and DeepL's clients
    poll at their own pace anyway); ``billed_characters`` once done, ``error_message`` on
    error. Answers as soon as the job finishes, or after at most a second."""
    status = await store(request).status(owner, document_id, await document_key(request))
    body: dict[str, Any] = {"document_id": status.id, "status": status.state.value}
    if status.seconds_remaining is not None:
        body["seconds_remaining"] = status.seconds_remaining
    if status.state is State.DONE:
        body["billed_characters"] = status.billed
    elif status.state is State.ERROR:
        body["error_message"] = status.error
    return body


@router.post("/document/{document_id}/result")
async def document_result(
    request: Request, document_id: str, settings: SettingsDep, owner: OwnerDep
) -> Response:
    """The translated document, once: the job is deleted as it is handed over (a second
    download, here or on another replica, is a 404)."""
    result, media_type = await store(request).take(owner, document_id, await document_key(request))
    return Response(result, media_type=media_type)
