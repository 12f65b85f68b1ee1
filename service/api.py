"""The HTTP API: FastAPI routes, schemas, limits, auth and errors, over the model repository."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from contract.options import DEFAULT_BEAM_SIZE, SearchOptions
from service.cache import LRUCache
from service.compat import add_compat_routes
from service.errors import (
    Cancelled,
    DeadlineExceeded,
    InvalidRequest,
    ServiceError,
    ShuttingDown,
    Unauthorized,
    error_body,
)
from service.metrics import Metrics
from service.models import ModelRepository
from service.observe import ObserveMiddleware
from service.page import add_page_routes
from service.scheduler import Job
from service.segment import Segmented, split
from service.settings import Settings

log = logging.getLogger("tongyeok.api")


class TranslateRequest(BaseModel):
    texts: list[str] = Field(..., min_length=1, description="texts to translate, in order")
    source: str = Field(..., description="source language code, e.g. en")
    target: str = Field(..., description="target language code, e.g. de")
    beam_size: int = Field(DEFAULT_BEAM_SIZE, ge=1, description="1 = greedy")
    length_penalty: float = Field(1.0, ge=0.0)
    max_length_a: float = Field(1.5, ge=0.0, description="output budget a * source_tokens + b")
    max_length_b: int = Field(10, ge=1)
    nbest: int = Field(1, ge=1, description="alternatives per text (≤ beam_size)")


class Translation(BaseModel):
    text: str
    score: float
    tokens: int
    finish_reason: str  # eos | length | empty
    alternatives: list[str] = []


class TranslateResponse(BaseModel):
    translations: list[Translation]
    model: str
    timings: dict[str, float]


def joined(segmented: Segmented, parts: list[Translation]) -> Translation:
    """One text's translation from its sentences', with the text's own spacing."""
    if not parts:
        return Translation(text=segmented.join([]), score=0.0, tokens=0, finish_reason="empty")
    return Translation(
        text=segmented.join([p.text for p in parts]),
        score=sum(p.score for p in parts) / len(parts),
        tokens=sum(p.tokens for p in parts),
        finish_reason="length" if any(p.finish_reason == "length" for p in parts) else "eos",
        alternatives=parts[0].alternatives if len(parts) == 1 else [],
    )


