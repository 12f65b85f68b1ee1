"""The native API under /v1: batch translation with decoding options, and the models served."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.deps import Authorized, DisconnectDep, RepositoryDep, SettingsDep, TranslateDep
from service.api.handlers import ERROR_RESPONSES
from service.usecase.schemas import TranslateRequest, TranslateResponse

router = APIRouter(
    prefix="/v1", tags=["native"], dependencies=[Authorized], responses=ERROR_RESPONSES
)


@router.post("/translate", response_model=TranslateResponse)
async def translate(
    body: TranslateRequest, translate: TranslateDep, disconnect: DisconnectDep
) -> TranslateResponse:
    """Translate up to ``max_texts`` texts in one batch with every other request's."""
    return await translate(body, disconnect)


@router.get("/models")
async def models(repository: RepositoryDep, settings: SettingsDep) -> dict[str, Any]:
    """The models served, with the limits a request must keep; packages refused, and why."""
    return {
        "models": [
            {
                "name": m.name,
                "source": m.source,
                "target": m.target,
                "max_source_tokens": m.max_source_tokens - 1,
                "max_texts": settings.max_texts,
                "max_text_chars": settings.max_text_chars,
                "max_beam_size": settings.max_beam_size,
            }
            for m in repository.models.values()
        ],
        "refused": repository.failures,
    }
