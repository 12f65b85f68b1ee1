"""DeepL's document jobs: each upload translated by a background task of the process that took
it, its record and result kept in the state store (service/state/documents.py: SQLite, or Redis
shared by replicas), so that its status and its result are answered by any process. Bounded per
owner (the request's key, or ``anonymous`` without keys) by count and bytes, and in all by bytes,
checked by the store as the job is added; a job is deleted when downloaded (once: a second
download is a 404) or when its age passes ``seconds`` (a running one is cancelled).

This process writes a heartbeat and the progress of each job it holds every ``HEARTBEAT``
seconds; a job whose runner stopped beating (killed, crashed, cut off from the store) reads as an
error after ``LEASE`` seconds, on every replica and after a restart, never as translating until
its expiry. A process that stops cleanly marks its unfinished jobs as errors at once."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import os
import secrets
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from service.errors import NotFound, ServiceError
from service.state.documents import (
    HEARTBEAT,
    LEASE,
    Bounds,
    DocumentRecord,
    DocumentStore,
    Refusal,
    State,
)
from service.state.keys import StateUnavailable

log = logging.getLogger(__name__)

JOB_SECONDS = 600.0  # a job is deleted this long after its upload, done, downloaded or not
JOBS_PER_OWNER = 16  # documents one owner may have queued, translating or waiting for download
BYTES_PER_OWNER = 64 * 1024 * 1024  # their uploads and results, together
BYTES_IN_ALL = 256 * 1024 * 1024  # every owner's, together
WORKERS = 2  # documents translated at once: the rest wait, so interactive requests keep the model
STATUS_WAIT = 1.0  # seconds a status request waits for its job to finish before it answers
POLL = 0.25  # seconds between reads of a job another process runs, while a status request waits
LOST = (
    "the server translating this document stopped before it finished (it was restarted or lost "
    "its state store): upload it again"
)
STOPPED = "the server stopped before this document was translated: upload it again"
EXPIRED = "expired before it was translated"


@dataclass
class Progress:
    """Segments of a document known and translated so far; the runner adds to both as it goes
    (a format may find more segments as it reads on)."""

    done: int = 0
    total: int = 0


Run = Callable[[bytes, Progress], Awaitable[tuple[bytes, int]]]  # -> (result, billed characters)


class TooManyDocuments(ServiceError):
    status, error_type = 429, "too_many_documents"


class NotReady(ServiceError):
    """DeepL's clients read 503 on a download as "document not ready"."""

    status, error_type = 503, "document_not_ready"


@dataclass(frozen=True)
class Handle:
    id: str
    key: str  # the document key, given to the client once; the store keeps its digest


@dataclass(frozen=True)
class Status:
    id: str
    state: State
    billed: int | None = None
    error: str | None = None
    seconds_remaining: int | None = None  # while translating, once there is a rate to go by


@dataclass
class Running:
    """A job this process translates."""

    expires: float
    progress: Progress = field(default_factory=Progress)
    task: asyncio.Task[None] | None = None
    reason: str = STOPPED  # what a cancelled job's error says
    finished: asyncio.Event = field(default_factory=asyncio.Event)


def digest(document_key: str) -> str:
    return hashlib.sha256(document_key.upper().encode("utf-8", "surrogatepass")).hexdigest()


def seconds_remaining(record: DocumentRecord, now: float) -> int | None:
    """The rest of a translating job at the rate of its segments so far (as of its last beat),
    less the time since that beat; None before the first segment is done."""
    if record.state is not State.TRANSLATING or record.started is None or record.done <= 0:
        return None
    spent = max(record.beat - record.started, 1e-3)
    rest = (record.total - record.done) * spent / record.done - (now - record.beat)
    return max(1, math.ceil(rest))


