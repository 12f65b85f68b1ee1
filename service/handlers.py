"""Every error mapped to its HTTP answer, and counted, in one place.

Each rejection is counted once in ``tongyeok_requests_rejected_total``, here, where it becomes an
HTTP answer: the service's own errors, request validation, and the framework's (404, 405, body
parsing), all with the one body shape ``{"error", "error_type"}``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from service.deps import authorize
from service.errors import (
    BadRequest,
    Cancelled,
    InvalidRequest,
    ServiceError,
    error_body,
    for_status,
)
from service.metrics import Metrics

DEEPL_PREFIX = "/v2/"


def rejection(error: ServiceError, metrics: Metrics, path: str) -> JSONResponse:
    """The answer to ``error``, counted under its error type (a client gone away: the scheduler
    counts it when it drops the job, and nobody reads the answer). DeepL's routes add the
    ``message`` its clients read into their exceptions."""
    if not isinstance(error, Cancelled):
        metrics.requests_rejected.labels(error.error_type).inc()
    body = error_body(error.message, error.error_type)
    if path.startswith(DEEPL_PREFIX):
        body["message"] = error.message
    return JSONResponse(body, error.status, error.headers)


def validation_message(exc: RequestValidationError) -> str:
    """``field: problem; ...`` from pydantic's errors (the body's own name left out)."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()
    )
    return problems or "invalid request"


def install(app: FastAPI, metrics: Metrics) -> None:
    """Route every error the application can raise through ``rejection``."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return rejection(exc, metrics, request.url.path)

    async def keyed(request: Request, error: ServiceError) -> JSONResponse:
        """``error`` for clients with a key, else the key's own error: a body FastAPI cannot
        parse or validate fails before any dependency (the key check) runs."""
        try:
            await authorize(request, request.app.state.services.settings)
        except ServiceError as refused:
            error = refused
        return rejection(error, metrics, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return await keyed(request, InvalidRequest(validation_message(exc)))

    @app.exception_handler(HTTPException)
    async def framework(request: Request, exc: HTTPException) -> JSONResponse:
        error = for_status(exc.status_code, str(exc.detail), dict(exc.headers or {}))
        if exc.status_code == BadRequest.status:  # an unparsable body
            return await keyed(request, error)
        return rejection(error, metrics, request.url.path)
