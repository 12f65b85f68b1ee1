"""Typed dependencies for the routers: the settings, the model repository, the translate use case
and the API-key check, all taken from the one ``Services`` the application was built with."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import SecretStr
from starlette.types import Scope

from service.api.body import read_body
from service.api.shed import promote
from service.errors import Forbidden, ServiceError, Unauthorized
from service.metrics import Metrics
from service.scheduling.batching import ANONYMOUS
from service.scheduling.repository import ModelRepository
from service.settings import Settings
from service.state.glossaries import GlossaryStore
from service.usecase.access import ACCOUNT, Access
from service.usecase.detect import Detector
from service.usecase.translate import CLIENT, Disconnect, TranslateUseCase


@dataclass(frozen=True)
class Services:
    """What a request may use; built once in ``create_app`` and kept on ``app.state``."""

    settings: Settings
    metrics: Metrics
    repository: ModelRepository
    translate: TranslateUseCase
    detector: Detector  # source=auto; its model loads on first use
    glossaries: GlossaryStore  # per key, in the data directory's SQLite file
    access: Access  # the keys, their rates and quotas (usecase/access.py)


async def get_services(request: Request) -> Services:
    # Every dependency here is ``async def`` although none awaits: FastAPI runs a plain ``def``
    # dependency in its thread pool, a thread handoff per dependency per request (measured: a
    # tenth of the event loop's time under load, docs/decisions.md #25).
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


async def get_repository(services: ServicesDep) -> ModelRepository:
    return services.repository


async def get_translate(services: ServicesDep) -> TranslateUseCase:
    return services.translate


async def get_detector(services: ServicesDep) -> Detector:
    return services.detector


async def get_glossaries(services: ServicesDep) -> GlossaryStore:
    return services.glossaries


async def get_disconnect(request: Request) -> Disconnect:
    """Waits for the client to go away (the body has been read, so only that can arrive)."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return disconnected


SettingsDep = Annotated[Settings, Depends(get_settings)]
RepositoryDep = Annotated[ModelRepository, Depends(get_repository)]
TranslateDep = Annotated[TranslateUseCase, Depends(get_translate)]
DisconnectDep = Annotated[Disconnect, Depends(get_disconnect)]
DetectorDep = Annotated[Detector, Depends(get_detector)]


BODY_KEYS = ("api_key", "auth_key")  # LibreTranslate's, DeepL's form field
SCHEMES = ("bearer", "deepl-auth-key")


async def given_key(request: Request) -> str | None:
    """The key the client sent: ``Authorization: Bearer KEY`` or ``DeepL-Auth-Key KEY`` (scheme
    in any case), ``X-API-Key``, else the body's ``api_key`` / ``auth_key``. Headers win over a
    (perhaps stale) key in the body; None when there is none."""
    scheme, _, credentials = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() in SCHEMES and credentials.strip():
        return credentials.strip()
    if request.headers.get("x-api-key"):
        return request.headers["x-api-key"]
    if request.headers.get("content-type"):
        try:
            data = await read_body(request)
        except ServiceError:  # the route reports a malformed body; here it only has no key
            return None
        for name in BODY_KEYS:
            if isinstance(data.get(name), str) and data[name]:
                return str(data[name])
    return None


def check(given: str | None, accepted: list[SecretStr]) -> None:
    """Unauthorized (401) without a key, Forbidden (403) for a wrong one; compared in constant
    time against every accepted key, so the answer's timing tells nothing about a key."""
    if given is None:
        raise Unauthorized("missing API key (Authorization: Bearer KEY)")
    offered = given.encode("utf-8", "surrogatepass")
    matches = [hmac.compare_digest(offered, k.get_secret_value().encode()) for k in accepted]
    if not any(matches):
        raise Forbidden("invalid API key")


async def authorize(request: Request, settings: SettingsDep) -> None:
    """Every route but liveness, readiness and metrics: a valid API key when there are keys
    (the environment's or the key store's), within its rate and quota (usecase/access.py;
    its account kept in ``ACCOUNT`` for the use case to charge). Records who the client is
    for the scheduler's shares (``translate.CLIENT``): the key, or the client's address
    without keys (behind a proxy, the proxy's)."""
    access: Access = request.app.state.services.access
    address = request.client.host if request.client else ""
    account = await access.admit(await given_key(request), address)
    ACCOUNT.set(account)
    promote(request.scope)  # admitted: now counted in flight, in the keyed budget (shed.py)
    if account is not None:
        CLIENT.set(account.client)
    else:
        CLIENT.set(f"address:{address or 'unknown'}")


async def get_owner(_: Annotated[None, Depends(authorize)]) -> str:
    """Whose translated files a request makes and may fetch: its key's (``authorize``, run
    once per request, refuses a missing or wrong one), or everyone's (``anonymous``) where the
    service has no keys."""
    account = ACCOUNT.get()
    return account.client if account is not None else ANONYMOUS


OwnerDep = Annotated[str, Depends(get_owner)]


async def authorize_metrics(request: Request, settings: SettingsDep) -> None:
    """/metrics: its own bearer token when ``metrics_token`` is set (a scraper is no client)."""
    if settings.metrics_token is not None:
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        check(token.strip() if scheme.lower() == "bearer" else None, [settings.metrics_token])


Authorized = Depends(authorize)
MetricsAuthorized = Depends(authorize_metrics)

PATHS_KEPT = 4096  # paths whose answer ``key_checked`` remembers (clients choose paths)


def runs(dependant: Dependant, call: Callable[..., object]) -> bool:
    return dependant.call is call or any(runs(d, call) for d in dependant.dependencies)


def key_checked(routers: Sequence[APIRouter]) -> Callable[[Scope], bool]:
    """Whether a request's path is one of a route that runs ``authorize``: counted in flight
    once the check admits it (shed.py), where the others are counted at the door."""
    patterns = [
        route.path_regex
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute) and runs(route.dependant, authorize)
    ]
    known: dict[str, bool] = {}

    def checks(scope: Scope) -> bool:
        path = scope["path"]
        found = known.get(path)
        if found is None:
            found = any(pattern.match(path) for pattern in patterns)
            if len(known) < PATHS_KEPT:
                known[path] = found
        return found

    return checks


GlossariesDep = Annotated[GlossaryStore, Depends(get_glossaries)]


async def get_access(services: ServicesDep) -> Access:
    return services.access


AccessDep = Annotated[Access, Depends(get_access)]
