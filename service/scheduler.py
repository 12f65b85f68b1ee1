"""Continuous (iteration-level) batching: one loop per model owns its engine.

Each iteration: drop what was cancelled or ran past its deadline, admit waiting sentences while
the row budget allows (round-robin over requests, so one huge request cannot starve the others),
run ONE decoder step over every active sentence, and answer every request whose sentences are all
done. A new sentence joins at the next step after its encoder pass; a finished one leaves at once.

The loop runs in its own thread (ONNX Runtime releases the GIL while it computes, so the event
loop keeps serving HTTP); handlers talk to it only through ``submit`` and ``cancel``. It never
imports onnxruntime: the engine is given to it.

``policy`` exists for benchmarks: "continuous" (the above), "request" (request-level batching: a
batch runs to completion before new sentences join), "none" (one sentence at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from contract.options import Hypothesis, SearchOptions
from service.errors import DeadlineExceeded, EngineFailure, QueueFull, ServiceError, ShuttingDown
from service.metrics import Metrics

log = logging.getLogger("tongyeok.scheduler")
POLICIES = ("continuous", "request", "none")


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
    """One request's sentences for one model, with its lifecycle timestamps."""

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
    queued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    finished_at: float | None = None

    def __post_init__(self) -> None:
        self.results = [None] * len(self.sources)

    @property
    def rows_per_sentence(self) -> int:
        return self.options.beam_size


# Waiting sentences that join at the next step whatever the join interval.
JOIN_AT_ONCE = 8


