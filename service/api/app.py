"""The application: settings, metrics, repository and use case wired into the routers.

Models load (and warm up) in the lifespan; ``app.state.draining`` is set by the server on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from contract.package import PackageError
from service.api import handlers
from service.api.deps import Services, key_checked
from service.api.edge import PublicAddress
from service.api.metering import MeteringMiddleware
from service.api.observe import ObserveMiddleware
from service.api.reloading import poll
from service.api.routes import (
    admin,
    deepl,
    docs,
    documents,
    files,
    glossaries,
    libretranslate,
    native,
    ops,
    page,
)
from service.api.shed import Admission, LimitsReached
from service.metrics import Metrics
from service.scheduling.repository import ModelRepository
from service.settings import Settings
from service.state.stores import open_documents, open_glossaries, open_store
from service.usecase.access import Access
from service.usecase.detect import Detector
from service.usecase.documents.jobs import JobStore
from service.usecase.translate import TranslateUseCase

log = logging.getLogger("tongyeok.api")


def create_app(
    settings: Settings, metrics: Metrics | None = None, repository: ModelRepository | None = None
) -> FastAPI:
    """The application for ``settings``; models load (and warm up) in its lifespan, in this
    process, or in the engine process that ``repository`` (an HTTP worker's) sends jobs to."""
    metrics = metrics or Metrics()
    repository = repository or ModelRepository(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info(json.dumps({"event": "settings", **settings.masked()}, default=str))
        try:
            await asyncio.to_thread(repository.load)
        except PackageError as exc:  # nothing loadable: the server reports it, in one line
            app.state.startup_error = exc
            raise
        # Every native request is checked for its language (warnings): the detector's model is
        # loaded before the server is ready, not by the first request (about a second, long
        # enough for a SIGTERM to find that request not yet queued).
        await asyncio.to_thread(detector.load)
        app.state.ready = True
        seconds = settings.repository_poll_seconds
        poller = asyncio.create_task(poll(repository, seconds)) if seconds > 0 else None
        yield
        app.state.ready = False
        if poller is not None:
            poller.cancel()
        await document_jobs.close()  # this process's unfinished jobs read as errors at once
        await asyncio.to_thread(repository.stop, settings.drain_seconds)
        await access.close()
        await asyncio.to_thread(glossary_store.close)
        log.info(json.dumps({"event": "stopped"}))

    app = FastAPI(
        title="Tongyeok",
        version="0.1.0",
        lifespan=lifespan,
        description="Neural machine translation served with continuous batching.",
        docs_url=None,  # served by routes/docs.py, behind the API key
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ready = False
    app.state.draining = False
    app.state.startup_error = None
    app.state.repository = repository
    app.state.metrics = metrics
    app.state.limits_reached = reached = LimitsReached(metrics)  # the door's, for /readyz
    detector = Detector()  # one model for source=auto and the native API's warnings
    translate = TranslateUseCase(
        settings, repository, metrics, lambda: app.state.draining, detector
    )
    glossary_store = open_glossaries(settings.state_url, settings.data_path)
    keys = open_store(settings.state_url, settings.data_path)
    access = Access.build(
        settings.api_keys,
        keys,
        settings.state_url,
        settings.state_failure,
        settings.max_wrong_keys_per_minute,
    )
    # records and results in the same store, translated here (routes/documents.py)
    app.state.document_jobs = document_jobs = JobStore(
        open_documents(settings.state_url, settings.data_path)
    )
    app.state.services = Services(
        settings, metrics, repository, translate, detector, glossary_store, access
    )

    app.add_middleware(MeteringMiddleware)  # inside ObserveMiddleware: bills 2xx answers only

    routers = [
        m.router for m in (native, admin, libretranslate, files, deepl, ops, docs, page, documents)
    ]
    routers[5:5] = [glossaries.v2, glossaries.v3]  # DeepL's, beside its translate route
    app.add_middleware(
        ObserveMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout,
        admission=Admission(
            settings.max_inflight_requests,
            settings.max_unauthenticated_requests,
            key_checked(routers),
            reached,
        ),
        public=PublicAddress(settings.public_url),
    )
    handlers.install(app, metrics, routers)
    for router in routers:
        app.include_router(router)
    page.mount_static(app)
    return app
