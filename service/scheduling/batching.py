"""The scheduler's pure core: who waits, who joins the batch, who is answered, and with what.

Plain data in and out, as vLLM v1's ``schedule()`` / ``update_from_output()``: ``sweep`` drops
what was cancelled or ran past its deadline, ``admit`` decides which sentences join (a ``Plan``),
``update`` turns the engine's finished sentences into answers, ``fail`` fails the requests a
failure concerns. No thread, lock, event loop or metric here (``scheduler.py`` beside it is the
shell that owns those and runs the engine), so tests drive it with a fake engine and hand-made
step outputs. It never imports onnxruntime: the engine is anything that has ``EngineLike``'s
methods.

Clients share the server (docs/decisions.md #49): sentences join by deficit round robin over
clients (within a client, its requests take turns), each of n clients with work holds at most
1/n of the batch's rows, and a full queue makes room for a client holding less of it by pushing
out the newest unstarted requests of the client holding most. A drain admits whole requests,
oldest first, so that those it can finish, finish.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
from collections import OrderedDict, deque
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
# Rows a client is credited at each of its turns (deficit round robin): one beam-8 sentence or
# eight greedy ones; a sentence of more rows is credited its own.
QUANTUM = 8
# A client that sent a request this recently still counts as sharing the server (``client_rows``):
# a client sending one request after another has no work between them, and without it the
# flooder's batch would grow back in each gap and hold the next request's steps.
RECENT_SECONDS = 1.0
# Who asks when nobody says (the API passes the key's hash, or the address without keys).
ANONYMOUS = "anonymous"


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
    client: Hashable = ANONYMOUS  # whose share of the queue and of the batch it uses
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
    # While another client has work (or had, RECENT_SECONDS ago), one client's sentences hold at
    # most this many rows; None: a fair share of max_rows. Where a step's time grows with its
    # rows (a CPU), this is what bounds another client's latency during a flood.
    client_rows: int | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")


@dataclass
class BatchState:
    """Everything the core decides over; the shell guards it with its lock."""

    limits: Limits
    # Requests with sentences not yet admitted, oldest first (a dict as an ordered set).
    waiting: dict[Job, None] = field(default_factory=dict)
    # The same requests by client, in round-robin order: the first client's turn is now; a
    # client's own requests take turns too.
    turns: OrderedDict[Hashable, deque[Job]] = field(default_factory=OrderedDict)
    deficit: dict[Hashable, int] = field(default_factory=dict)  # rows left in a client's turn
    queued_by: dict[Hashable, int] = field(default_factory=dict)  # waiting sentences per client
    running: dict[int, Job] = field(default_factory=dict)
    queued_sentences: int = 0
    steps_since_join: int = 0
    drain_at: float | None = None  # past it, what is left is answered ShuttingDown
    seen: dict[Hashable, float] = field(default_factory=dict)  # last request per client


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


def enqueue(state: BatchState, job: Job, now: float) -> list[Answer]:
    """Queue ``job``; QueueFull (429) when the queue cannot take all its sentences. A full queue
    first makes room by pushing out requests of clients holding more of it (``make_room``):
    those are returned, answered QueueFull. While draining, a job still comes in until the
    drain's answer deadline: the server stopped taking requests at SIGTERM, so it belongs to a
    request accepted before (its preparation was still running) and is owed an answer."""
    if state.drain_at is not None and now >= state.drain_at:
        raise ShuttingDown("the server is shutting down")
    answers: list[Answer] = []
    if state.queued_sentences + len(job.sources) > state.limits.max_queue:
        for pushed in make_room(state, job):
            unqueue(state, pushed)
            pushed.state, pushed.finished_at = JobState.FAILED, now
            error = QueueFull(
                "the queue is full and this client held the most of it; retry shortly",
                headers={"Retry-After": "1"},
            )
            answers.append((pushed, error))
    job.queued_at = now
    if state.limits.client_rows:
        state.seen[job.client] = now
    state.waiting[job] = None
    if job.client not in state.turns:
        state.turns[job.client] = deque()
        state.deficit[job.client] = max(QUANTUM, job.rows_per_sentence)
    state.turns[job.client].append(job)
    state.queued_by[job.client] = state.queued_by.get(job.client, 0) + len(job.sources)
    state.queued_sentences += len(job.sources)
    return answers


def make_room(state: BatchState, job: Job) -> list[Job]:
    """The requests to push out so that ``job`` fits the queue: the newest not yet started of
    the client holding the most waiting sentences, while it would still hold at least as many as
    ``job``'s client then does (longest queue drop); QueueFull when that cannot make room."""
    needed = state.queued_sentences + len(job.sources) - state.limits.max_queue
    mine = state.queued_by.get(job.client, 0) + len(job.sources)
    held = {c: n for c, n in state.queued_by.items() if c != job.client}
    unstarted: dict[Hashable, list[Job]] = {}  # per client, newest first
    for other in reversed(state.waiting):
        if other.admitted == 0 and other.client != job.client:
            unstarted.setdefault(other.client, []).append(other)
    pushed: list[Job] = []
    while needed > 0 and held:
        longest = max(held, key=held.__getitem__)
        candidates = unstarted.get(longest)
        if not candidates or held[longest] - len(candidates[0].sources) < mine:
            del held[longest]  # nothing it can give: try the next longest
            continue
        victim = candidates.pop(0)
        pushed.append(victim)
        held[longest] -= len(victim.sources)
        needed -= len(victim.sources)
    if needed > 0:
        raise QueueFull(
            f"queue is full ({state.queued_sentences} sentences waiting, limit "
            f"{state.limits.max_queue}); retry shortly",
            headers={"Retry-After": "1"},
        )
    return pushed


