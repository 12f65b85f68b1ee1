"""LibreTranslate's API, so its clients and its web page's callers work unchanged: /translate
(text or HTML), /languages, /detect and /frontend/settings."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

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
from service.api.routes.dropin import (
    resolve_pair,
    text_field,
    translate_plain_or_markup,
)
from service.errors import InvalidRequest
from service.usecase.detect import DETECT_CHARS, LANGUAGE_NAMES
from service.usecase.markup import TagOptions

# Every route needs the key (when keys are set) but /frontend/settings, which the page reads
# to learn whether to ask for one.
router = APIRouter(tags=["LibreTranslate"], responses=ERROR_RESPONSES)


@router.post("/translate", dependencies=[Authorized])
async def translate(
    request: Request,
    repository: RepositoryDep,
    translate: TranslateDep,
    disconnect: DisconnectDep,
    detector: DetectorDep,
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
    pair = await resolve_pair(repository, source, target, texts, detector, translate, bool(tags))
    translated = await translate_plain_or_markup(
        translate, disconnect, texts, pair.source, pair.target, tags
    )
    answer: dict[str, Any] = {
        "translatedText": translated if isinstance(q, list) else translated[0]
    }
    if data.get("source") in (None, "", "auto"):  # the share over every language weighed
        confidence = round(100 * pair.confidence, 1) if pair.confidence is not None else 100.0
        answer["detectedLanguage"] = {"language": pair.source, "confidence": confidence}
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


@router.post("/detect", dependencies=[Authorized])
async def detect(
    request: Request, repository: RepositoryDep, detector: DetectorDep
) -> list[dict[str, Any]]:
    """LibreTranslate's /detect: the sources this server translates, each with its confidence
    (0-100) that ``q`` is in it, best first; an empty list when none can be told. A confidence is
    the language's share over every language the detector weighs, so with one source served a
    German or Korean text gives it about 0, not 100."""
    data = await read_body(request)
    q = data.get("q")
    if not isinstance(q, str) or not q:
        raise InvalidRequest("'q' (a non-empty string) is required")
    sources = sorted({s for s, _ in repository.models})
    if not detector.loaded:  # its first load takes about a second: not on the event loop
        await asyncio.to_thread(detector.load)
    ranking = detector.rank(q[:DETECT_CHARS], sources)
    return [{"language": lang, "confidence": round(100 * p, 1)} for lang, p in ranking]


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
