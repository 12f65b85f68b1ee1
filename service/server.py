"""Run the service under uvicorn, draining gracefully on SIGTERM."""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from service.api import create_app
from service.settings import Settings


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT readiness turns false at once and new translations get 503, while
    uvicorn lets in-flight requests finish (up to ``drain_seconds``) before the process exits."""

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self.tongyeok_app = app

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.tongyeok_app.state.draining = True
        super().handle_exit(sig, frame)


def serve(settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=int(settings.drain_seconds) or None,
        log_level="warning",
        access_log=False,
    )
    DrainingServer(config, app).run()