class Scheduler:
    def __init__(
        self,
        name: str,
        engine: Any,  # service.engine.Engine (typed loosely: no onnxruntime import here)
        metrics: Metrics,
        max_rows: int = 256,
        max_queue: int = 4096,
        max_tokens: int = 1 << 30,
        policy: str = "continuous",
        join_interval: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.name, self.engine, self.metrics = name, engine, metrics
        self.max_rows, self.max_queue, self.policy, self.clock = max_rows, max_queue, policy, clock
        self.max_tokens, self.join_interval = max_tokens, join_interval
        self.steps_since_join = 0
        self.answers: list[tuple[Job, Any]] = []  # resolved this iteration, not yet handed over
        self.waiting: deque[Job] = deque()
        self.running: dict[int, Job] = {}
        self.queued_sentences = 0
        self.lock = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=f"scheduler-{name}", daemon=True)

    # -- called from the event loop ----------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def submit(self, job: Job) -> None:
        """Queue ``job``; raises QueueFull (429) when the queue cannot take all its sentences."""
        with self.lock:
            if self.stopping:
                raise ShuttingDown("the server is shutting down")
            if self.queued_sentences + len(job.sources) > self.max_queue:
                raise QueueFull(
                    f"queue is full ({self.queued_sentences} sentences waiting, limit "
                    f"{self.max_queue}); retry shortly",
                    headers={"Retry-After": "1"},
                )
            self.waiting.append(job)
            self.queued_sentences += len(job.sources)
            self.metrics.queue_depth.labels(self.name).set(self.queued_sentences)
            self.lock.notify()

    def cancel(self, job: Job) -> None:
        """The client went away: forget its sentences (those running leave at the next step)."""
        with self.lock:
            if job.state not in FINISHED:
                job.state = JobState.CANCELLED
                self.lock.notify()

    def stop(self, timeout: float | None = None) -> None:
        """Finish what was admitted or queued, then end the loop (bounded by ``timeout``)."""
        with self.lock:
            self.stopping = True
            self.lock.notify()
        self.thread.join(timeout)

    @property
    def idle(self) -> bool:
        with self.lock:
            return not self.waiting and not self.running

    # -- the loop (its own thread) -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self.waiting and not self.running and not self.stopping:
                    self.lock.wait()
                if self.stopping and not self.waiting and not self.running:
                    return
                self._drop_cancelled_and_expired()
                admitted = self._admit()
            try:
                self._start(admitted)
                self._step()
            except Exception as exc:  # a failing step fails only the requests in it
                log.exception("engine step failed on model %s", self.name)
                self._fail_running(EngineFailure(f"translation failed: {type(exc).__name__}"))
            self._settle()

    def _drop_cancelled_and_expired(self) -> None:
        now = self.clock()
        for job in [*self.waiting, *self.running.values()]:
            if job.state not in FINISHED and now > job.deadline:
                job.state = JobState.EXPIRED
                self._resolve(job, DeadlineExceeded("the request ran past its deadline"))
                self.metrics.requests_rejected.labels("deadline").inc()
            if job.state in (JobState.CANCELLED, JobState.EXPIRED):
                if job.state is JobState.CANCELLED:
                    self.metrics.requests_rejected.labels("cancelled").inc()
                self._forget(job)

    def _forget(self, job: Job) -> None:
        if job in self.waiting:
            self.waiting.remove(job)
            self.queued_sentences -= len(job.sources) - job.admitted
        if self.running.pop(job.id, None) is not None:
            self.engine.cancel([(job.id, i) for i in range(job.admitted)])
        self.metrics.queue_depth.labels(self.name).set(self.queued_sentences)

    def _admit(self) -> list[tuple[Job, int]]:
        """Sentences to join now: round-robin over waiting requests, within the budgets of rows
        and of reserved cache tokens (beams x (source + longest output))."""
        busy = self.engine.active_rows
        if self.policy != "continuous" and busy:
            return []  # request-level and no batching wait for the batch to drain
        if (
            busy
            and self.steps_since_join < self.join_interval
            and self.queued_sentences < JOIN_AT_ONCE
        ):
            return []  # let arrivals gather: one encoder pass and one merge for several
        budget = self.max_rows - busy
        tokens = self.max_tokens - self.engine.reserved_tokens
        limit = 1 if self.policy == "none" else len(self.waiting) + self.queued_sentences
        chosen: list[tuple[Job, int]] = []
        while self.waiting and len(chosen) < limit:
            job = self.waiting[0]
            cost = self.engine.tokens_for(job.sources[job.admitted], job.options)
            if (job.rows_per_sentence > budget or cost > tokens) and (chosen or busy):
                break  # keeps arrival order; an oversized sentence still runs alone
            self.waiting.popleft()
            chosen.append((job, job.admitted))
            job.admitted += 1
            budget -= job.rows_per_sentence
            tokens -= cost
            self.queued_sentences -= 1
            self.running[job.id] = job
            if job.admitted < len(job.sources):
                self.waiting.append(job)  # its next sentence waits its turn
        self.metrics.queue_depth.labels(self.name).set(self.queued_sentences)
        if chosen:
            self.steps_since_join = 0
        return chosen

    def _start(self, admitted: list[tuple[Job, int]]) -> None:
        by_options: dict[SearchOptions, list[tuple[Job, int]]] = {}
        for job, index in admitted:
            if job.started_at is None:
                job.started_at, job.state = self.clock(), JobState.RUNNING
            by_options.setdefault(job.options, []).append((job, index))
        for options, group in by_options.items():
            started = time.perf_counter()
            self.engine.add(
                [(job.id, i) for job, i in group], [job.sources[i] for job, i in group], options
            )
            self.metrics.encoder.labels(self.name).observe(time.perf_counter() - started)

    def _step(self) -> None:
        if not len(self.engine):
            return
        rows = self.engine.rows
        started = time.perf_counter()
        finished = self.engine.step()
        self.steps_since_join += 1
        self.metrics.decoder_step.labels(self.name).observe(time.perf_counter() - started)
        self.metrics.batch_rows.labels(self.name).observe(rows)
        self.metrics.active_rows.labels(self.name).set(self.engine.active_rows)
        for result in finished:
            job_id, index = result.seq_id
            job = self.running.get(job_id)
            if job is None or job.state in FINISHED:
                continue
            job.results[index] = result.hypotheses
            job.finished += 1
            best = result.hypotheses[0]
            reason = (
                "eos"
                if best.tokens and best.tokens[-1] == self.engine.config.eos_id
                else ("length")
            )
            self.metrics.sentences.labels(self.name, reason).inc()
            self.metrics.generated_tokens.labels(self.name).inc(len(best.tokens))
            if job.finished == len(job.sources):
                job.state = JobState.DONE
                with self.lock:
                    self.running.pop(job.id, None)
                self._resolve(job, job.results)

    def _fail_running(self, error: ServiceError) -> None:
        with self.lock:
            jobs = list(self.running.values())
            for job in jobs:
                job.state = JobState.FAILED
                self._resolve(job, error)
                self._forget(job)
        self.engine.reset()  # its state is suspect after a failure: start clean
        self.metrics.requests_rejected.labels(error.error_type).inc(len(jobs))

    def _resolve(self, job: Job, value: Any) -> None:
        """Answer ``job`` (on its event loop, at the end of this iteration: see ``_settle``)."""
        job.finished_at = self.clock()
        self.answers.append((job, value))

    def _settle(self) -> None:
        """Hand this iteration's answers to their event loops, one wake-up per loop: a wake-up
        per request costs a self-pipe write and a GIL hand-over each."""
        if not self.answers:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Job, Any]]] = {}
        for job, value in self.answers:
            by_loop.setdefault(job.loop, []).append((job, value))
        self.answers = []
        for loop, answers in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed event loop: nobody is waiting
                loop.call_soon_threadsafe(settle_all, answers)


def settle_all(answers: list[tuple[Job, Any]]) -> None:
    for job, value in answers:
        if job.future.done():
            continue
        if isinstance(value, BaseException):
            job.future.set_exception(value)
        else:
            job.future.set_result(value)
