"""What the drop-in routes (LibreTranslate, DeepL API v2) share: language names, bodies that may
be JSON or forms, a source language inferred from the target, and the native request they become.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from service.errors import InvalidRequest, UnsupportedPair
from service.markup import TagOptions, translate_markup
from service.models import ModelRepository
from service.schemas import TranslateRequest
from service.usecase import Disconnect, TranslateUseCase

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
        if not await request.body():
            return {}
        try:
            data = await request.json()
        except (ValueError, RecursionError):  # UnicodeDecodeError and deep nesting included
            raise InvalidRequest(
                "body is not valid JSON (UTF-8, nested at most ~900 deep)"
            ) from None
        if not isinstance(data, dict):
            raise InvalidRequest("body must be a JSON object")
        return data
    form = await request.form()
    return {k: (vs if len(vs := form.getlist(k)) > 1 else vs[0]) for k in form}


def text_field(data: dict[str, Any], name: str) -> str | None:
    """The string field ``name`` of a body, None if absent; a number, list or object is a 422
    (DeepL's ``source_lang`` given twice in a form arrives as a list)."""
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequest(f"'{name}' must be a single string, got {type(value).__name__}")


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


def batched(
    translate: TranslateUseCase, disconnect: Disconnect, source: str, target: str
) -> Callable[[list[str]], Awaitable[list[str]]]:
    """Strings through the use case in batches of ``max_texts``, concurrently: a document of many
    paragraphs is one request for its client."""
    step = translate.settings.max_texts

    async def run(strings: list[str]) -> list[str]:
        batches = [strings[i : i + step] for i in range(0, len(strings), step)]
        results = await asyncio.gather(
            *(translate(native_request(b, source, target), disconnect) for b in batches)
        )
        return [t.text for result in results for t in result.translations]

    return run


async def translate_plain_or_markup(
    translate: TranslateUseCase,
    disconnect: Disconnect,
    texts: list[str],
    source: str,
    target: str,
    tags: TagOptions | None = None,
) -> list[str]:
    """Each text translated: as plain text, or as HTML/XML whose text nodes alone change (the
    documents keep the request's limits; their pieces may be more than ``max_texts``)."""
    body = native_request(texts, source, target)
    if tags is None:
        return [t.text for t in (await translate(body, disconnect)).translations]
    translate.check_limits(body)
    return await translate_markup(texts, tags, batched(translate, disconnect, source, target))