def create_app(settings: Settings, metrics: Metrics | None = None):
    """The application for ``settings``; models load (and warm up) in its lifespan."""
    metrics = metrics or Metrics()
    repository = ModelRepository(settings, metrics)
    cache: LRUCache[Translation] = LRUCache(settings.cache_entries)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        log.info(json.dumps({"event": "settings", **settings.masked()}, default=str))
        await asyncio.to_thread(repository.load)
        app.state.ready = True
        yield
        app.state.ready = False
        await asyncio.to_thread(repository.stop, settings.drain_seconds)
        log.info(json.dumps({"event": "stopped"}))

    app = FastAPI(
        title="Tongyeok",
        version="0.1.0",
        lifespan=lifespan,
        description="Neural machine translation served with continuous batching.",
    )
    app.state.ready = False
    app.state.draining = False
    app.state.repository = repository
    app.state.metrics = metrics

    app.add_middleware(ObserveMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        if exc.status != 499:
            metrics.requests_rejected.labels(exc.error_type).inc()
        return JSONResponse(error_body(exc.message, exc.error_type), exc.status, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}" for e in exc.errors()
        )
        metrics.requests_rejected.labels(InvalidRequest.error_type).inc()
        return JSONResponse(
            error_body(problems or "invalid request", InvalidRequest.error_type), 422
        )

    def authorize(request: Request, api_key: str | None = None) -> None:
        """Accepts ``Authorization: Bearer KEY``, ``DeepL-Auth-Key KEY``, ``X-API-Key`` or a key
        given in the body (LibreTranslate's ``api_key``)."""
        if not settings.api_keys:
            return
        header = request.headers.get("authorization", "")
        for scheme in ("Bearer ", "DeepL-Auth-Key "):
            header = header.removeprefix(scheme)
        given = api_key or header.strip() or request.headers.get("x-api-key", "")
        if not any(given == key.get_secret_value() for key in settings.api_keys):
            raise Unauthorized("missing or invalid API key (Authorization: Bearer KEY)")

    async def translate_texts(
        request: Request, body: TranslateRequest, api_key: str | None = None
    ) -> TranslateResponse:
        authorize(request, api_key)
        if app.state.draining:
            raise ShuttingDown("the server is shutting down")
        if len(body.texts) > settings.max_texts:
            raise InvalidRequest(f"{len(body.texts)} texts exceed max_texts={settings.max_texts}")
        for i, text in enumerate(body.texts):
            if len(text) > settings.max_text_chars:
                raise InvalidRequest(
                    f"texts[{i}] has {len(text)} characters, more than "
                    f"max_text_chars={settings.max_text_chars}"
                )
        if body.beam_size > settings.max_beam_size:
            raise InvalidRequest(
                f"beam_size={body.beam_size} exceeds max_beam_size={settings.max_beam_size}"
            )
        try:
            options = SearchOptions(
                body.beam_size,
                body.length_penalty,
                body.max_length_a,
                body.max_length_b,
                body.nbest,
            )
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        model = repository.route(body.source, body.target)
        started = time.perf_counter()
        # Every text is split into sentences; all sentences of the request go in one job.
        segmented = [split(text) for text in body.texts]
        done: dict[tuple[int, int], Translation] = {}
        todo: list[tuple[int, int]] = []  # (text, sentence) neither cached nor translated yet
        for i, seg in enumerate(segmented):
            for j, sentence in enumerate(seg.sentences):
                cached = cache.get((model.name, options, sentence))
                metrics.cache_lookups.labels("hit" if cached else "miss").inc()
                if cached:
                    done[i, j] = cached
                else:
                    todo.append((i, j))
        sources = model.tokenizer.encode_batch([segmented[i].sentences[j] for i, j in todo])
        for (i, _), ids in zip(todo, sources, strict=True):
            if len(ids) + 1 > model.max_source_tokens:
                raise InvalidRequest(
                    f"texts[{i}] has a sentence of {len(ids)} tokens; the model takes at "
                    f"most {model.max_source_tokens - 1} per sentence"
                )
        results = await run_job(request, model.scheduler, sources, options) if sources else []
        eos = model.engine.config.eos_id
        for (i, j), hyps in zip(todo, results, strict=True):
            best = hyps[0]
            done[i, j] = Translation(
                text=model.tokenizer.decode(best.tokens),
                score=best.score,
                tokens=len(best.tokens),
                finish_reason="eos" if best.tokens and best.tokens[-1] == eos else "length",
                alternatives=[model.tokenizer.decode(h.tokens) for h in hyps[1:]],
            )
            cache.put((model.name, options, segmented[i].sentences[j]), done[i, j])
        translations = [
            joined(seg, [done[i, j] for j in range(len(seg.sentences))])
            for i, seg in enumerate(segmented)
        ]
        return TranslateResponse(
            translations=translations,
            model=model.name,
            timings={"total_seconds": round(time.perf_counter() - started, 4)},
        )

    async def run_job(request: Request, scheduler, sources, options) -> list:
        loop = asyncio.get_running_loop()
        job = Job(
            sources,
            options,
            time.monotonic() + settings.request_timeout,
            loop,
            loop.create_future(),
        )
        scheduler.submit(job)
        disconnected = asyncio.create_task(wait_for_disconnect(request))
        try:
            done, _ = await asyncio.wait(
                {job.future, disconnected},
                timeout=settings.request_timeout + 1.0,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            disconnected.cancel()
        if job.future in done:
            return job.future.result()
        scheduler.cancel(job)
        if disconnected in done:
            raise Cancelled("the client disconnected")
        raise DeadlineExceeded(f"no answer within request_timeout={settings.request_timeout} s")

    @app.post("/v1/translate", response_model=TranslateResponse)
    async def translate(request: Request, body: TranslateRequest) -> TranslateResponse:
        """Translate up to ``max_texts`` texts in one batch with every other request's."""
        return await translate_texts(request, body)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
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

    add_compat_routes(app, translate_texts, authorize, repository)
    add_page_routes(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        ready = app.state.ready and not app.state.draining
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def wait_for_disconnect(request: Request) -> None:
    """Returns when the client goes away (the body has been read, so only that can arrive)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
