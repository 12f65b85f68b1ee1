"""Run the service under uvicorn, draining gracefully on SIGTERM."""

from __future__ import annotations

import json
import logging
import signal
from typing import Any

import uvicorn

from service.app import create_app
from service.settings import Settings


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT readiness turns false at once and new translations get 503, while
    uvicorn lets in-flight requests finish (up to ``drain_seconds``) before the process exits."""

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self.tongyeok_app = app

    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.tongyeok_app.state.draining:
            name = signal.Signals(sig).name
            logging.getLogger("tongyeok").info(json.dumps({"event": "draining", "signal": name}))
        self.tongyeok_app.state.draining = True
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:
            # uvicorn re-raises captured signals after shutting down, so the process would die
            # "killed by SIGTERM"; a completed drain is a clean exit, status 0.
            captured = getattr(self, "_captured_signals", [])
            while signal.SIGTERM in captured:
                captured.remove(signal.SIGTERM)


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
