"""The engine process's end of the channel: HTTP workers' jobs into this process's schedulers.

One ROUTER socket; each worker's jobs are keyed by (worker, job id), answered once by the
scheduler's future (``done`` or ``failed``), forgotten on ``cancel``. The schedulers, the
engines, the aligner and hot reload are the ``ModelRepository``'s, exactly as in one process:
this module only carries their inputs and answers (channel.py frames them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import zmq
import zmq.asyncio

from service.errors import Retired, ServiceError
from service.scheduling import channel
from service.scheduling.channel import SILENCE_SECONDS, Submit
from service.scheduling.repository import LoadedModel, ModelRepository
from service.scheduling.scheduler import Job, JobQueue

log = logging.getLogger("tongyeok.engine_process")


def table(repository: ModelRepository) -> dict[str, Any]:
    """What a worker needs to route and tokenize: each model's pair, package directory (its
    tokenizer is loaded there) and limits; the packages refused."""
    root = repository.settings.model_repository
    return {
        "models": [
            [
                m.name,
                m.source,
                m.target,
                str(root / directory),
                m.max_source_tokens,
                m.load_seconds,
                m.description,
                m.revision,
                m.can_align,
            ]
            for directory, package in sorted(repository.packages.items())
            for m in package.entries
        ],
        "failures": dict(repository.failures),
    }


def table_mark(repository: ModelRepository) -> str:
    """A fingerprint of the routing table: a worker asks for the table again when it changes
    (a reload: the poll, SIGHUP or another worker's admin request)."""
    served = sorted((m.name, m.revision) for m in repository.models.values())
    return repr((served, sorted(repository.failures.items())))


class EngineServer:
    """Serves ``repository``'s schedulers to the workers connected at ``address``."""

    def __init__(self, repository: ModelRepository, address: str) -> None:
        self.repository, self.address = repository, address
        # Which engine answers: a worker that sees it change knows its jobs in the old one are lost.
        self.incarnation = f"{os.getpid()}-{time.time_ns()}"
        self.jobs: dict[tuple[bytes, int], tuple[Job, JobQueue]] = {}
        self.heard: dict[bytes, float] = {}  # each worker's last message (time.monotonic())
        self.calls: set[asyncio.Future[None]] = set()  # held until done (weak refs otherwise)
        self.context = zmq.asyncio.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.SNDHWM, 0)  # never drop an answer
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.by_name: dict[str, LoadedModel] = {}
        self.routed: object = None  # the routing table ``by_name`` was built from
        self.handlers: dict[bytes, Callable[[bytes, bytes], None]] = {
            channel.PING: self.ping,
            channel.SUBMIT: self.submit,
            channel.CANCEL: self.cancel,
            channel.CALL: self.call,
        }
        self.methods: dict[str, Callable[[list[Any]], Awaitable[Any]]] = {
            "table": self.table,
            "align": self.align,
            "reload": self.reload,
        }

    def bind(self) -> None:
        self.socket.bind(self.address)

    async def serve(self) -> None:
        """Answer workers until cancelled; then let what is queued go out (a second at most)."""
        sweeping = asyncio.create_task(self.sweep())
        try:
            while True:
                worker, kind, body = await self.socket.recv_multipart()
                self.heard[worker] = time.monotonic()
                handler = self.handlers.get(kind)
                if handler is None:
                    log.error("unknown message kind %r from a worker", kind)
                    continue
                try:
                    handler(worker, body)
                except Exception:  # a malformed message fails itself, never the engine
                    log.exception("message %r from a worker failed", kind)
        finally:
            sweeping.cancel()
            self.socket.close(linger=1000)
            self.context.term()

    async def sweep(self) -> None:
        while True:
            await asyncio.sleep(SILENCE_SECONDS / 2)
            self.forget_silent(time.monotonic())

    def forget_silent(self, now: float) -> None:
        """Cancel the jobs of workers silent for SILENCE_SECONDS (killed: nobody will read
        their answers), so that the batch does not decode them to their deadlines."""
        silent = {w for w, heard in self.heard.items() if now - heard > SILENCE_SECONDS}
        if not silent:
            return
        for worker in silent:
            del self.heard[worker]
        gone = [key for key in self.jobs if key[0] in silent]
        for key in gone:
            job, queue = self.jobs.pop(key)
            queue.cancel(job)
        log.warning("%d worker(s) went silent: %d of their jobs cancelled", len(silent), len(gone))

    def send(self, worker: bytes, kind: bytes, body: bytes) -> None:
        # A ROUTER never blocks: a worker that went away just misses its answer.
        self.socket.send_multipart([worker, kind, body])

    def ping(self, worker: bytes, body: bytes) -> None:
        mark = table_mark(self.repository)
        self.send(worker, channel.PONG, channel.pack([self.incarnation, mark]))

    def model(self, name: str) -> LoadedModel | None:
        models = self.repository.models  # replaced whole by a reload
        if models is not self.routed:
            self.by_name, self.routed = {m.name: m for m in models.values()}, models
        return self.by_name.get(name)

    def submit(self, worker: bytes, body: bytes) -> None:
        request = Submit.decode(body)
        model = self.model(request.model)
        if model is None:  # removed by a reload since the worker routed it: it routes again
            error = Retired(f"model {request.model} was unloaded by a reload")
            self.send(worker, channel.FAILED, channel.encode_error(request.id, error))
            return
        loop = asyncio.get_running_loop()
        job = Job(
            request.sources,
            request.options,
            request.deadline,
            loop,
            loop.create_future(),
            request.client,
        )
        try:
            model.scheduler.submit(job)
        except ServiceError as exc:
            self.send(worker, channel.FAILED, channel.encode_error(request.id, exc))
            return
        self.jobs[worker, request.id] = (job, model.scheduler)
        job.future.add_done_callback(partial(self.answer, worker, request.id))

    def answer(self, worker: bytes, job_id: int, future: asyncio.Future) -> None:
        """The job's one answer (a cancelled job has none: its worker already forgot it)."""
        if self.jobs.pop((worker, job_id), None) is None or future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self.send(worker, channel.FAILED, channel.encode_error(job_id, error))
        else:
            self.send(worker, channel.DONE, channel.encode_results(job_id, future.result()))

    def cancel(self, worker: bytes, body: bytes) -> None:
        entry = self.jobs.pop((worker, channel.unpack(body)), None)
        if entry is not None:
            job, queue = entry
            queue.cancel(job)

    def call(self, worker: bytes, body: bytes) -> None:
        call_id, method, args = channel.unpack(body)
        task = asyncio.ensure_future(self.reply(worker, call_id, self.methods[method](args)))
        self.calls.add(task)
        task.add_done_callback(self.calls.discard)

    async def reply(self, worker: bytes, call_id: int, answer: Awaitable[Any]) -> None:
        try:
            value = await answer
        except Exception as exc:
            if not isinstance(exc, ServiceError):
                log.exception("call from a worker failed")
            self.send(worker, channel.REPLY, channel.encode_reply(call_id, error=exc))
            return
        self.send(worker, channel.REPLY, channel.encode_reply(call_id, value))

    async def table(self, args: list[Any]) -> dict[str, Any]:
        return {**table(self.repository), "mark": table_mark(self.repository)}

    async def align(self, args: list[Any]) -> list[Any]:
        """The aligner runs here, beside the engine that holds its session (on a GPU, on the
        device): the workers hold no ONNX session at all."""
        name, pairs = args
        model = self.model(name)
        if model is None:
            raise Retired(f"model {name} was unloaded by a reload")
        found = await asyncio.to_thread(model.align, [(s, t) for s, t in pairs])
        return channel.encode_matrices([None if a is None else a.weights for a in found])

    async def reload(self, args: list[Any]) -> dict[str, Any]:
        report = await asyncio.to_thread(self.repository.reload)
        if report.changed:
            log.info("reload asked by a worker: %s", report.to_dict())
        return report.to_dict()

    def close(self) -> None:
        """Stop at once (tests; a draining engine cancels ``serve`` instead)."""
        with contextlib.suppress(zmq.ZMQError):
            self.socket.close(linger=0)
        self.context.term()
