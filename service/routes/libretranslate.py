"""LibreTranslate's API, so its clients and its web page's callers work unchanged: /translate
(text or HTML), /languages, /detect and /frontend/settings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.compat import (
    LANGUAGE_NAMES,
    pair_for,
    read_body,
    text_field,
    translate_plain_or_markup,
)
from service.deps import Authorized, DisconnectDep, RepositoryDep, SettingsDep, TranslateDep
from service.errors import InvalidRequest, NotSupported
from service.markup import TagOptions
from service.schemas import ERROR_RESPONSES, ErrorBody

# Every route needs the key (when keys are set) but /frontend/settings, which the page reads
# to learn whether to ask for one.
router = APIRouter(tags=["LibreTranslate"], responses=ERROR_RESPONSES)


@router.post("/translate", dependencies=[Authorized])
async def translate(
    request: Request,
    repository: RepositoryDep,
    translate: TranslateDep,
    disconnect: DisconnectDep,
) -> dict[str, Any]:
    """LibreTranslate: ``q`` (string or list), source, target, format, api_key."""
    data = await read_body(request)
    q, target, source = data.get("q"), text_field(data, "target"), text_field(data, "source")
    if q is None or not target:
        raise InvalidRequest("'q' and 'target' are required")
    text_format = text_field(data, "format") or "text"
    if text_format not in ("text", "html"):
        raise InvalidRequest(f"format must be 'text' or 'html', got {text_format!r}")
    tags = TagOptions(mode="html") if text_format == "html" else None
    texts = q if isinstance(q, list) else [q]
    if not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("'q' must be a string or a list of strings")
    source, target = pair_for(repository, source, target)
    translated = await translate_plain_or_markup(translate, disconnect, texts, source, target, tags)
    answer: dict[str, Any] = {
        "translatedText": translated if isinstance(q, list) else translated[0]
    }
    if data.get("source") in (None, "", "auto"):
        answer["detectedLanguage"] = {"language": source, "confidence": 100.0}
    return answer


@router.get("/languages", dependencies=[Authorized])
async def languages(repository: RepositoryDep) -> list[dict[str, Any]]:
    """Every source language with the targets it translates to."""
    sources = sorted({s for s, _ in repository.models})
    return [
        {
            "code": s,
            "name": LANGUAGE_NAMES.get(s, s),
            "targets": sorted(t for src, t in repository.models if src == s),
        }
        for s in sources
    ]


@router.post(
    "/detect",
    dependencies=[Authorized],
    responses={501: {"model": ErrorBody, "description": "no language detector yet"}},
)
async def detect() -> dict[str, Any]:
    """Language detection: not available until a detector ships; a clear 501, not a guess."""
    raise NotSupported(
        "language detection is not available on this server: give the source language"
    )


@router.get("/frontend/settings")
async def frontend_settings(repository: RepositoryDep, settings: SettingsDep) -> dict[str, Any]:
    """What a LibreTranslate front end (and this server's page) needs to know before asking."""
    pairs = sorted(repository.models)
    source, target = pairs[0] if pairs else ("en", "en")
    return {
        "charLimit": settings.max_text_chars,
        "frontendTimeout": 500,
        "keyRequired": bool(settings.api_keys),
        "apiKeys": bool(settings.api_keys),
        "suggestions": False,
        "filesTranslation": True,
        "supportedFilesFormat": [".txt", ".html"],
        "language": {
            "source": {"code": source, "name": LANGUAGE_NAMES.get(source, source)},
            "target": {"code": target, "name": LANGUAGE_NAMES.get(target, target)},
        },
    }
