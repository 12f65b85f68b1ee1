"""Continuous (iteration-level) batching: the thread that runs one model's engine.

Each iteration: drop what was cancelled or ran past its deadline, admit waiting sentences while
the row budget allows (round-robin over clients and over each client's requests, so neither a
flooding client nor one huge request can starve the others),
run ONE decoder step over every active sentence, and answer every request whose sentences are all
done. A new sentence joins at the next step after its encoder pass; a finished one leaves at once.

The decisions are the pure core's (``batching.py`` beside it); this shell owns the thread, the
lock, the futures and the metrics. The loop runs in its own thread (ONNX Runtime releases the
GIL while it computes, so the event loop keeps serving HTTP); handlers talk to it only through
``submit`` and ``cancel``. It never imports onnxruntime: the engine is given to it.

``policy`` exists for benchmarks: "continuous" (the above), "request" (request-level batching: a
batch runs to completion before new sentences join), "none" (one sentence at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from contract.options import SearchOptions
from service.errors import EngineFailure, Retired, ShuttingDown
from service.metrics import Metrics
from service.scheduling import batching
from service.scheduling.batching import (
    FINISHED,
    JOIN_AT_ONCE,
    POLICIES,
    Answer,
    BatchState,
    EngineLike,
    Job,
    JobState,
    Limits,
    Outcome,
    Plan,
    Policy,
)

__all__ = ["JOIN_AT_ONCE", "POLICIES", "Job", "JobQueue", "JobState", "Scheduler"]

log = logging.getLogger("tongyeok.scheduler")

# An encoder pass's result for one options group: its sentences, and what the engine's
# ``encode`` returned for them, or the exception it raised.
Encoding = tuple[SearchOptions, list[tuple[Job, int]], Any]


class JobQueue(Protocol):
    """What the use case and the repository ask of a model's queue: a ``Scheduler`` in this
    process, or, in an HTTP worker, the handle on the engine process's (``remote.py``)."""

    def submit(self, job: Job) -> None: ...

    def cancel(self, job: Job) -> None: ...

    def drain(self, deadline: float) -> None: ...

    def stop(self, timeout: float | None = None) -> None: ...

    def retire(self, timeout: float) -> None: ...

    @property
    def idle(self) -> bool: ...

    @property
    def alive(self) -> bool: ...


