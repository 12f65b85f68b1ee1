"""The native API under /v1: batch translation with decoding options, and the models served."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.api.deps import (
    AccessDep,
    Authorized,
    DetectorDep,
    DisconnectDep,
    GlossariesDep,
    RepositoryDep,
    SettingsDep,
    TranslateDep,
)
from service.api.handlers import ERROR_RESPONSES
from service.api.routes.dropin import resolve_pair, terms_for
from service.errors import NotFound
from service.scheduling.repository import LoadedModel
from service.settings import Settings
from service.usecase.access import ACCOUNT
from service.usecase.schemas import TranslateRequest, TranslateResponse

router = APIRouter(
    prefix="/v1", tags=["native"], dependencies=[Authorized], responses=ERROR_RESPONSES
)


@router.post("/translate", response_model=TranslateResponse)
async def translate(
    body: TranslateRequest,
    translate: TranslateDep,
    disconnect: DisconnectDep,
    repository: RepositoryDep,
    detector: DetectorDep,
    glossaries: GlossariesDep,
    request: Request,
) -> TranslateResponse:
    """Translate up to ``max_texts`` texts in one batch with every other request's. Source
    ``auto`` is detected (``detected_source``; a 400 when it cannot be told); ``warnings``
    names each text clearly not in the source."""
    terms = None
    if body.source != "auto":
        if body.glossary is not None:
            terms = await terms_for(request, glossaries, body.glossary, body.source, body.target)
            translate.check_terms(body.source, body.target)
        return await translate(body, disconnect, check_source=True, terms=terms)
    pair = await resolve_pair(repository, "auto", body.target, body.texts, detector, translate)
    if body.glossary is not None:
        terms = await terms_for(request, glossaries, body.glossary, pair.source, body.target)
        translate.check_terms(pair.source, body.target)
    response = await translate(
        body.model_copy(update={"source": pair.source}), disconnect, check_source=True, terms=terms
    )
    return response.model_copy(update={"detected_source": pair.source})


def describe(model: LoadedModel, settings: Settings) -> dict[str, Any]:
    """A served model as /v1/models lists it: its pair, what it is for, the limits a request
    must keep, and whether its scheduler runs."""
    return {
        "name": model.name,
        "source": model.source,
        "target": model.target,
        "description": model.description,
        "ready": model.scheduler.alive,
        "max_source_tokens": model.max_source_tokens - 1,
        "max_texts": settings.max_texts,
        "max_text_chars": settings.max_text_chars,
        "max_beam_size": settings.max_beam_size,
    }


@router.get("/usage")
async def usage(access: AccessDep) -> dict[str, Any]:
    """The key's use this period: characters billed and its quota, requests and its rate
    limit, its expiry; ``{"keys": false}`` where the service has no keys."""
    account = ACCOUNT.get()
    return {"keys": False} if account is None else asdict(await access.usage(account))


@router.get("/models")
async def models(repository: RepositoryDep, settings: SettingsDep) -> dict[str, Any]:
    """The models served, with the limits a request must keep; packages refused, and why."""
    return {
        "models": [describe(m, settings) for m in repository.models.values()],
        "refused": repository.failures,
    }


@router.get("/models/{name}")
async def model(name: str, repository: RepositoryDep, settings: SettingsDep) -> JSONResponse:
    """One model's health (Triton's per-model readiness): 200 while it serves, 503 when its
    scheduler has stopped, 404 (naming the package's refusal, if any) when not served."""
    for served in repository.models.values():
        if served.name == name:
            body = describe(served, settings)
            return JSONResponse(body, status_code=200 if body["ready"] else 503)
    refusal = repository.failures.get(name[:200])
    reason = f"; the package was refused: {refusal}" if refusal else ""
    raise NotFound(f"no model named {name[:200]!r} is served{reason}")
