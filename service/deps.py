"""Typed dependencies for the routers: the settings, the model repository, the translate use case
and the API-key check, all taken from the one ``Services`` the application was built with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from service.compat import read_body
from service.errors import ServiceError, Unauthorized
from service.metrics import Metrics
from service.models import ModelRepository
from service.settings import Settings
from service.usecase import Disconnect, TranslateUseCase


@dataclass(frozen=True)
class Services:
    """What a request may use; built once in ``create_app`` and kept on ``app.state``."""

    settings: Settings
    metrics: Metrics
    repository: ModelRepository
    translate: TranslateUseCase


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(services: ServicesDep) -> Settings:
    return services.settings


def get_repository(services: ServicesDep) -> ModelRepository:
    return services.repository


def get_translate(services: ServicesDep) -> TranslateUseCase:
    return services.translate


def get_disconnect(request: Request) -> Disconnect:
    """Waits for the client to go away (the body has been read, so only that can arrive)."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return disconnected


SettingsDep = Annotated[Settings, Depends(get_settings)]
RepositoryDep = Annotated[ModelRepository, Depends(get_repository)]
TranslateDep = Annotated[TranslateUseCase, Depends(get_translate)]
DisconnectDep = Annotated[Disconnect, Depends(get_disconnect)]


async def body_key(request: Request) -> str:
    """A key given in the body (LibreTranslate's ``api_key``), if the body has one."""
    if not request.headers.get("content-type"):
        return ""
    try:
        data = await read_body(request)
    except ServiceError:  # the route reports a malformed body; here it only has no key
        return ""
    key = data.get("api_key")
    return key if isinstance(key, str) else ""


async def authorize(request: Request, settings: SettingsDep) -> None:
    """Accepts ``Authorization: Bearer KEY``, ``DeepL-Auth-Key KEY``, ``X-API-Key`` or a key
    given in the body (LibreTranslate's ``api_key``)."""
    if not settings.api_keys:
        return
    header = request.headers.get("authorization", "")
    for scheme in ("Bearer ", "DeepL-Auth-Key "):
        header = header.removeprefix(scheme)
    given = await body_key(request) or header.strip() or request.headers.get("x-api-key", "")
    if not any(given == key.get_secret_value() for key in settings.api_keys):
        raise Unauthorized("missing or invalid API key (Authorization: Bearer KEY)")


Authorized = Depends(authorize)
