"""DeepL's API v2, so its clients work unchanged: /v2/translate and /v2/languages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.api.body import read_body
from service.api.deps import (
    AccessDep,
    Authorized,
    DetectorDep,
    DisconnectDep,
    GlossariesDep,
    RepositoryDep,
    TranslateDep,
)
from service.api.handlers import ERROR_RESPONSES, native_error, shaped_route
from service.api.routes.dropin import (
    resolve_pair,
    terms_for,
    text_field,
    translate_plain_or_markup,
)
from service.errors import InvalidRequest, ServiceError
from service.usecase.access import ACCOUNT, QuotaExceeded
from service.usecase.detect import LANGUAGE_NAMES
from service.usecase.markup import TagOptions


def deepl_error(error: ServiceError) -> dict[str, str]:
    """DeepL's error body: its clients read ``message`` into their exceptions."""
    body = native_error(error)
    return {**body, "message": body["error"]}


def deepl_router(prefix: str = "/v2") -> APIRouter:
    """A router of DeepL's API: the key check every route runs, and errors in DeepL's shape,
    a spent quota as its 456 (its clients raise QuotaExceededException on it)."""
    return APIRouter(
        prefix=prefix,
        tags=["DeepL"],
        dependencies=[Authorized],
        responses=ERROR_RESPONSES,
        route_class=shaped_route(deepl_error, {QuotaExceeded.error_type: 456}),
    )


router = deepl_router()

# A key without a quota: a limit far above any count, so DeepL's clients never see it reached.
CHARACTER_LIMIT = 10**12


@router.post("/translate")
async def translate(
    request: Request,
    repository: RepositoryDep,
    translate: TranslateDep,
    disconnect: DisconnectDep,
    detector: DetectorDep,
    glossaries: GlossariesDep,
) -> dict[str, Any]:
    """DeepL v2: ``text`` (list), ``target_lang``, optional ``source_lang``, ``tag_handling``
    (html or xml) with ``ignore_tags``, ``splitting_tags``, ``non_splitting_tags`` and
    ``outline_detection``, ``glossary_id``; other DeepL options are accepted and ignored."""
    data = await read_body(request)
    text, target_lang = data.get("text"), text_field(data, "target_lang")
    if text is None or not target_lang:
        raise InvalidRequest("'text' and 'target_lang' are required")
    texts = text if isinstance(text, list) else [text]
    if not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("'text' must be a string or a list of strings")
    target = target_lang.split("-")[0].lower()  # EN-US -> en
    source_lang = text_field(data, "source_lang")
    source_code = source_lang.lower() if source_lang else None
    tags = None
    if data.get("tag_handling"):
        tags = TagOptions.parse(
            str(data["tag_handling"]),
            data.get("ignore_tags"),
            data.get("non_splitting_tags"),
            data.get("splitting_tags"),
            data.get("outline_detection"),
        )
    # Without source_lang, text clearly in a language no model translates from is a 400, not a
    # translation from the one source served: detected_source_language stays the truth.
    pair = await resolve_pair(
        repository, source_code, target, texts, detector, translate, bool(tags)
    )
    source, target = pair.source, pair.target
    terms = None
    if data.get("glossary_id") is not None:
        if source_code is None:  # DeepL's rule: a glossary is for one pair, named in full
            raise InvalidRequest("source_lang is required if using a glossary")
        terms = await terms_for(request, glossaries, data["glossary_id"], source, target)
    translated = await translate_plain_or_markup(
        translate, disconnect, texts, source, target, tags, terms
    )
    return {
        "translations": [
            {
                "detected_source_language": source.upper(),
                "text": text,
                "billed_characters": len(original),
            }
            for text, original in zip(translated, texts, strict=True)
        ]
    }


@router.get("/languages")
async def languages(
    request: Request, repository: RepositoryDep, type: str | None = None
) -> list[dict[str, Any]]:
    """Source or target languages (``type``), in DeepL's shape."""
    if type is None:  # the official client sends it as a form body, even on GET
        body = await read_body(request) if request.headers.get("content-type") else {}
        type = str(body.get("type", "source"))
    if type not in ("source", "target"):
        raise InvalidRequest(f"type must be 'source' or 'target', got {type!r}")
    index = 0 if type == "source" else 1
    codes = sorted({pair[index] for pair in repository.models})
    entries: list[dict[str, Any]] = [
        {"language": c.upper(), "name": LANGUAGE_NAMES.get(c, c)} for c in codes
    ]
    if type == "target":
        for entry in entries:
            entry["supports_formality"] = False
    return entries


@router.get("/usage")
async def usage(translate: TranslateDep, access: AccessDep) -> dict[str, int]:
    """DeepL's usage (``get_usage()`` in its clients): the key's characters this period and its
    quota; without keys, the characters this process has translated."""
    account = ACCOUNT.get()
    if account is None:
        return {"character_count": translate.characters, "character_limit": CHARACTER_LIMIT}
    used = await access.usage(account)
    limit = used.character_limit
    return {
        "character_count": used.characters,
        "character_limit": CHARACTER_LIMIT if limit is None else limit,
    }
