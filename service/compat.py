"""Drop-in routes so existing clients work unchanged: LibreTranslate and DeepL API v2.

Both forward to the same translation path as ``/v1/translate`` (one batch, same limits, same
errors); only the shapes of requests and answers differ. Bodies may be JSON or forms.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from pydantic import ValidationError

from service.errors import InvalidRequest, UnsupportedPair

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


def add_compat_routes(
    app: FastAPI,
    translate: Callable[..., Awaitable[Any]],
    authorize: Callable[..., None],
    repository: Any,
) -> None:
    def pair_for(source: str | None, target: str) -> tuple[str, str]:
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

    async def run(
        request: Request, texts: list[str], source: str, target: str, api_key: str | None = None
    ):
        from service.api import TranslateRequest  # the same schema, same validation

        try:
            body = TranslateRequest(texts=texts, source=source, target=target)
        except ValidationError as exc:
            raise InvalidRequest("; ".join(e["msg"] for e in exc.errors())) from None
        return await translate(request, body, api_key)

    # -- LibreTranslate ----------------------------------------------------------------------------

    @app.post("/translate", tags=["LibreTranslate"])
    async def libretranslate(request: Request) -> dict[str, Any]:
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
        source, target = pair_for(data.get("source"), target)
        result = await run(request, texts, source, target, data.get("api_key"))
        translated = [t.text for t in result.translations]
        answer: dict[str, Any] = {
            "translatedText": translated if isinstance(q, list) else translated[0]
        }
        if data.get("source") in (None, "auto"):
            answer["detectedLanguage"] = {"language": source, "confidence": 100.0}
        return answer

    @app.get("/languages", tags=["LibreTranslate"])
    async def libretranslate_languages() -> list[dict[str, Any]]:
        sources = sorted({s for s, _ in repository.models})
        return [
            {
                "code": s,
                "name": LANGUAGE_NAMES.get(s, s),
                "targets": sorted(t for src, t in repository.models if src == s),
            }
            for s in sources
        ]

    # -- DeepL API v2 ------------------------------------------------------------------------------

    @app.post("/v2/translate", tags=["DeepL"])
    async def deepl_translate(request: Request) -> dict[str, Any]:
        """DeepL v2: ``text`` (list), ``target_lang``, optional ``source_lang``; other DeepL
        options are accepted and ignored."""
        data = await read_body(request)
        text, target_lang = data.get("text"), data.get("target_lang")
        if text is None or not target_lang:
            raise InvalidRequest("'text' and 'target_lang' are required")
        texts = text if isinstance(text, list) else [text]
        if not all(isinstance(t, str) for t in texts):
            raise InvalidRequest("'text' must be a string or a list of strings")
        target = str(target_lang).split("-")[0].lower()  # EN-US -> en
        source_lang = data.get("source_lang")
        source, target = pair_for(source_lang.lower() if source_lang else None, target)
        result = await run(request, texts, source, target)
        return {
            "translations": [
                {
                    "detected_source_language": source.upper(),
                    "text": t.text,
                    "billed_characters": len(original),
                }
                for t, original in zip(result.translations, texts, strict=True)
            ]
        }

    @app.get("/v2/languages", tags=["DeepL"])
    async def deepl_languages(request: Request, type: str | None = None) -> list[dict[str, Any]]:
        authorize(request)
        if type is None:  # the official client sends it as a form body, even on GET
            body = await read_body(request) if request.headers.get("content-type") else {}
            type = str(body.get("type", "source"))
        if type not in ("source", "target"):
            raise InvalidRequest(f"type must be 'source' or 'target', got {type!r}")
        index = 0 if type == "source" else 1
        codes = sorted({pair[index] for pair in repository.models})
        entries = [{"language": c.upper(), "name": LANGUAGE_NAMES.get(c, c)} for c in codes]
        if type == "target":
            for entry in entries:
                entry["supports_formality"] = False
        return entries
