"""What the drop-in routes (LibreTranslate, DeepL API v2) share: language names, bodies that may
be JSON or forms, a source language inferred from the target, and the native request they become.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import ValidationError

from service.errors import InvalidRequest, UnsupportedPair
from service.models import ModelRepository
from service.schemas import TranslateRequest

LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "cs": "Czech",
    "ko": "Korean",
    "ja": "Japanese",
    "zh": "Chinese",
    "pt": "Portuguese",
}


async def read_body(request: Request) -> dict[str, Any]:
    """JSON object or form fields (repeated form fields become lists)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            data = await request.json()
        except ValueError:
            raise InvalidRequest("body is not valid JSON") from None
        if not isinstance(data, dict):
            raise InvalidRequest("body must be a JSON object")
        return data
    form = await request.form()
    return {k: (vs if len(vs := form.getlist(k)) > 1 else vs[0]) for k in form}


def pair_for(repository: ModelRepository, source: str | None, target: str) -> tuple[str, str]:
    """Resolve a missing or "auto" source by the target when only one model fits."""
    if source and source != "auto":
        return source, target
    sources = [s for s, t in repository.models if t == target]
    if len(sources) != 1:
        raise UnsupportedPair(
            f"cannot pick a source language for target {target!r} "
            f"(language detection is not supported): give source explicitly"
        )
    return sources[0], target


def native_request(texts: list[str], source: str, target: str) -> TranslateRequest:
    """The native request for a drop-in one: the same schema, the same validation."""
    try:
        return TranslateRequest(texts=texts, source=source, target=target)
    except ValidationError as exc:
        raise InvalidRequest("; ".join(e["msg"] for e in exc.errors())) from None
