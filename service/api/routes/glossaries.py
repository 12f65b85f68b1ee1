"""DeepL's glossaries, v2 (one language pair) and v3 (multilingual: a dictionary per pair), kept
per API key (service/state/glossaries.py), so that its official client's ``create_glossary``,
``list_glossaries``, ``get_glossary_entries``, ``delete_glossary`` and their multilingual twins
work unchanged. ``glossary_id`` on /v2/translate and ``glossary`` on /v1/translate use them."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from service.api.body import read_body
from service.api.deps import GlossariesDep, RepositoryDep
from service.api.routes.deepl import deepl_router
from service.api.routes.dropin import owner, text_field
from service.errors import NotFound
from service.scheduling.repository import ModelRepository
from service.state.glossaries import (
    Dictionary,
    Glossary,
    GlossaryError,
    GlossaryStore,
    parse_entries,
)

v2 = deepl_router("/v2")
v3 = deepl_router("/v3")


def timestamp(seconds: float) -> str:
    """DeepL's ``creation_time``: ISO 8601 in UTC with microseconds."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def language(data: dict[str, Any], field: str, repository: ModelRepository, side: int) -> str:
    """A glossary's language code, lower case: one of the served ones (``side`` 0: sources)."""
    code = text_field(data, field)
    if not code:
        raise GlossaryError(f"'{field}' is required")
    code = code.split("-")[0].lower()
    served = sorted({pair[side] for pair in repository.models})
    if code not in served:
        raise GlossaryError(f"{field} {code!r} is not served: one of {', '.join(served)}")
    return code


def pair_served(repository: ModelRepository, source: str, target: str) -> None:
    if (source, target) not in repository.models:
        pairs = ", ".join(f"{s}→{t}" for s, t in sorted(repository.models))
        raise GlossaryError(f"no model translates {source}→{target}: glossaries for {pairs}")


def dictionary(data: dict[str, Any], repository: ModelRepository) -> Dictionary:
    source = language(data, "source_lang", repository, 0)
    target = language(data, "target_lang", repository, 1)
    pair_served(repository, source, target)
    entries = data.get("entries")
    if not isinstance(entries, str):
        raise GlossaryError("'entries' (a string of TSV or CSV entries) is required")
    entries_format = text_field(data, "entries_format") or "tsv"
    return Dictionary(source, target, parse_entries(entries, entries_format))


def v2_info(glossary: Glossary) -> dict[str, Any]:
    (only,) = glossary.dictionaries[:1] or (Dictionary("", "", {}),)
    return {
        "glossary_id": glossary.glossary_id,
        "name": glossary.name,
        "ready": True,
        "source_lang": only.source_lang,
        "target_lang": only.target_lang,
        "creation_time": timestamp(glossary.created),
        "entry_count": len(only.entries),
    }


def v3_info(glossary: Glossary) -> dict[str, Any]:
    return {
        "glossary_id": glossary.glossary_id,
        "name": glossary.name,
        "creation_time": timestamp(glossary.created),
        "dictionaries": [
            {
                "source_lang": d.source_lang,
                "target_lang": d.target_lang,
                "entry_count": len(d.entries),
            }
            for d in glossary.dictionaries
        ],
    }


def tsv(entries: dict[str, str]) -> str:
    return "".join(f"{source}\t{target}\n" for source, target in entries.items())


async def stored(store: GlossaryStore, call: Any, *args: Any) -> Any:
    """A database call, off the event loop (SQLite waits on the disk)."""
    return await asyncio.to_thread(call, *args)


# -- v2 -----------------------------------------------------------------------------------------


@v2.post("/glossaries", status_code=201)
async def create_v2(
    request: Request, store: GlossariesDep, repository: RepositoryDep
) -> dict[str, Any]:
    data = await read_body(request)
    name = text_field(data, "name") or ""
    created = await stored(
        store, store.create, await owner(request), name, [dictionary(data, repository)]
    )
    return v2_info(created)