class JobStore:
    def __init__(
        self,
        store: DocumentStore,
        seconds: float = JOB_SECONDS,
        per_owner: int = JOBS_PER_OWNER,
        owner_bytes: int = BYTES_PER_OWNER,
        all_bytes: int = BYTES_IN_ALL,
        workers: int = WORKERS,
        clock: Callable[[], float] = time.time,  # shared by processes: wall-clock time
    ) -> None:
        self.store, self.seconds, self.clock = store, seconds, clock
        self.bounds = Bounds(per_owner, owner_bytes, all_bytes)
        self.workers = asyncio.Semaphore(workers)
        self.runner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.running: dict[str, Running] = {}
        self.beating: asyncio.Task[None] | None = None

    async def submit(
        self, owner: str, data: bytes, media_type: str, filename: str, run: Run
    ) -> Handle:
        """Queue ``data`` for ``run``; 429 past the owner's count or bytes, or all bytes."""
        now = self.clock()
        handle = Handle(uuid.uuid4().hex.upper(), secrets.token_hex(32).upper())
        record = DocumentRecord(
            handle.id,
            owner,
            digest(handle.key),
            media_type,
            filename,
            len(data),
            now,
            now + self.seconds,
            self.runner,
            beat=now,
        )
        refusal = await asyncio.to_thread(self.store.add, record, self.bounds, now)
        if refusal is not None:
            raise self.too_many(refusal)
        job = self.running[handle.id] = Running(record.expires)
        job.task = asyncio.create_task(
            self.work(handle.id, job, data, run), name=f"document-{handle.id}"
        )
        if self.beating is None or self.beating.done():
            self.beating = asyncio.create_task(self.heartbeat(), name="document-heartbeat")
        return handle

    def too_many(self, refusal: Refusal) -> TooManyDocuments:
        if refusal == "count":
            return TooManyDocuments(
                f"this key has {self.bounds.per_owner} documents queued or waiting for download, "
                f"the most it may have: download or wait for them (each is deleted after "
                f"{self.seconds:g} s)"
            )
        if refusal == "owner_bytes":
            return TooManyDocuments(
                f"this key's documents would hold more than {self.bounds.owner_bytes} bytes"
            )
        return TooManyDocuments(f"documents held reach {self.bounds.all_bytes} bytes: retry later")

    async def work(self, job_id: str, job: Running, data: bytes, run: Run) -> None:
        try:
            async with self.workers:
                started = self.clock()
                await self.write(job_id, state=State.TRANSLATING, started=started, beat=started)
                result, billed = await run(data, job.progress)
            await asyncio.to_thread(self.store.finish, job_id, result, billed)
        except asyncio.CancelledError:
            await self.fail(job_id, job.reason)
            raise
        except ServiceError as exc:  # the state store down too: ``fail`` logs it, and the
            await self.fail(job_id, str(exc))  # job reads as LOST once its beat is old
        except Exception:  # a library's bug on some document: that job fails, never the server
            log.exception("document %s failed", job_id)
            await self.fail(job_id, "internal error while translating the document")
        finally:
            self.running.pop(job_id, None)
            job.finished.set()

    async def write(self, job_id: str, **changes: object) -> bool:
        return await asyncio.to_thread(self.store.update, job_id, **changes)

    async def fail(self, job_id: str, message: str) -> None:
        try:
            await self.write(job_id, state=State.ERROR, error=message, size=0)
        except StateUnavailable as exc:
            log.warning("document %s: %s", job_id, exc.message)

    async def heartbeat(self) -> None:
        """Every ``HEARTBEAT`` s while this process holds jobs: each one's beat and progress;
        a job past its expiry, or one the store no longer has, is cancelled."""
        while self.running:
            await asyncio.sleep(HEARTBEAT)
            now = self.clock()
            for job_id, job in list(self.running.items()):
                if job.expires <= now:
                    self.cancel(job, EXPIRED)
                    continue
                progress = job.progress
                try:
                    kept = await self.write(
                        job_id, beat=now, done=progress.done, total=progress.total
                    )
                except StateUnavailable as exc:
                    log.warning("document %s: %s", job_id, exc.message)
                    continue
                if not kept:  # expired, or taken for dead by another process
                    self.cancel(job, EXPIRED if job.expires <= now else LOST)

    def cancel(self, job: Running, reason: str) -> None:
        if job.task is not None and not job.task.done():
            job.reason = reason
            job.task.cancel()

    async def find(self, owner: str, job_id: str, key: str) -> DocumentRecord:
        """The job if ``owner`` made it and ``key`` is its key; 404 otherwise (as DeepL). A job
        whose runner stopped beating is marked an error here, for every process to see."""
        now = self.clock()
        record = await asyncio.to_thread(self.store.find, job_id, now)
        if (
            record is None
            or record.owner != owner
            or not hmac.compare_digest(record.key_digest, digest(key))
        ):
            raise NotFound(f"no document {job_id!r} with this document_key for this key")
        if record.orphaned(now) and job_id not in self.running:
            await asyncio.to_thread(self.store.abandon, job_id, now - LEASE, LOST)
            record = await self.reread(record)
        return record

    async def status(self, owner: str, job_id: str, key: str, wait: float = STATUS_WAIT) -> Status:
        """The job's status, as soon as it finishes or after at most ``wait`` seconds."""
        record = await self.find(owner, job_id, key)
        if record.state in (State.QUEUED, State.TRANSLATING):
            record = await self.wait(record, wait)
        return Status(
            record.id,
            record.state,
            record.billed if record.state is State.DONE else None,
            record.error if record.state is State.ERROR else None,
            seconds_remaining(record, self.clock()),
        )

    async def wait(self, record: DocumentRecord, seconds: float) -> DocumentRecord:
        local = self.running.get(record.id)
        if local is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(local.finished.wait(), seconds)
        else:  # another process's: read it again a few times
            deadline = self.clock() + seconds
            while record.state in (State.QUEUED, State.TRANSLATING) and self.clock() < deadline:
                await asyncio.sleep(POLL)
                record = await self.reread(record)
            return record
        return await self.reread(record)

    async def reread(self, record: DocumentRecord) -> DocumentRecord:
        """``record`` as the store has it now (as it was, if it went meanwhile)."""
        found = await asyncio.to_thread(self.store.find, record.id, self.clock())
        return record if found is None else found

    async def take(self, owner: str, job_id: str, key: str) -> tuple[bytes, str]:
        """A done job's result and media type, removed: its result is downloaded once."""
        record = await self.find(owner, job_id, key)
        if record.state is not State.DONE:
            raise NotReady(f"document {job_id} is {record.state.value}, not done")
        result = await asyncio.to_thread(self.store.take, job_id, owner, record.key_digest)
        if result is None:  # another request took it first
            raise NotFound(f"no document {job_id!r} with this document_key for this key")
        return result, record.media_type

    async def ready(self) -> str | None:
        """None when the store answers, else why not (for /readyz)."""
        try:
            await asyncio.to_thread(self.store.ping)
        except StateUnavailable as exc:
            return exc.message
        return None

    async def close(self) -> None:
        """Stops this process's jobs, each marked an error (STOPPED), and closes the store."""
        if self.beating is not None:
            self.beating.cancel()
        tasks = [job.task for job in self.running.values() if job.task is not None]
        for job in list(self.running.values()):
            self.cancel(job, STOPPED)
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self.store.close)
