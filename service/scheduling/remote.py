"""An HTTP worker's view of the engine process: a repository whose models queue their jobs there.

With ``workers`` > 1 the workers parse, split, tokenize and detokenize, and one engine process
holds the engines and schedulers (docs/decisions.md #58). Here the worker's side: ``EngineClient``
owns the DEALER socket and the jobs in flight, and answers each job exactly once: with the
engine's answer, or with ``EngineUnavailable`` (503) when the engine dies, restarts or stops
answering. ``RemoteQueue`` gives the use case the scheduler's interface (``submit``/``cancel``),
so ``TranslateUseCase.run_job`` does not know which process decodes. ``RemoteRepository`` keeps
the routing table in line with the engine's (reloads happen there).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from contract.package import PackageError, load_package_config
from contract.tokenizers import TextTokenizer, for_target, load_tokenizer
from service.decoding.alignment import WordAlignment
from service.errors import EngineUnavailable, ServiceError
from service.metrics import Metrics
from service.scheduling import channel
from service.scheduling.channel import PING_SECONDS, SILENCE_SECONDS, Submit
from service.scheduling.repository import LoadedModel, ModelRepository, Reload
from service.scheduling.scheduler import Job
from service.settings import Settings

log = logging.getLogger("tongyeok.remote")

# A table, an alignment or a reload that takes longer than this is the engine's failure.
CALL_SECONDS = 120.0


class EngineClient:
    """One worker's connection to the engine process (every method runs on the event loop
    that ``start`` ran on, but ``call_blocking``, which is for worker threads)."""

    def __init__(self, address: str, on_table: Callable[[dict[str, Any]], None]) -> None:
        self.address, self.on_table = address, on_table
        self.on_state: Callable[[bool], None] = lambda up: None
        self.pending: dict[int, Job] = {}  # submitted and not yet answered
        self.calls: dict[int, asyncio.Future[Any]] = {}
        self.call_ids = itertools.count()
        self.up = False
        self.incarnation: str | None = None
        self.mark: str | None = None  # the fingerprint of the table applied
        self.heard = 0.0
        self.asking = False  # a table request is in flight
        self.loop: asyncio.AbstractEventLoop | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.first_table = threading.Event()

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.context = zmq.asyncio.Context()
        self.socket = self.context.socket(zmq.DEALER)
        # No queueing for an engine that is not connected: a send fails at once (503) instead
        # of reaching a restarted engine that knows nothing of the job's worker state.
        self.socket.setsockopt(zmq.IMMEDIATE, 1)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, 0)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.socket.connect(self.address)
        self.handlers: dict[bytes, Callable[[bytes], None]] = {
            channel.PONG: self.pong,
            channel.DONE: self.done,
            channel.FAILED: self.failed,
            channel.REPLY: self.reply,
        }
        self.tasks = [asyncio.create_task(self.read()), asyncio.create_task(self.heartbeat())]

    async def close(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.lost("the worker is stopping")
        self.socket.close(linger=0)
        self.context.term()

    # -- jobs --------------------------------------------------------------------------------------

    def submit(self, model: str, job: Job) -> None:
        """Send ``job`` to the engine; EngineUnavailable (503) when it is down."""
        if not self.up:
            raise EngineUnavailable("the engine process is restarting: try again shortly")
        request = Submit(job.id, model, job.sources, job.options, job.deadline, str(job.client))
        if not self.send(channel.SUBMIT, request.encode()):
            raise EngineUnavailable("the engine process is not connected: try again shortly")
        self.pending[job.id] = job

    def cancel(self, job: Job) -> None:
        if self.pending.pop(job.id, None) is not None:
            self.send(channel.CANCEL, channel.pack(job.id))

    def done(self, body: bytes) -> None:
        job_id, results = channel.decode_results(body)
        self.settle(job_id, results)

    def failed(self, body: bytes) -> None:
        job_id, error = channel.decode_error(body)
        self.settle(job_id, error)

    def settle(self, job_id: int, value: Any) -> None:
        """A job's one answer: an answer for a job already answered (failed when the engine
        was lost) or cancelled is dropped here."""
        job = self.pending.pop(job_id, None)
        if job is None or job.future.done():
            return
        if isinstance(value, BaseException):
            job.future.set_exception(value)
        else:
            job.future.set_result(value)

    # -- calls -------------------------------------------------------------------------------------

    async def call(self, method: str, *args: Any) -> Any:
        if not self.up and method != "table":
            raise EngineUnavailable("the engine process is restarting: try again shortly")
        assert self.loop is not None  # started
        call_id = next(self.call_ids)
        future: asyncio.Future[Any] = self.loop.create_future()
        self.calls[call_id] = future
        try:
            if not self.send(channel.CALL, channel.pack([call_id, method, list(args)])):
                raise EngineUnavailable("the engine process is not connected: try again shortly")
            return await asyncio.wait_for(future, CALL_SECONDS)
        finally:
            self.calls.pop(call_id, None)

    def call_blocking(self, method: str, *args: Any) -> Any:
        """``call`` from a worker thread (an alignment, a reload)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(self.call(method, *args), self.loop).result()

    def reply(self, body: bytes) -> None:
        call_id, value, error = channel.decode_reply(body)
        future = self.calls.pop(call_id, None)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    # -- the engine's life -------------------------------------------------------------------------

    def send(self, kind: bytes, body: bytes) -> bool:
        """Whether the message went out (False: no engine is connected)."""
        sent = self.socket.send_multipart([kind, body], flags=zmq.NOBLOCK)
        assert isinstance(sent, asyncio.Future)  # resolved at once under NOBLOCK
        return sent.exception() is None

    async def read(self) -> None:
        while True:
            kind, body = await self.socket.recv_multipart()
            handler = self.handlers.get(kind)
            if handler is not None:
                handler(body)

    async def heartbeat(self) -> None:
        while True:
            if not self.send(channel.PING, b"") and self.up:
                # The engine's end of the socket closed (it died): no need to wait for silence.
                self.lost("the engine process stopped: try again shortly")
            await asyncio.sleep(PING_SECONDS)
            if self.up and time.monotonic() - self.heard > SILENCE_SECONDS:
                log.error("the engine process stopped answering: its requests get 503")
                self.lost("the engine process stopped answering: try again shortly")

    def pong(self, body: bytes) -> None:
        incarnation, mark = channel.unpack(body)
        self.heard = time.monotonic()
        if incarnation != self.incarnation:
            if self.incarnation is not None:  # restarted: the old one's jobs died with it
                self.lost("the engine process restarted: try again")
            self.incarnation = incarnation
        if (not self.up or mark != self.mark) and not self.asking:
            self.asking = True
            task = asyncio.create_task(self.refresh())
            self.tasks.append(task)
            task.add_done_callback(self.tasks.remove)

    async def refresh(self) -> None:
        """Ask for the routing table and apply it; up once applied."""
        try:
            found = await self.call("table")
            assert self.loop is not None
            await asyncio.to_thread(self.on_table, found)
            self.mark = found["mark"]
            if not self.up:
                self.up = True
                log.info("connected to the engine process %s", self.incarnation)
                self.on_state(True)
            self.first_table.set()
        except (TimeoutError, ServiceError):
            log.exception("the engine process did not send its routing table")
        finally:
            self.asking = False

    def lost(self, reason: str) -> None:
        """Every request waiting for the engine is answered 503 now; readiness turns false."""
        was_up, self.up = self.up, False
        if was_up:
            self.on_state(False)
        jobs, self.pending = self.pending, {}
        for job in jobs.values():
            if not job.future.done():
                job.future.set_exception(EngineUnavailable(reason))
        calls, self.calls = self.calls, {}
        for future in calls.values():
            if not future.done():
                future.set_exception(EngineUnavailable(reason))