class Scheduler:
    def __init__(
        self,
        name: str,
        engine: EngineLike,
        metrics: Metrics,
        max_rows: int = 256,
        max_queue: int = 4096,
        max_tokens: int = 1 << 30,
        policy: Policy = "continuous",
        join_interval: int = 1,
        overlap_encoder: bool = True,
        client_rows: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.engine, self.metrics, self.clock = name, engine, metrics, clock
        # The encoder pass of joining sentences runs in a thread of its own while the batch
        # keeps stepping (their join waits for it): on a small CPU the decoder thread is the
        # bottleneck, and the encoder is a quarter of its work under load.
        self.encoder = (
            ThreadPoolExecutor(1, thread_name_prefix=f"encoder-{name}") if overlap_encoder else None
        )
        self.encoding: Future[list[Encoding]] | None = None  # at most one pass in flight
        self.state = BatchState(
            Limits(max_rows, max_queue, max_tokens, policy, join_interval, client_rows)
        )
        self.answers: list[Answer] = []  # resolved this iteration, not yet handed over
        self.lock = threading.Condition()
        self.stopping = False
        self.retired = False  # stopped because a reload replaced or removed the model
        self.thread = threading.Thread(target=self._run, name=f"scheduler-{name}", daemon=True)

    # -- called from the event loop ----------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def submit(self, job: Job) -> None:
        """Queue ``job``; raises QueueFull (429) when the queue cannot take all its sentences,
        ShuttingDown (503) past the drain's answer deadline. Requests of another client pushed
        out to make room for it are answered QueueFull here."""
        with self.lock:
            if self.retired:
                raise Retired(f"model {self.name} was unloaded by a reload")
            if self.stopping:
                raise ShuttingDown("the server is shutting down")
            pushed = batching.enqueue(self.state, job, self.clock())
            self._gauge_queue()
            self.lock.notify()
        hand_over(pushed)

    def cancel(self, job: Job) -> None:
        """The client went away: forget its sentences (those running leave at the next step)."""
        with self.lock:
            if job.state not in FINISHED:
                job.state = JobState.CANCELLED
                self.lock.notify()

    def drain(self, deadline: float) -> None:
        """Answer what is unfinished at ``deadline`` (clock time) with 503; jobs submitted before
        it still come in (they belong to requests the server accepted before the signal)."""
        with self.lock:
            batching.drain(self.state, deadline)
            self.lock.notify()

    def stop(self, timeout: float | None = None) -> None:
        """Finish what was admitted or queued within ``timeout`` (answering the rest with 503),
        then end the loop and join its thread."""
        with self.lock:
            if timeout is not None:
                batching.drain(self.state, self.clock() + timeout)
            self.stopping = True
            self.lock.notify()
        if self.thread.is_alive():
            self.thread.join(None if timeout is None else timeout + 5.0)

    def retire(self, timeout: float) -> None:
        """As ``stop``, for a model a reload replaced or removed: new jobs get ``Retired`` (the
        caller routes them again), admitted ones finish within ``timeout``."""
        with self.lock:
            self.retired = True
        self.stop(timeout)

    @property
    def idle(self) -> bool:
        with self.lock:
            return not self.state.waiting and not self.state.running

    @property
    def alive(self) -> bool:
        """Whether the loop thread runs (liveness: a dead loop answers nobody)."""
        return self.thread.is_alive()

    # -- the loop (its own thread) -----------------------------------------------------------------

    def _run(self) -> None:
        """The loop: it survives any exception (a bug fails the requests in hand, never the
        thread); only ``stop`` ends it."""
        while True:
            try:
                if not self._iterate():
                    return
            except Exception:
                log.exception("scheduler iteration failed on model %s", self.name)
                self._fail_all(EngineFailure("translation failed: internal scheduler error"))
            self._settle()

    def _iterate(self) -> bool:
        """One iteration: sweep, admit, join, step; False once stopped and empty."""
        state = self.state
        with self.lock:
            while not state.waiting and not state.running and not self.stopping:
                self.lock.wait()
            if self.stopping and not state.waiting and not state.running:
                if self.encoder is not None:
                    self.encoder.shutdown(wait=False)
                return False
            now = self.clock()
            swept = batching.sweep(state, now)
            # While a pass is in flight its sentences are in neither the engine nor the queue:
            # the budgets would count them as free, so nothing more is admitted until they join.
            plan = batching.admit(state, self.engine, now) if self.encoding is None else None
            self._gauge_queue()
        self._apply(swept)
        if plan is not None:
            self._apply(plan.outcome)
        try:
            if plan is not None and plan.joins:
                self._encode(plan)
            self._join(wait=not len(self.engine))
            self._step()
        except Exception as exc:  # a failing step fails only the requests in it
            log.exception("engine step failed on model %s", self.name)
            error = EngineFailure(f"translation failed: {type(exc).__name__}")
            with self.lock:
                failed = batching.fail_running(state, error, self.clock())
            self.engine.reset()  # its state is suspect after a failure: start clean
            self.answers += failed.answers
        return True

    def _fail_all(self, error: EngineFailure) -> None:
        """Last resort after a bug outside the engine: answer every request in hand, start clean
        (a request that keeps raising would otherwise spin the loop)."""
        with self.lock:
            state = self.state
            failed = batching.fail(state, [*state.waiting, *state.running.values()], error, 0.0)
            self._gauge_queue()
        self.answers += failed.answers
        self.engine.reset()

    def _apply(self, outcome: Outcome) -> None:
        """Carry out a core decision: drop sequences, count events, queue answers."""
        if outcome.cancel:
            self.engine.cancel(outcome.cancel)
        if outcome.cancelled:  # the API answers nobody for these, so it counts nothing
            self.metrics.requests_rejected.labels("cancelled").inc(outcome.cancelled)
        for best in outcome.sentences:
            self.metrics.sentences.labels(self.name, best.finish_reason).inc()
            self.metrics.generated_tokens.labels(self.name).inc(len(best.tokens))
        self.answers += outcome.answers

    def _encode(self, plan: Plan) -> None:
        """Start the encoder pass of ``plan`` (in the encoder thread, or here without one)."""
        groups = list(plan.by_options().items())
        if self.encoder is None:
            self.encoding = Future()
            self.encoding.set_result(self._encoded(groups))
        else:
            self.encoding = self.encoder.submit(self._encoded, groups)

    def _encoded(self, groups: list[tuple[SearchOptions, list[tuple[Job, int]]]]) -> list[Encoding]:
        """One encoder pass per options group; a group whose pass fails carries its error
        (only its requests fail)."""
        out: list[Encoding] = []
        for options, group in groups:
            started = time.perf_counter()
            try:
                encoded = self.engine.encode([job.sources[i] for job, i in group])
            except Exception as exc:
                log.exception("encoder pass failed on model %s", self.name)
                out.append((options, group, exc))
                continue
            self.metrics.encoder.labels(self.name).observe(time.perf_counter() - started)
            out.append((options, group, encoded))
        return out

    def _join(self, wait: bool) -> None:
        """Let the sentences of a finished encoder pass into the batch (``wait``: block until it
        finishes: the engine has nothing else to do). Sentences whose request ended meanwhile
        (cancelled, expired, failed) stay out."""
        if self.encoding is None:
            return
        future = self.encoding
        if not (wait or future.done()):
            return
        self.encoding = None
        for options, group, encoded in future.result():
            if isinstance(encoded, Exception):
                error = EngineFailure(f"translation failed: {type(encoded).__name__}")
                with self.lock:
                    self._apply(
                        batching.fail(self.state, [j for j, _ in group], error, self.clock())
                    )
                continue
            self.engine.join([(job.id, i) for job, i in group], encoded, options)
            with self.lock:  # ended while encoding: its sentences leave as they came in
                ended = [(job.id, i) for job, i in group if job.state in FINISHED]
            if ended:
                self.engine.cancel(ended)

    def _step(self) -> None:
        if not len(self.engine):  # the last sentences left (finished or cancelled): say so
            self.metrics.active_rows.labels(self.name).set(self.engine.active_rows)
            return
        rows = self.engine.rows
        started = time.perf_counter()
        finished = self.engine.step()
        self.metrics.decoder_step.labels(self.name).observe(time.perf_counter() - started)
        self.metrics.batch_rows.labels(self.name).observe(rows)
        self.metrics.active_rows.labels(self.name).set(self.engine.active_rows)
        with self.lock:
            batching.stepped(self.state)
            outcome = batching.update(self.state, finished, self.clock())
        self._apply(outcome)

    def _gauge_queue(self) -> None:
        self.metrics.queue_depth.labels(self.name).set(self.state.queued_sentences)

    def _settle(self) -> None:
        """Hand this iteration's answers to their event loops, one wake-up per loop: a wake-up
        per request costs a self-pipe write and a GIL hand-over each."""
        answers, self.answers = self.answers, []
        hand_over(answers)


def hand_over(answers: list[Answer]) -> None:
    """Answers to their event loops, one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Answer]] = {}
    for job, value in answers:
        by_loop.setdefault(job.loop, []).append((job, value))
    for loop, some in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed event loop: nobody is waiting
            loop.call_soon_threadsafe(settle_all, some)


def settle_all(answers: list[Answer]) -> None:
    for job, value in answers:
        if job.future.done():
            continue
        if isinstance(value, BaseException):
            job.future.set_exception(value)
        else:
            job.future.set_result(value)
