"""``tongyeok serve`` with ``workers`` > 1: one engine process and N HTTP workers, kept alive.

The supervisor binds the listening socket once and hands it to every worker (the kernel spreads
connections between them), starts the engine process (it loads the repository and owns the
engines, schedulers, aligner and reloads) and, once it serves, the workers; it restarts any of
them that dies, and on SIGTERM/SIGINT passes the signal on and waits for all of them to drain.
Workers and engine talk over a ZeroMQ socket in a private directory (remote.py, engine_server.py;
docs/decisions.md #58); metrics go to files in that directory (metrics.py), removed at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import uvicorn

from contract.package import PackageError
from service.api.app import create_app
from service.api.reloading import poll, reload_now
from service.api.server import DrainingServer, answer_deadline, server_config
from service.logs import configure_logging
from service.metrics import Metrics
from service.scheduling.engine_server import EngineServer
from service.scheduling.remote import EngineClient, RemoteRepository
from service.scheduling.repository import ModelRepository
from service.settings import Settings

log = logging.getLogger("tongyeok.supervisor")

# A process that dies within this many seconds of its start is restarted after a pause, not in
# a tight loop (a package that crashes the engine at load would otherwise spin a core).
QUICK_DEATH_SECONDS = 5.0
RESTART_PAUSE_SECONDS = 1.0
# After the drain, what the processes get to exit before they are killed.
EXIT_MARGIN_SECONDS = 5.0
# The supervisor's directory (the engine's socket, the metrics' files): tongyeok-serve-PID-...
HOME_PREFIX = "tongyeok-serve-"


def event(name: str, **fields: Any) -> None:
    log.info(json.dumps({"event": name, **fields}))


def drain_with(supervisor: int) -> None:
    """Have this process get SIGTERM (a drain) when the supervisor dies, killed or not: no
    orphan keeps the port or the device (Linux's PR_SET_PDEATHSIG; elsewhere nothing)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != supervisor:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


# -- the engine process ----------------------------------------------------------------------------


def run_engine(settings: Settings, address: str, started: Connection, supervisor: int) -> None:
    """The engine process: load the repository, then serve the workers until SIGTERM drains it.
    ``started`` gets None once it serves, or the reason it cannot."""
    drain_with(supervisor)
    configure_logging()
    repository = ModelRepository(settings, Metrics())
    try:
        repository.load()
    except PackageError as exc:
        log.error("the engine process cannot serve: %s", exc)
        with contextlib.suppress(OSError):
            started.send(str(exc))
        return
    server = EngineServer(repository, address)
    server.bind()
    with contextlib.suppress(OSError):  # a restarted engine's supervisor does not wait to hear
        started.send(None)
    asyncio.run(engine_main(server, settings))


async def engine_main(server: EngineServer, settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    repository = server.repository
    serving = asyncio.create_task(server.serve())
    seconds = settings.repository_poll_seconds
    poller = asyncio.create_task(poll(repository, seconds)) if seconds > 0 else None
    stopping = asyncio.Event()
    reloads: set[asyncio.Future[Any]] = set()

    def drain(name: str) -> None:
        if not stopping.is_set():
            event("draining", process="engine", signal=name)
            repository.drain(time.monotonic() + answer_deadline(settings.drain_seconds))
            stopping.set()

    def reload() -> None:
        task = asyncio.ensure_future(reload_now(repository, "SIGHUP"))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, drain, sig.name)
    loop.add_signal_handler(signal.SIGHUP, reload)
    await stopping.wait()
    if poller is not None:
        poller.cancel()
    # Admitted work finishes (or is answered 503 at the drain's deadline); the answers reach
    # the loop through call_soon_threadsafe, and the socket's linger sends them out.
    await asyncio.to_thread(repository.stop, settings.drain_seconds)
    await asyncio.sleep(0.1)
    serving.cancel()
    await asyncio.gather(serving, return_exceptions=True)
    event("stopped", process="engine")


# -- an HTTP worker --------------------------------------------------------------------------------


class WorkerServer(DrainingServer):
    """A worker's uvicorn: connects to the engine before the lifespan waits for its table;
    readiness follows the engine's (false while it is down or restarting)."""

    def __init__(self, config: uvicorn.Config, app: Any, settings: Settings, announce: str):
        super().__init__(config, app, settings.drain_seconds, announce)
        self.client: EngineClient = app.state.repository.client

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self.client.start()
        await super().startup(sockets)
        self.client.on_state = self.engine_state

    def engine_state(self, up: bool) -> None:
        state = self.tongyeok_app.state
        state.ready = up and not state.draining

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        await self.client.close()


def run_worker(
    settings: Settings,
    listener: socket.socket,
    address: str,
    metrics_dir: str,
    announce: str,
    supervisor: int,
) -> None:
    """One HTTP worker: the whole API over a repository whose jobs go to the engine process."""
    drain_with(supervisor)
    configure_logging()
    metrics = Metrics(multiprocess_dir=metrics_dir)
    app = create_app(settings, metrics, RemoteRepository(settings, metrics, address))
    WorkerServer(server_config(settings, app), app, settings, announce).run(sockets=[listener])


# -- the supervisor --------------------------------------------------------------------------------


def listening_socket(settings: Settings) -> socket.socket:
    """The one socket every worker accepts on (bound as uvicorn binds, SO_REUSEADDR set).
    Its protocol is said, not left 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only
    on connections of a socket whose protocol reads IPPROTO_TCP, and with it on, a response
    written in two parts waited for the client's delayed ACK: 40 ms on every request."""
    # Warnings only, as server_config's: its "Uvicorn running on ..." would come before any
    # worker can answer; the announce, once one is ready, says so.
    config = uvicorn.Config(
        app="unused", host=settings.host, port=settings.port, log_config=None, log_level="warning"
    )
    bound = config.bind_socket()
    return socket.socket(bound.family, bound.type, socket.IPPROTO_TCP, fileno=bound.detach())


class Supervisor:
    def __init__(self, settings: Settings, announce: str) -> None:
        self.settings, self.announce = settings, announce
        self.spawn = multiprocessing.get_context("spawn")  # no forked copies of loaded state
        remove_stale_homes()
        self.home = Path(tempfile.mkdtemp(prefix=f"{HOME_PREFIX}{os.getpid()}-"))
        self.metrics_dir = self.home / "metrics"
        self.metrics_dir.mkdir()
        self.address = f"ipc://{self.home / 'engine.ipc'}"
        # The workers' settings: the engine polls the repository, not each worker.
        self.worker_settings = settings.model_copy(update={"repository_poll_seconds": 0.0})
        self.engine: BaseProcess | None = None
        self.workers: list[BaseProcess | None] = [None] * settings.workers
        self.started_at: dict[int, float] = {}  # pid -> when
        self.stopping_at: float | None = None

    def run(self) -> None:
        configure_logging()
        # Read by prometheus_client when each process first imports it (spawned: after this).
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGHUP, self.reload)
        try:
            self.listener = listening_socket(self.settings)
            self.engine = self.start_engine(wait=True)
            for i in range(len(self.workers)):
                if self.stopping_at is None:
                    self.workers[i] = self.start_worker(self.announce if i == 0 else "")
            self.watch()
        finally:
            for process in self.processes():
                process.kill()
                process.join(5)
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(self.home, ignore_errors=True)
        event("stopped", process="supervisor")

    def processes(self) -> list[BaseProcess]:
        every = [self.engine, *self.workers]
        return [p for p in every if p is not None and p.is_alive()]

    def start_engine(self, wait: bool) -> BaseProcess:
        """The engine process; ``wait``: until it serves (PackageError when it cannot)."""
        receiving, sending = self.spawn.Pipe(duplex=False)
        process = self.spawn.Process(
            target=run_engine,
            args=(self.settings, self.address, sending, os.getpid()),
            name="tongyeok-engine",
        )
        process.start()
        sending.close()
        self.started_at[process.pid or 0] = time.monotonic()
        event("started", process="engine", pid=process.pid)
        if wait:
            try:
                reason = receiving.recv()
            except EOFError:
                reason = f"the engine process exited with status {process.exitcode}"
            if reason is not None:
                process.join(5)
                if self.stopping_at is None:  # else a SIGTERM during the load ended it: no error
                    raise PackageError(reason)
        receiving.close()
        return process

    def start_worker(self, announce: str = "") -> BaseProcess:
        process = self.spawn.Process(
            target=run_worker,
            args=(
                self.worker_settings,
                self.listener,
                self.address,
                str(self.metrics_dir),
                announce,
                os.getpid(),
            ),
            name="tongyeok-worker",
        )
        process.start()
        self.started_at[process.pid or 0] = time.monotonic()
        event("started", process="worker", pid=process.pid)
        return process

    def watch(self) -> None:
        """Restart what dies until stopped; then wait for every process to exit."""
        while True:
            alive = self.processes()
            if self.stopping_at is not None:
                if not alive:
                    return
                if time.monotonic() > self.stopping_at:
                    event("killed", pids=[p.pid for p in alive], reason="drain overran")
                    return
            sentinels = [p.sentinel for p in alive]
            multiprocessing.connection.wait(sentinels, timeout=0.5)
            if self.stopping_at is None:
                self.replace_dead()

    def replace_dead(self) -> None:
        if self.engine is not None and not self.engine.is_alive():
            self.engine = self.restarted(self.engine, "engine")
        for i, worker in enumerate(self.workers):
            if worker is not None and not worker.is_alive():
                self.workers[i] = self.restarted(worker, "worker")

    def restarted(self, dead: BaseProcess, kind: str) -> BaseProcess:
        from prometheus_client import multiprocess  # its live gauges leave with it

        pid = dead.pid or 0
        multiprocess.mark_process_dead(pid, str(self.metrics_dir))
        lived = time.monotonic() - self.started_at.pop(pid, 0.0)
        event("died", process=kind, pid=pid, status=dead.exitcode, seconds=round(lived, 1))
        if lived < QUICK_DEATH_SECONDS:
            time.sleep(RESTART_PAUSE_SECONDS)
        return self.start_engine(wait=False) if kind == "engine" else self.start_worker()

    def stop(self, sig: int, frame: Any) -> None:
        """SIGTERM/SIGINT: every process drains (within ``drain_seconds``), none is restarted."""
        if self.stopping_at is not None:
            return
        self.stopping_at = time.monotonic() + self.settings.drain_seconds + EXIT_MARGIN_SECONDS
        event("draining", process="supervisor", signal=signal.Signals(sig).name)
        for process in self.processes():
            if process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    def reload(self, sig: int, frame: Any) -> None:
        """SIGHUP: the engine process reloads the repository (the workers follow its table)."""
        if self.engine is not None and self.engine.pid is not None:
            os.kill(self.engine.pid, signal.SIGHUP)


def remove_stale_homes() -> None:
    """Remove the directories of supervisors that no longer run: one killed (SIGKILL, OOM)
    could not remove its own."""
    for home in Path(tempfile.gettempdir()).glob(f"{HOME_PREFIX}*-*"):
        pid = home.name[len(HOME_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not running(int(pid)) and home.is_dir():
            shutil.rmtree(home, ignore_errors=True)


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def supervise(settings: Settings, announce: str = "") -> None:
    """Serve with ``settings.workers`` HTTP workers and one engine process until drained."""
    Supervisor(settings, announce).run()
