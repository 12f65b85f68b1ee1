"""Run the service under uvicorn, draining gracefully on SIGTERM and Ctrl+C."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import time
from typing import Any

import uvicorn

from service.api.app import create_app
from service.api.connections import Door, Limits, guarded_protocol
from service.api.reloading import reload_now
from service.logs import configure_logging
from service.scheduling.repository import Reload
from service.settings import Settings


def answer_deadline(drain_seconds: float) -> float:
    """Seconds into the drain at which the schedulers answer what is left with 503: before
    uvicorn's own limit, which would cancel the handlers and send a bare-text 500 instead (the
    margin is the time for those answers to be written)."""
    return drain_seconds - min(1.0, drain_seconds / 4)


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT readiness turns false at once and new translations get 503, while
    in-flight requests may finish for ``drain_seconds``; what cannot is answered with a JSON 503
    shortly before, the scheduler threads are joined, and the process exits 0."""

    def __init__(
        self, config: uvicorn.Config, app: Any, drain_seconds: float, announce: str = ""
    ) -> None:
        super().__init__(config)
        self.tongyeok_app, self.drain_seconds, self.announce = app, drain_seconds, announce
        self.reloads: set[asyncio.Future[Reload]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start (models loaded, sockets bound), then ``announce``: said only once
        it is true."""
        await super().startup(sockets)
        if self.announce:
            logging.getLogger("tongyeok").info(self.announce)
        # SIGHUP reloads the model repository (a daemon's convention), never ends the server.
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.reload_on_signal)

    def reload_on_signal(self) -> None:
        repository = self.tongyeok_app.state.repository
        task = asyncio.ensure_future(reload_now(repository, "SIGHUP"))
        self.reloads.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self.reloads.discard)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.tongyeok_app.state.draining:
            name = signal.Signals(sig).name
            logging.getLogger("tongyeok").info(json.dumps({"event": "draining", "signal": name}))
            deadline = time.monotonic() + answer_deadline(self.drain_seconds)
            self.tongyeok_app.state.repository.drain(deadline)
        self.tongyeok_app.state.draining = True
        super().handle_exit(sig, frame)
        if sig in (signal.SIGTERM, signal.SIGINT):
            # uvicorn re-raises captured signals after shutting down, so the process would die
            # "killed by SIGTERM" (or with a KeyboardInterrupt traceback, status 130, on Ctrl+C);
            # a completed drain is a clean exit, status 0.
            captured = getattr(self, "_captured_signals", [])
            while sig in captured:
                captured.remove(sig)


class PortInUse(ValueError):
    """The address to listen on is taken: said before any model loads, in one line."""


def check_port(host: str, port: int) -> int:
    """``port``, or for 0 a free one chosen now (so that the address announced and the URLs
    built from it are true); PortInUse unless it can be bound (as uvicorn will, SO_REUSEADDR
    set)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise PortInUse(f"cannot listen on {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise PortInUse(
                f"cannot listen on {host}:{port} ({exc.strerror}): another server is there; "
                "choose another with --port or TONGYEOK_PORT"
            ) from None
        return int(probe.getsockname()[1])


def serve(settings: Settings, announce: str = "") -> None:
    """Serve until a signal's drain ends; ``announce`` is logged once the server listens. Every
    line is JSON (service/logs.py), uvicorn's too: it gets no logging config of its own, so its
    loggers reach the root logger's handler."""
    configure_logging()
    app = create_app(settings)
    config = server_config(settings, app)
    # A repository with nothing loadable is the user's error, said in one line by the caller:
    # uvicorn's traceback of the failed lifespan would bury it (57 lines for one corrupt file).
    uvicorn_errors = logging.getLogger("uvicorn.error")
    quiet = StartupFailureFilter(app)
    uvicorn_errors.addFilter(quiet)
    try:
        DrainingServer(config, app, settings.drain_seconds, announce).run()
    except SystemExit:  # uvicorn's exit on a failed start
        if app.state.startup_error is None:
            raise
    finally:
        uvicorn_errors.removeFilter(quiet)
    if app.state.startup_error is not None:
        raise app.state.startup_error


def server_config(settings: Settings, app: Any) -> uvicorn.Config:
    """uvicorn's configuration for ``app``: one process's, or each HTTP worker's."""
    door = Door(Limits.of(settings).within_open_files(), app.state.limits_reached)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=guarded_protocol(door),  # h11's, under the connections' limits (connections.py)
        # asyncio wherever it runs: uvicorn's "auto" takes uvloop when some other package
        # installed it, where idle connections' staged close fails (docs/decisions.md #48).
        loop="asyncio",
        # A float: a drain under a second is still a limit (int() made 0.5 s "no limit").
        timeout_graceful_shutdown=settings.drain_seconds,  # type: ignore[arg-type]
        log_config=None,
        log_level="warning",
        access_log=False,  # ObserveMiddleware writes each request's line, with its id and model
    )


class StartupFailureFilter(logging.Filter):
    """Drops uvicorn's log records once the application's start has failed with a known error."""

    def __init__(self, app: Any) -> None:
        super().__init__()
        self.app = app

    def filter(self, record: logging.LogRecord) -> bool:
        return self.app.state.startup_error is None
