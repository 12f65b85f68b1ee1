"""The scheduler's pure core: who waits, who joins the batch, who is answered, and with what.

Plain data in and out, as vLLM v1's ``schedule()`` / ``update_from_output()``: ``sweep`` drops
what was cancelled or ran past its deadline, ``admit`` decides which sentences join (a ``Plan``),
``update`` turns the engine's finished sentences into answers, ``fail`` fails the requests a
failure concerns. No thread, lock, event loop or metric here (``scheduler.py`` beside it is
the shell that owns those and runs the engine), so tests drive it with a fake engine and hand-made
step outputs. It never imports onnxruntime: the engine is anything that has ``EngineLike``'s
methods.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

from contract.options import Hypothesis, SearchOptions, SequenceResult
from service.errors import (
    DeadlineExceeded,
    EngineFailure,
    InvalidRequest,
    QueueFull,
    ServiceError,
    ShuttingDown,
)

log = logging.getLogger("tongyeok.scheduler")

Policy = Literal["continuous", "request", "none"]
POLICIES: tuple[Policy, ...] = ("continuous", "request", "none")

# Waiting sentences that join at the next step whatever the join interval.
JOIN_AT_ONCE = 8


class EngineLike(Protocol):
    """What the scheduler needs from a decoding engine (``decoding.engine.Engine`` is one)."""

    def add(
        self, seq_ids: Sequence[Hashable], sources: Sequence[Sequence[int]], options: SearchOptions
    ) -> None: ...

    def encode(self, sources: Sequence[Sequence[int]]) -> Any:
        """The encoder pass alone: touches no engine state (may run beside ``step``)."""
        ...

    def join(self, seq_ids: Sequence[Hashable], encoded: Any, options: SearchOptions) -> None: ...

    def step(self) -> list[SequenceResult]: ...

    def cancel(self, seq_ids: Sequence[Hashable]) -> None: ...

    def reset(self) -> None: ...

    def tokens_for(self, source: Sequence[int], options: SearchOptions) -> int: ...

    @property
    def active_rows(self) -> int: ...

    @property
    def reserved_tokens(self) -> int: ...

    @property
    def rows(self) -> int: ...

    def __len__(self) -> int: ...


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


FINISHED = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED})


@dataclass(eq=False)
class Job:
    """One request's sentences for one model, with its lifecycle timestamps. ``loop`` and
    ``future`` belong to the shell: the core never touches them."""

    sources: list[list[int]]
    options: SearchOptions
    deadline: float  # time.monotonic() seconds
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    id: int = field(default_factory=itertools.count().__next__)
    results: list[list[Hypothesis] | None] = field(default_factory=list)
    admitted: int = 0  # sentences handed to the engine so far
    finished: int = 0
    state: JobState = JobState.QUEUED
    queued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None

    def __post_init__(self) -> None:
        self.results = [None] * len(self.sources)

    @property
    def rows_per_sentence(self) -> int:
        return self.options.beam_size

    def seq_ids(self) -> list[tuple[int, int]]:
        """The engine ids of the sentences handed to it so far."""
        return [(self.id, i) for i in range(self.admitted)]


Answer = tuple[Job, "list[list[Hypothesis]] | ServiceError"]


@dataclass
class Limits:
    max_rows: int = 256
    max_queue: int = 4096  # sentences waiting
    max_tokens: int = 1 << 30  # cache positions reserved by the running batch
    policy: Policy = "continuous"
    join_interval: int = 1

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")


@dataclass
class BatchState:
    """Everything the core decides over; the shell guards it with its lock."""

    limits: Limits
    waiting: deque[Job] = field(default_factory=deque)
    running: dict[int, Job] = field(default_factory=dict)
    queued_sentences: int = 0
    steps_since_join: int = 0
    drain_at: float | None = None  # past it, what is left is answered ShuttingDown


@dataclass
class Outcome:
    """What a decision resolved: answers to hand over, engine sequences to drop, and events."""

    answers: list[Answer] = field(default_factory=list)
    cancel: list[Hashable] = field(default_factory=list)  # engine sequences to drop
    cancelled: int = 0  # requests dropped because their client went away
    sentences: list[Hypothesis] = field(default_factory=list)  # best of each finished sentence

    def extend(self, other: Outcome) -> None:
        self.answers += other.answers
        self.cancel += other.cancel
        self.cancelled += other.cancelled
        self.sentences += other.sentences


@dataclass
class Plan:
    """Sentences to join now, grouped by options (one encoder pass each); ``outcome`` holds the
    requests refused while planning (their options could not be costed)."""

    joins: list[tuple[Job, int]]
    outcome: Outcome

    def by_options(self) -> dict[SearchOptions, list[tuple[Job, int]]]:
        by_options: dict[SearchOptions, list[tuple[Job, int]]] = {}
        for job, index in self.joins:
            by_options.setdefault(job.options, []).append((job, index))
        return by_options


def enqueue(state: BatchState, job: Job, now: float) -> None:
    """Queue ``job``; QueueFull (429) when the queue cannot take all its sentences."""
    if state.drain_at is not None:
        raise ShuttingDown("the server is shutting down")
    if state.queued_sentences + len(job.sources) > state.limits.max_queue:
        raise QueueFull(
            f"queue is full ({state.queued_sentences} sentences waiting, limit "
            f"{state.limits.max_queue}); retry shortly",
            headers={"Retry-After": "1"},
        )
    job.queued_at = now
    state.waiting.append(job)
    state.queued_sentences += len(job.sources)


def drain(state: BatchState, at: float) -> None:
    """Answer what is still unfinished at ``at`` with ShuttingDown (503); refuse new jobs."""
    state.drain_at = at if state.drain_at is None else min(at, state.drain_at)


def sweep(state: BatchState, now: float) -> Outcome:
    """Drop the requests that were cancelled or ran past their deadline (or the drain's)."""
    out = Outcome()
    draining = state.drain_at is not None and now >= state.drain_at
    # A job can be both running and waiting (its next sentence waits its turn): visit it once.
    for job in dict.fromkeys([*state.waiting, *state.running.values()]):
        if job.state not in FINISHED and (draining or now > job.deadline):
            error: ServiceError = (
                ShuttingDown("the server shut down before this request could finish")
                if draining
                else DeadlineExceeded("the request ran past its deadline")
            )
            job.state = JobState.EXPIRED
            job.finished_at = now
            out.answers.append((job, error))
        if job.state in (JobState.CANCELLED, JobState.EXPIRED):
            out.cancelled += job.state is JobState.CANCELLED
            out.cancel += forget(state, job)
    return out


def forget(state: BatchState, job: Job) -> list[Hashable]:
    """Remove ``job`` from the queue and the batch; returns its engine sequences to drop."""
    if job in state.waiting:
        state.waiting.remove(job)
        state.queued_sentences -= len(job.sources) - job.admitted
    if state.running.pop(job.id, None) is not None:
        return list(job.seq_ids())
    return []


def admit(state: BatchState, engine: EngineLike, now: float) -> Plan:
    """Sentences to join now: round-robin over waiting requests, within the budgets of rows
    and of reserved cache tokens (beams x (source + longest output))."""
    limits, plan = state.limits, Plan([], Outcome())
    busy = engine.active_rows
    if limits.policy != "continuous" and busy:
        return plan  # request-level and no batching wait for the batch to drain
    if (
        busy
        and state.steps_since_join < limits.join_interval
        and state.queued_sentences < JOIN_AT_ONCE
    ):
        return plan  # let arrivals gather: one encoder pass and one merge for several
    budget = limits.max_rows - busy
    tokens = limits.max_tokens - engine.reserved_tokens
    limit = 1 if limits.policy == "none" else len(state.waiting) + state.queued_sentences
    while state.waiting and len(plan.joins) < limit:
        job = state.waiting[0]
        try:
            cost = engine.tokens_for(job.sources[job.admitted], job.options)
        except Exception as exc:  # its own options or sentence: only this request fails
            log.warning("request %d refused at admission: %r", job.id, exc)
            plan.outcome.extend(fail(state, [job], InvalidRequest(f"cannot decode: {exc}"), now))
            continue
        if (job.rows_per_sentence > budget or cost > tokens) and (plan.joins or busy):
            break  # keeps arrival order; an oversized sentence still runs alone
        state.waiting.popleft()
        plan.joins.append((job, job.admitted))
        job.admitted += 1
        budget -= job.rows_per_sentence
        tokens -= cost
        state.queued_sentences -= 1
        state.running[job.id] = job
        if job.started_at is None:
            job.started_at, job.state = now, JobState.RUNNING
        if job.admitted < len(job.sources):
            state.waiting.append(job)  # its next sentence waits its turn
    if plan.joins:
        state.steps_since_join = 0
    return plan


def stepped(state: BatchState) -> None:
    """One decoder step ran (the join interval counts steps)."""
    state.steps_since_join += 1


def update(state: BatchState, finished: Sequence[SequenceResult], now: float) -> Outcome:
    """The engine's finished sentences: a request is answered when all its sentences are; a
    sentence that failed fails its own request only."""
    out = Outcome()
    for result in finished:
        job_id, index = cast(tuple[int, int], result.seq_id)  # the shell's ids: (job, sentence)
        job = state.running.get(job_id)
        if job is None or job.state in FINISHED:
            continue
        if result.error is not None:
            error = EngineFailure(f"translation failed: {result.error}")
            out.extend(fail(state, [job], error, now))
            continue
        job.results[index] = result.hypotheses
        job.finished += 1
        out.sentences.append(result.best)
        if job.finished == len(job.sources):
            job.state, job.finished_at = JobState.DONE, now
            state.running.pop(job.id, None)
            out.answers.append((job, [r for r in job.results if r is not None]))
    return out


def fail(state: BatchState, jobs: Sequence[Job], error: ServiceError, now: float) -> Outcome:
    """Fail ``jobs`` with ``error``; their sentences leave the queue and the engine."""
    out = Outcome()
    for job in jobs:
        if job.state in FINISHED:
            continue
        job.state, job.finished_at = JobState.FAILED, now
        out.answers.append((job, error))
        out.cancel += forget(state, job)
    return out


def fail_running(state: BatchState, error: ServiceError, now: float) -> Outcome:
    """A failed engine step: every request in the batch fails (the engine restarts clean)."""
    return fail(state, list(state.running.values()), error, now)