class RemoteQueue:
    """A model's queue as the use case sees it, in a worker: jobs go to the engine process."""

    def __init__(self, client: EngineClient, model: str) -> None:
        self.client, self.model = client, model

    def submit(self, job: Job) -> None:
        self.client.submit(self.model, job)

    def cancel(self, job: Job) -> None:
        self.client.cancel(job)

    # The engine process drains and stops its own schedulers (on its SIGTERM).
    def drain(self, deadline: float) -> None:
        pass

    def stop(self, timeout: float | None = None) -> None:
        pass

    def retire(self, timeout: float) -> None:
        pass

    @property
    def idle(self) -> bool:
        return not self.client.pending

    @property
    def alive(self) -> bool:
        return self.client.up


class RemoteModel(LoadedModel):
    """A model served by the engine process: tokenized here, decoded and aligned there."""

    def __init__(self, client: EngineClient, row: list[Any], tokenizer: TextTokenizer) -> None:
        name, source, target, _, max_tokens, seconds, description, revision, aligns = row
        super().__init__(
            name,
            source,
            target,
            tokenizer,
            None,
            RemoteQueue(client, name),
            max_tokens,
            seconds,
            description,
            revision,
        )
        self.client, self.aligns = client, aligns

    @property
    def can_align(self) -> bool:
        return bool(self.aligns)

    def align(self, pairs: Sequence[tuple[str, str]]) -> list[WordAlignment | None]:
        matrices = self.client.call_blocking("align", self.name, [list(p) for p in pairs])
        return [None if m is None else WordAlignment(m) for m in channel.decode_matrices(matrices)]


