"""DeepL's document jobs: each upload translated by a background task, its status polled, its
result downloaded once. Held in memory, bounded per owner (the request's key, or ``anonymous``
without keys) by count and bytes, and in all by bytes; a job is deleted when downloaded or when
its age passes ``seconds`` (a running one is cancelled). Nothing is written to disk."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from service.errors import NotFound, ServiceError

log = logging.getLogger(__name__)

JOB_SECONDS = 600.0  # a job is deleted this long after its upload, done, downloaded or not
JOBS_PER_OWNER = 16  # documents one owner may have queued, translating or waiting for download
BYTES_PER_OWNER = 64 * 1024 * 1024  # their uploads and results, together
BYTES_IN_ALL = 256 * 1024 * 1024  # every owner's, together
WORKERS = 2  # documents translated at once: the rest wait, so interactive requests keep the model
STATUS_WAIT = 1.0  # seconds a status request waits for its job to finish before it answers

Run = Callable[[bytes], Awaitable[tuple[bytes, int]]]  # upload -> (result, billed characters)


class TooManyDocuments(ServiceError):
    status, error_type = 429, "too_many_documents"


class NotReady(ServiceError):
    """DeepL's clients read 503 on a download as "document not ready"."""

    status, error_type = 503, "document_not_ready"


class State(StrEnum):
    QUEUED = "queued"
    TRANSLATING = "translating"
    DONE = "done"
    ERROR = "error"


@dataclass
class Job:
    id: str
    key: str
    owner: str
    media_type: str
    size: int  # bytes held: the upload until it is translated, then the result
    created: float
    state: State = State.QUEUED
    billed: int | None = None
    error: str | None = None
    result: bytes | None = None
    task: asyncio.Task[None] | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class JobStore:
    def __init__(
        self,
        seconds: float = JOB_SECONDS,
        per_owner: int = JOBS_PER_OWNER,
        owner_bytes: int = BYTES_PER_OWNER,
        all_bytes: int = BYTES_IN_ALL,
        workers: int = WORKERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.seconds, self.per_owner, self.clock = seconds, per_owner, clock
        self.owner_bytes, self.all_bytes = owner_bytes, all_bytes
        self.workers = asyncio.Semaphore(workers)
        self.jobs: dict[str, Job] = {}  # oldest first: the first to expire

    def submit(self, owner: str, data: bytes, media_type: str, run: Run) -> Job:
        """Queue ``data`` for ``run``; 429 past the owner's count or bytes, or all bytes."""
        self.expire()
        mine = [j for j in self.jobs.values() if j.owner == owner]
        if len(mine) >= self.per_owner:
            raise TooManyDocuments(
                f"this key has {len(mine)} documents queued or waiting for download, the most "
                f"it may have: download or wait for them (each is deleted after "
                f"{self.seconds:g} s)"
            )
        if sum(j.size for j in mine) + len(data) > self.owner_bytes:
            raise TooManyDocuments(
                f"this key's documents would hold more than {self.owner_bytes} bytes"
            )
        if sum(j.size for j in self.jobs.values()) + len(data) > self.all_bytes:
            raise TooManyDocuments(f"documents held reach {self.all_bytes} bytes: retry later")
        job = Job(
            uuid.uuid4().hex.upper(),
            secrets.token_hex(32).upper(),
            owner,
            media_type,
            len(data),
            self.clock(),
        )
        self.jobs[job.id] = job
        job.task = asyncio.create_task(self.work(job, data, run), name=f"document-{job.id}")
        return job

    async def work(self, job: Job, data: bytes, run: Run) -> None:
        try:
            async with self.workers:
                job.state = State.TRANSLATING
                result, billed = await run(data)
            job.result, job.billed, job.size, job.state = result, billed, len(result), State.DONE
        except asyncio.CancelledError:
            job.state, job.error = State.ERROR, "expired before it was translated"
            raise
        except ServiceError as exc:
            job.state, job.error = State.ERROR, str(exc)
        except Exception:  # a library's bug on some document: that job fails, never the server
            log.exception("document %s failed", job.id)
            job.state, job.error = State.ERROR, "internal error while translating the document"
        finally:
            if job.state is State.ERROR:
                job.size = 0
            job.finished.set()

    def get(self, owner: str, job_id: str, key: str) -> Job:
        """The job if ``owner`` made it and ``key`` is its key; 404 otherwise (as DeepL)."""
        self.expire()
        job = self.jobs.get(job_id)
        if (
            job is None
            or job.owner != owner
            or not hmac.compare_digest(job.key.encode(), key.upper().encode())
        ):
            raise NotFound(f"no document {job_id!r} with this document_key for this key")
        return job

    async def wait(self, job: Job, seconds: float = STATUS_WAIT) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(job.finished.wait(), seconds)

    def take(self, owner: str, job_id: str, key: str) -> Job:
        """A finished job, removed: its result is downloaded once."""
        job = self.get(owner, job_id, key)
        if job.state is not State.DONE:
            raise NotReady(f"document {job_id} is {job.state.value}, not done")
        del self.jobs[job_id]
        return job

    def expire(self) -> None:
        limit = self.clock() - self.seconds
        while self.jobs and (job := next(iter(self.jobs.values()))).created <= limit:
            del self.jobs[job.id]
            if job.task is not None and not job.task.done():
                job.task.cancel()

    def cancel_all(self) -> None:
        for job in self.jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()
        self.jobs.clear()