@v2.get("/glossaries")
async def list_v2(request: Request, store: GlossariesDep) -> dict[str, Any]:
    glossaries = await stored(store, store.list, await owner(request))
    return {"glossaries": [v2_info(g) for g in glossaries if len(g.dictionaries) == 1]}


@v2.get("/glossaries/{glossary_id}")
async def get_v2(request: Request, glossary_id: str, store: GlossariesDep) -> dict[str, Any]:
    return v2_info(await stored(store, store.get, await owner(request), glossary_id))


@v2.get(
    "/glossaries/{glossary_id}/entries",
    response_class=Response,
    responses={
        200: {
            "content": {"text/tab-separated-values": {"schema": {"type": "string"}}},
            "description": "the entries, a source and a target term per line",
        }
    },
)
async def entries_v2(request: Request, glossary_id: str, store: GlossariesDep) -> Response:
    glossary: Glossary = await stored(store, store.get, await owner(request), glossary_id)
    text = tsv(glossary.dictionaries[0].entries if glossary.dictionaries else {})
    return Response(text, media_type="text/tab-separated-values")


@v2.delete("/glossaries/{glossary_id}", status_code=204)
async def delete_v2(request: Request, glossary_id: str, store: GlossariesDep) -> Response:
    await stored(store, store.delete, await owner(request), glossary_id)
    return Response(status_code=204)


@v2.get("/glossary-language-pairs")
async def language_pairs(repository: RepositoryDep) -> dict[str, Any]:
    """Every served pair: a glossary can be made for each."""
    return {
        "supported_languages": [
            {"source_lang": s, "target_lang": t} for s, t in sorted(repository.models)
        ]
    }


# -- v3: multilingual ---------------------------------------------------------------------------


@v3.post("/glossaries", status_code=201)
async def create_v3(
    request: Request, store: GlossariesDep, repository: RepositoryDep
) -> dict[str, Any]:
    data = await read_body(request)
    given = data.get("dictionaries")
    if not isinstance(given, list) or not all(isinstance(d, dict) for d in given):
        raise GlossaryError("'dictionaries' (a list of objects) is required")
    dictionaries = [dictionary(d, repository) for d in given]
    name = text_field(data, "name") or ""
    created = await stored(store, store.create, await owner(request), name, dictionaries)
    return v3_info(created)


@v3.get("/glossaries")
async def list_v3(request: Request, store: GlossariesDep) -> dict[str, Any]:
    glossaries = await stored(store, store.list, await owner(request))
    return {"glossaries": [v3_info(g) for g in glossaries]}


@v3.get("/glossaries/{glossary_id}")
async def get_v3(request: Request, glossary_id: str, store: GlossariesDep) -> dict[str, Any]:
    return v3_info(await stored(store, store.get, await owner(request), glossary_id))


@v3.get("/glossaries/{glossary_id}/entries")
async def entries_v3(
    request: Request,
    glossary_id: str,
    store: GlossariesDep,
    source_lang: str | None = None,
    target_lang: str | None = None,
) -> dict[str, Any]:
    glossary: Glossary = await stored(store, store.get, await owner(request), glossary_id)
    chosen = [
        d
        for d in glossary.dictionaries
        if (source_lang is None or d.source_lang == source_lang.lower())
        and (target_lang is None or d.target_lang == target_lang.lower())
    ]
    if not chosen:
        raise NotFound(f"glossary {glossary_id!r} has no dictionary {source_lang}→{target_lang}")
    return {
        "dictionaries": [
            {
                "source_lang": d.source_lang,
                "target_lang": d.target_lang,
                "entries": tsv(d.entries),
                "entries_format": "tsv",
            }
            for d in chosen
        ]
    }


@v3.delete("/glossaries/{glossary_id}", status_code=204)
async def delete_v3(request: Request, glossary_id: str, store: GlossariesDep) -> Response:
    await stored(store, store.delete, await owner(request), glossary_id)
    return Response(status_code=204)