class RemoteRepository(ModelRepository):
    """The engine process's models, as a worker routes to them; ``reload`` asks the engine."""

    def __init__(self, settings: Settings, metrics: Metrics, address: str) -> None:
        super().__init__(settings, metrics)
        self.client = EngineClient(address, self.apply)
        self.tokenizers: dict[tuple[str, str, str], TextTokenizer] = {}
        self.stopping = threading.Event()

    def apply(self, found: dict[str, Any]) -> None:
        """The engine's routing table as this worker's (in a thread: tokenizers load here)."""
        models: dict[tuple[str, str], LoadedModel] = {}
        for row in found["models"]:
            _, source, target, directory, *_, revision, _ = row
            key = (directory, revision, target)
            if key not in self.tokenizers:
                # The engine checked the package's hashes when it loaded it: not again here.
                config = load_package_config(Path(directory), verify=False)
                self.tokenizers[key] = for_target(load_tokenizer(config), config, target)
            models[source, target] = RemoteModel(self.client, row, self.tokenizers[key])
        self.models, self.failures = models, dict(found["failures"])

    def load(self) -> None:
        """Wait for the engine's first routing table (the supervisor starts workers once the
        engine has loaded, so this is its answer's time), or for a drain to give up on it."""
        while not self.client.first_table.wait(0.1):
            if self.stopping.is_set():
                raise PackageError("stopped before the engine process sent its models")

    def reload(self) -> Reload:
        report = self.client.call_blocking("reload")
        found = self.client.call_blocking("table")  # the answer names the models now served
        self.apply(found)
        return Reload(**report)

    @property
    def healthy(self) -> bool:
        """Liveness says whether the engine answers (the supervisor restarts it when not)."""
        return self.client.up

    @property
    def idle(self) -> bool:
        return not self.client.pending

    def drain(self, deadline: float) -> None:
        """The engine process drains its schedulers on its own SIGTERM; here a start still
        waiting for the engine gives up."""
        self.stopping.set()

    def stop(self, timeout: float | None = None) -> None:
        """Wait (in a thread) for the jobs in flight to be answered, ``timeout`` at most."""
        until = time.monotonic() + (timeout or 0.0)
        while self.client.pending and time.monotonic() < until:
            time.sleep(0.05)
