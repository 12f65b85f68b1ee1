"""LibreTranslate's API, so its clients work unchanged: /translate and /languages."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.compat import LANGUAGE_NAMES, native_request, pair_for, read_body
from service.deps import Authorized, DisconnectDep, RepositoryDep, TranslateDep
from service.errors import InvalidRequest

router = APIRouter(tags=["LibreTranslate"])


@router.post("/translate", dependencies=[Authorized])
async def translate(
    request: Request,
    repository: RepositoryDep,
    translate: TranslateDep,
    disconnect: DisconnectDep,
) -> dict[str, Any]:
    """LibreTranslate: ``q`` (string or list), source, target, format, api_key."""
    data = await read_body(request)
    q, target = data.get("q"), data.get("target")
    if q is None or not target:
        raise InvalidRequest("'q' and 'target' are required")
    if data.get("format", "text") not in ("text", "html"):
        raise InvalidRequest(f"format must be 'text' or 'html', got {data.get('format')!r}")
    if data.get("format") == "html":
        raise InvalidRequest("format 'html' is not supported yet: send plain text")
    texts = q if isinstance(q, list) else [q]
    if not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("'q' must be a string or a list of strings")
    source, target = pair_for(repository, data.get("source"), target)
    result = await translate(native_request(texts, source, target), disconnect)
    translated = [t.text for t in result.translations]
    answer: dict[str, Any] = {
        "translatedText": translated if isinstance(q, list) else translated[0]
    }
    if data.get("source") in (None, "auto"):
        answer["detectedLanguage"] = {"language": source, "confidence": 100.0}
    return answer


@router.get("/languages")
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
