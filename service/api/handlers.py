"""Every error mapped to its HTTP answer, and counted, in one place.

Each rejection is counted once in ``tongyeok_requests_rejected_total``, here, where it becomes an
HTTP answer: the service's own errors, request validation, and the framework's (404, 405, body
parsing). The body's shape is the route's: ``{"error", "error_type"}`` unless its router declared
another with ``shaped_route`` (DeepL's adds ``message``), so a router owns its wire format whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope

from service.api.deps import authorize
from service.errors import (
    BadRequest,
    Cancelled,
    InvalidRequest,
    ServiceError,
    error_body,
    for_status,
)
from service.metrics import Metrics


class ErrorBody(BaseModel):
    """Every error's body (DeepL's routes add ``message``, which its clients read)."""

    error: str
    error_type: str
    message: str | None = None


# Declared on every router, so the OpenAPI schema tells clients (and schemathesis) the truth.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "unsupported language pair, or a body that cannot be parsed",
        401: "missing API key",
        403: "wrong API key",
        404: "no such route",
        405: "method not allowed on this route",
        408: "body not received within body_timeout",
        413: "body too large, or more sentences than the queue can ever hold",
        422: "invalid request: the message names the field and its limit",
        429: "queue full: retry after Retry-After seconds",
        500: "a bug: logged with the request's x-request-id",
        503: "shutting down",
        504: "no answer within request_timeout",
    }.items()
}


# An error's JSON body as one wire format has it.
ErrorShape = Callable[[ServiceError], dict[str, str]]


def native_error(error: ServiceError) -> dict[str, str]:
    return error_body(error.message, error.error_type)


def shaped_route(shape: ErrorShape, statuses: dict[str, int] | None = None) -> type[APIRoute]:
    """A route class for ``APIRouter(route_class=...)``: its routes' errors take ``shape``, and
    the status ``statuses`` gives an error type where the wire format has its own (DeepL's 456
    for a spent quota)."""
    return type(
        f"{shape.__name__}_route",
        (APIRoute,),
        {"error_shape": staticmethod(shape), "error_statuses": statuses or {}},
    )


def shaped_route_of(scope: Scope) -> object:
    """The route ``scope`` is for: the matched one, or (an error raised before routing, such
    as a body too large) the shaped route its path and method match; None otherwise."""
    route = scope.get("route")
    if route is None and "app" in scope:
        shaped: list[APIRoute] = getattr(scope["app"].state, "shaped_routes", [])
        route = next((r for r in shaped if r.matches(scope)[0] != Match.NONE), None)
    return route


def error_shape(scope: Scope) -> ErrorShape:
    """The shape of the route ``scope`` is for; ours for a path no shaped route has."""
    shape: ErrorShape = getattr(shaped_route_of(scope), "error_shape", native_error)
    return shape


def error_status(scope: Scope, error: ServiceError) -> int:
    statuses: dict[str, int] = getattr(shaped_route_of(scope), "error_statuses", {})
    return statuses.get(error.error_type, error.status)


def rejection(error: ServiceError, metrics: Metrics, scope: Scope) -> JSONResponse:
    """The answer to ``error`` in its route's shape, counted under its error type (a client
    gone away: the scheduler counts it when it drops the job, and nobody reads the answer)."""
    if not isinstance(error, Cancelled):
        metrics.requests_rejected.labels(error.error_type).inc()
    return JSONResponse(error_shape(scope)(error), error_status(scope, error), error.headers)


def validation_message(exc: RequestValidationError) -> str:
    """``field: problem; ...`` from pydantic's errors (the body's own name left out)."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()
    )
    return problems or "invalid request"


def install(app: FastAPI, metrics: Metrics, routers: Sequence[APIRouter]) -> None:
    """Route every error the application can raise through ``rejection``, in the shape of the
    router it concerns."""
    app.state.shaped_routes = [
        route for router in routers for route in router.routes if hasattr(route, "error_shape")
    ]

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return rejection(exc, metrics, request.scope)

    async def keyed(request: Request, error: ServiceError) -> JSONResponse:
        """``error`` for clients with a key, else the key's own error: a body FastAPI cannot
        parse or validate fails before any dependency (the key check) runs."""
        try:
            await authorize(request, request.app.state.services.settings)
        except ServiceError as refused:
            error = refused
        return rejection(error, metrics, request.scope)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return await keyed(request, InvalidRequest(validation_message(exc)))

    @app.exception_handler(HTTPException)
    async def framework(request: Request, exc: HTTPException) -> JSONResponse:
        error = for_status(exc.status_code, str(exc.detail), dict(exc.headers or {}))
        if exc.status_code == BadRequest.status:  # an unparsable body
            return await keyed(request, error)
        return rejection(error, metrics, request.scope)
