"""What the drop-in routes (LibreTranslate, DeepL API v2) share: language names, bodies that may
be JSON or forms, a source language inferred from the target or detected, and the native request
they become.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import ValidationError

from service.api.deps import given_key
from service.decoding.alignment import WordAlignment
from service.errors import InvalidRequest, UnsupportedPair
from service.scheduling.repository import ModelRepository
from service.state.glossaries import Glossary, GlossaryStore, owner_of
from service.usecase.access import ACCOUNT
from service.usecase.detect import DETECT_CHARS, Detector
from service.usecase.glossary import Terms
from service.usecase.markup import Align, TagOptions, translate_markup
from service.usecase.schemas import TranslateRequest
from service.usecase.translate import Disconnect, TranslateUseCase

# A tag of HTML or XML: left out of what detection reads (it is no language).
TAG = re.compile(r"<[^<>]*>")


def text_field(data: dict[str, Any], name: str) -> str | None:
    """The string field ``name`` of a body, None if absent; a number, list or object is a 422
    (DeepL's ``source_lang`` given twice in a form arrives as a list)."""
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequest(f"'{name}' must be a single string, got {type(value).__name__}")


@dataclass(frozen=True)
class Pair:
    source: str
    target: str
    # set when the source was detected: its share over every language the detector weighs
    confidence: float | None = None


def pair_for(
    repository: ModelRepository,
    source: str | None,
    target: str,
    texts: Sequence[str] = (),
    detector: Detector | None = None,
) -> Pair:
    """Resolve a missing or "auto" source by detecting the language of ``texts`` among the
    sources served into ``target``: a 400 when that is ambiguous, or when the text clearly is a
    language no model translates from, even with one source served (its translation would be
    nonsense, and DeepL's and LibreTranslate's shapes have no place for a warning). With one
    source the detector does not know, or no detector, that source is taken unchecked."""
    if source and source != "auto":
        return Pair(source, target)
    sources = sorted({s for s, t in repository.models if t == target})
    if not sources:
        raise UnsupportedPair(f"no model translates into {target!r}")
    if detector is None or (len(sources) == 1 and sources[0] not in detector.known):
        if len(sources) == 1:
            return Pair(sources[0], target)
        raise UnsupportedPair(
            f"several sources translate into {target!r} ({', '.join(sources)}): give source"
        )
    sample = " ".join(texts)[:DETECT_CHARS]
    detection = detector.detect(sample, sources)
    return Pair(detection.language, target, detection.confidence)


async def resolve_pair(
    repository: ModelRepository,
    source: str | None,
    target: str,
    texts: Sequence[str],
    detector: Detector,
    translate: TranslateUseCase,
    markup: bool = False,
) -> Pair:
    """``pair_for`` for a route: when the source is to be detected, the request's limits first
    (one that breaks them is a 422 whatever its language), the tags of ``markup`` left out of
    what is read, and the detector's model loaded off the event loop the first time (about a
    second)."""
    if source not in (None, "", "auto"):
        return Pair(source, target)
    translate.check_limits(native_request(list(texts), "auto", target))
    if not detector.loaded:
        await asyncio.to_thread(detector.load)
    if markup:
        texts = [TAG.sub(" ", text) for text in texts]
    return pair_for(repository, source, target, texts, detector)


def native_request(texts: list[str], source: str, target: str) -> TranslateRequest:
    """The native request for a drop-in one: the same schema, the same validation."""
    try:
        return TranslateRequest(texts=texts, source=source, target=target)
    except ValidationError as exc:
        raise InvalidRequest("; ".join(e["msg"] for e in exc.errors())) from None


def batched(
    translate: TranslateUseCase,
    disconnect: Disconnect,
    source: str,
    target: str,
    terms: Terms | None = None,
) -> Callable[[list[str]], Awaitable[list[str]]]:
    """Strings through the use case in batches of ``max_texts``, concurrently: a document of many
    paragraphs is one request for its client."""
    step = translate.settings.max_texts

    async def run(strings: list[str]) -> list[str]:
        batches = [strings[i : i + step] for i in range(0, len(strings), step)]
        results = await asyncio.gather(
            *(
                translate(native_request(b, source, target), disconnect, terms=terms)
                for b in batches
            )
        )
        return [t.text for result in results for t in result.translations]

    return run


def aligner(translate: TranslateUseCase, source: str, target: str) -> Align:
    """The markup layer's word aligner for one pair (service/decoding/alignment.py)."""

    async def run(pairs: list[tuple[str, str]]) -> list[WordAlignment | None]:
        return await translate.align(source, target, pairs)

    return run


async def translate_plain_or_markup(
    translate: TranslateUseCase,
    disconnect: Disconnect,
    texts: list[str],
    source: str,
    target: str,
    tags: TagOptions | None = None,
    terms: Terms | None = None,
) -> list[str]:
    """Each text translated: as plain text, or as HTML/XML whose text nodes alone change (the
    documents keep the request's limits; their pieces may be more than ``max_texts``); with
    ``terms``, a glossary's."""
    body = native_request(texts, source, target)
    if terms is not None:
        translate.check_terms(source, target)
    if tags is None:
        return [t.text for t in (await translate(body, disconnect, terms=terms)).translations]
    translate.check_limits(body)
    return await translate_markup(
        texts,
        tags,
        batched(translate, disconnect, source, target, terms),
        aligner(translate, source, target),
    )


async def owner(request: Request) -> str:
    """Who a glossary belongs to: the request's key where the server has keys (the
    environment's or the key store's: ``authorize`` set its account), else everyone alike (a
    server without keys accepts any key, so a key there names nobody)."""
    return owner_of(await given_key(request) if ACCOUNT.get() is not None else None)


async def terms_for(
    request: Request, store: GlossaryStore, glossary_id: object, source: str, target: str
) -> Terms:
    """The terms of the caller's glossary ``glossary_id`` for ``source``→``target`` (another
    key's glossary is as absent as a missing one)."""
    if not isinstance(glossary_id, str) or not glossary_id:
        raise InvalidRequest("a glossary id must be a non-empty string")
    glossary: Glossary = await asyncio.to_thread(store.get, await owner(request), glossary_id)
    found = glossary.for_pair(source, target)
    if found is None:
        pairs = ", ".join(f"{d.source_lang}→{d.target_lang}" for d in glossary.dictionaries)
        raise InvalidRequest(
            f"glossary {glossary_id!r} has no dictionary for {source}→{target} (it has {pairs})"
        )
    return Terms(found.entries)