def drain(state: BatchState, at: float) -> None:
    """Answer what is still unfinished at ``at`` with ShuttingDown (503), and refuse jobs from
    then on. From now on whole requests join, oldest first (``admit``)."""
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
        unqueue(state, job)
    if state.running.pop(job.id, None) is not None:
        return list(job.seq_ids())
    return []


def unqueue(state: BatchState, job: Job) -> None:
    """Take ``job``'s sentences not yet admitted out of the queue."""
    left = len(job.sources) - job.admitted
    del state.waiting[job]
    jobs = state.turns[job.client]
    jobs.remove(job)
    if not jobs:  # a client with nothing waiting leaves the round (its deficit too)
        del state.turns[job.client], state.deficit[job.client]
    state.queued_by[job.client] -= left
    if not state.queued_by[job.client]:
        del state.queued_by[job.client]
    state.queued_sentences -= left


def admit(state: BatchState, engine: EngineLike, now: float) -> Plan:
    """Sentences to join now, within the budgets of rows and of reserved cache tokens (beams x
    (source + longest output)): by deficit round robin over clients, each within its share of
    rows (``next_fair``); while draining, whole requests oldest first."""
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
    draining = state.drain_at is not None
    rows = rows_by_client(state)
    share = fair_share(state, rows.keys() | state.turns.keys(), now)
    while state.waiting and len(plan.joins) < limit:
        job = next(iter(state.waiting)) if draining else next_fair(state, rows, share)
        if job is None:
            break  # every waiting client holds its share of the batch
        try:
            cost = engine.tokens_for(job.sources[job.admitted], job.options)
        except Exception as exc:  # its own options or sentence: only this request fails
            log.warning("request %d refused at admission: %r", job.id, exc)
            plan.outcome.extend(fail(state, [job], InvalidRequest(f"cannot decode: {exc}"), now))
            continue
        need = job.rows_per_sentence
        if (need > budget or cost > tokens) and (plan.joins or busy):
            break  # the turn stays where it is; an oversized sentence still runs alone
        plan.joins.append((job, job.admitted))
        take(state, job, now)
        budget -= need
        tokens -= cost
        rows[job.client] = rows.get(job.client, 0) + need
        if not draining and job.client in state.deficit:  # gone with its last sentence
            state.deficit[job.client] -= need
    if plan.joins:
        state.steps_since_join = 0
    return plan


def fair_share(state: BatchState, busy: set[Hashable], now: float) -> int:
    """The rows one client may hold: an equal part of the batch among the ``busy`` clients,
    and at most ``client_rows`` when another client is busy or was recently."""
    share = state.limits.max_rows // max(1, len(busy))
    if state.limits.client_rows:
        state.seen = {c: t for c, t in state.seen.items() if now - t <= RECENT_SECONDS}
        if len(busy | state.seen.keys()) > 1:
            share = min(share, state.limits.client_rows)
    return share


def rows_by_client(state: BatchState) -> dict[Hashable, int]:
    """Rows each client's sentences hold in the running batch."""
    rows: dict[Hashable, int] = {}
    for job in state.running.values():
        held = (job.admitted - job.finished) * job.rows_per_sentence
        rows[job.client] = rows.get(job.client, 0) + held
    return rows


def next_fair(state: BatchState, rows: dict[Hashable, int], share: int) -> Job | None:
    """The request whose sentence joins next: the client whose turn it is, while its turn's
    rows (its deficit) last, then the next client, credited ``QUANTUM`` rows for its next turn;
    a client holding its share of the batch (but always one sentence) is passed over. None when
    every waiting client is at its share."""
    for _ in range(2 * len(state.turns)):  # two rounds: credit everyone, then serve
        client, jobs = next(iter(state.turns.items()))
        need = jobs[0].rows_per_sentence
        if rows.get(client, 0) and rows[client] + need > share:
            state.turns.move_to_end(client)
            continue
        if state.deficit[client] >= need:
            return jobs[0]
        state.deficit[client] += max(QUANTUM, need)
        state.turns.move_to_end(client)
    return None


def take(state: BatchState, job: Job, now: float) -> None:
    """The next sentence of ``job`` joins the batch; its request goes to the back of its
    client's turns, or leaves the queue with its last sentence."""
    job.admitted += 1
    state.queued_sentences -= 1
    state.queued_by[job.client] -= 1
    state.running[job.id] = job
    if job.started_at is None:
        job.started_at, job.state = now, JobState.RUNNING
    if job.admitted == len(job.sources):
        unqueue(state, job)  # nothing left to take back
    elif state.turns[job.client][0] is job:
        state.turns[job.client].rotate(-1)


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
