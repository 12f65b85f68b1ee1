"""The scheduler's decisions: fairness, policies, deadlines, and failures that stay contained."""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from pathlib import Path

import pytest

from contract.options import SearchOptions
from contract.package import load_package_config
from contract.tokenizer import Tokenizer
from service.decoding.engine import Engine
from service.errors import DeadlineExceeded, EngineFailure, InvalidRequest
from service.metrics import Metrics
from service.runtime.sessions import PackageRuntime
from service.scheduling import batching
from service.scheduling.faults import Faults, FaultyEngine
from service.scheduling.scheduler import Job, JobState, Scheduler
from service.settings import Settings
from service.usecase.translate import TranslateUseCase
from tests.conftest import copy_pairs
from tests.contract.test_options import unchecked
from tests.service.test_batching import FakeEngine


@pytest.fixture(scope="module")
def parts(toy_repository: Path):  # -> (runtime, tokenizer)
    config = load_package_config(toy_repository / "en-de")
    return PackageRuntime(config), Tokenizer.load(config.tokenizer_path)


def make_scheduler(parts, **kwargs) -> tuple[Scheduler, Engine, Metrics]:
    runtime, _ = parts
    engine, metrics = Engine(runtime), Metrics()
    scheduler = Scheduler("toy", engine, metrics, **kwargs)
    scheduler.start()
    return scheduler, engine, metrics


def sources(parts, n: int, seed: int) -> list[list[int]]:
    return parts[1].encode_batch([s for s, _ in copy_pairs(n, seed=seed)])


async def submit(scheduler: Scheduler, src, timeout: float = 30.0) -> Job:
    loop = asyncio.get_running_loop()
    job = Job(
        src, SearchOptions(beam_size=1), time.monotonic() + timeout, loop, loop.create_future()
    )
    scheduler.submit(job)
    return job


def test_a_small_request_is_not_starved_by_a_huge_one(parts) -> None:
    scheduler, _, _ = make_scheduler(parts, max_rows=8)

    async def scenario() -> tuple[float, float]:
        big = await submit(scheduler, sources(parts, 200, seed=1))
        small = await submit(scheduler, sources(parts, 2, seed=2))
        done = {}
        for name, job in (("big", big), ("small", small)):
            job.future.add_done_callback(lambda _, n=name: done.setdefault(n, time.monotonic()))
        await asyncio.gather(big.future, small.future)
        return done["small"], done["big"]

    small_done, big_done = asyncio.run(scenario())
    scheduler.stop(10)
    assert small_done < big_done  # round-robin admission let the small request through


@pytest.mark.parametrize("policy", ["none", "request", "continuous"])
def test_policies_decide_who_joins(parts, policy: str) -> None:
    scheduler, engine, _ = make_scheduler(parts, max_rows=16, policy=policy)
    steps: list[tuple[int, int]] = []  # active rows before and after each step
    original = engine.step

    def step():
        before = engine.active_rows
        result = original()
        steps.append((before, engine.active_rows))
        return result

    engine.step = step  # type: ignore[method-assign]

    async def scenario() -> None:
        jobs = [await submit(scheduler, sources(parts, 10, seed=s)) for s in range(3)]
        await asyncio.gather(*(j.future for j in jobs))

    asyncio.run(scenario())
    scheduler.stop(10)
    joined_mid_flight = any(
        b[0] > a[1] > 0 for a, b in itertools.pairwise(steps)
    )  # rows were added while others were still running
    assert max(before for before, _ in steps) <= (1 if policy == "none" else 16)
    assert joined_mid_flight is (policy == "continuous")


def test_the_token_budget_limits_what_runs_together(parts) -> None:
    src = sources(parts, 12, seed=8)
    probe = Engine(parts[0])
    one = max(probe.tokens_for(s, SearchOptions(beam_size=1)) for s in src)
    scheduler, engine, _ = make_scheduler(parts, max_tokens=2 * one)
    most = []
    original = engine.step

    def step():
        most.append(len(engine))
        return original()

    engine.step = step  # type: ignore[method-assign]

    async def scenario():
        job = await submit(scheduler, src)
        return await job.future

    results = asyncio.run(scenario())
    scheduler.stop(10)
    assert len(results) == 12
    assert max(most) <= 2  # never more sentences than the budget of two longest ones


def test_expired_requests_get_504_and_others_continue(parts) -> None:
    scheduler, _, _ = make_scheduler(parts)

    async def scenario():
        late = await submit(scheduler, sources(parts, 50, seed=3), timeout=0.0)
        fine = await submit(scheduler, sources(parts, 3, seed=4))
        results = await asyncio.gather(late.future, fine.future, return_exceptions=True)
        return late, results

    late, (late_result, fine_result) = asyncio.run(scenario())
    scheduler.stop(10)
    assert isinstance(late_result, DeadlineExceeded)
    assert late.state is JobState.EXPIRED
    assert len(fine_result) == 3
    assert scheduler.idle


def test_a_failing_step_fails_only_its_requests(parts) -> None:
    scheduler, engine, _ = make_scheduler(parts)
    original, calls = engine.step, []

    def flaky_step():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected failure")
        return original()

    engine.step = flaky_step  # type: ignore[method-assign]

    async def scenario():
        first = await submit(scheduler, sources(parts, 4, seed=5))
        failed = await asyncio.gather(first.future, return_exceptions=True)
        second = await submit(scheduler, sources(parts, 4, seed=6))
        return failed[0], await second.future

    failed, later = asyncio.run(scenario())
    scheduler.stop(10)
    assert isinstance(failed, EngineFailure)
    assert len(later) == 4 and all(h for h in later)  # the loop kept going
    assert len(engine) == 0


# -- one hostile request must never hurt anyone else (issue 11) ----------------------------------


def submit_with(scheduler: Scheduler, src, options: SearchOptions, loop) -> Job:
    job = Job(src, options, time.monotonic() + 30, loop, loop.create_future())
    scheduler.submit(job)
    return job


def answers(scheduler: Scheduler, requests: list[tuple[list[list[int]], SearchOptions]]) -> list:
    async def scenario() -> list:
        loop = asyncio.get_running_loop()
        jobs = [submit_with(scheduler, src, options, loop) for src, options in requests]
        return await asyncio.gather(*(j.future for j in jobs), return_exceptions=True)

    return asyncio.run(asyncio.wait_for(scenario(), 60))


def test_overflowing_options_fail_only_their_request_and_the_loop_lives(parts) -> None:
    """Today's main: OverflowError in admission, under the lock, killed the thread for good."""
    scheduler, _, _ = make_scheduler(parts)
    src = sources(parts, 2, seed=21)
    got = answers(
        scheduler,
        [
            (src, unchecked(max_length_b=10**400)),  # a * n + b cannot even be computed
            (src, unchecked(max_length_a=math.inf)),  # capped by the model: decodes fine
            (src, SearchOptions(beam_size=1)),
        ],
    )
    assert isinstance(got[0], InvalidRequest)
    assert len(got[1]) == 2 and len(got[2]) == 2
    assert scheduler.alive and answers(scheduler, [(src, SearchOptions(beam_size=1))])[0]
    scheduler.stop(10)


def test_a_huge_length_penalty_fails_nobody(parts) -> None:
    """Today's main: length ** 1000 overflowed at step 3 and failed every running request."""
    scheduler, _, _ = make_scheduler(parts)
    src = sources(parts, 3, seed=22)
    got = answers(
        scheduler,
        [(src, unchecked(length_penalty=1000.0, beam_size=2)), (src, SearchOptions(beam_size=2))],
    )
    scheduler.stop(10)
    assert [len(g) for g in got] == [3, 3]  # both answered, neither failed


def test_the_loop_survives_a_bug_in_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    scheduler = Scheduler("fake", FakeEngine(), Metrics())
    scheduler.start()
    real_admit, calls = batching.admit, []

    def buggy_admit(*args):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("a bug")
        return real_admit(*args)

    monkeypatch.setattr(batching, "admit", buggy_admit)
    (first,) = answers(scheduler, [([[5, 6]], SearchOptions(beam_size=1))])
    (second,) = answers(scheduler, [([[5, 6]], SearchOptions(beam_size=1))])
    scheduler.stop(10)
    assert isinstance(first, EngineFailure)  # the request in hand failed, with a 500
    assert len(second) == 1 and scheduler.idle  # and the loop went on


# The thread is killed on purpose: its traceback is what the test provokes, not a failure.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_liveness_sees_a_dead_thread() -> None:
    scheduler = Scheduler(
        "fake", FaultyEngine(FakeEngine(), Faults(thread_dies_at_step=1)), Metrics()
    )
    scheduler.start()
    assert scheduler.alive
    loop = asyncio.new_event_loop()
    try:
        submit_with(scheduler, [[5, 6]], SearchOptions(beam_size=1), loop)
        scheduler.thread.join(10)
    finally:
        loop.close()
    assert not scheduler.alive


def test_a_cancelled_handler_cancels_its_job() -> None:
    """A handler cancelled while it waits (uvicorn's shutdown, a client gone) used to leave its
    job running for nobody."""
    scheduler = Scheduler("fake", FakeEngine(), Metrics())  # not started: the job stays queued
    use_case = TranslateUseCase(Settings(), None, Metrics(), lambda: False)  # type: ignore[arg-type]

    async def scenario() -> None:
        never = asyncio.Event()
        task = asyncio.create_task(
            use_case.run_job(scheduler, [[5, 6]], SearchOptions(beam_size=1), never.wait)
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    (job,) = scheduler.state.waiting
    assert job.state is JobState.CANCELLED


# -- the encoder pass runs beside the decoder steps ---------------------------------------------


def test_the_batch_keeps_stepping_while_newcomers_are_encoded(parts) -> None:
    """A joining request's encoder pass runs in the encoder thread: the running batch takes
    decoder steps meanwhile (before, every step waited for every encoder pass)."""
    scheduler, engine, _ = make_scheduler(parts)
    encoding = threading.Event()
    steps_while_encoding: list[int] = []
    real_encode, real_step = engine.encode, engine.step

    def slow_encode(srcs):
        if len(srcs) == 1:  # the newcomer's pass (the first request's has 4 sentences)
            encoding.set()
            time.sleep(0.3)
            encoding.clear()
        return real_encode(srcs)

    def counting_step():
        if encoding.is_set():
            steps_while_encoding.append(threading.get_ident())
        return real_step()

    engine.encode = slow_encode  # type: ignore[method-assign]
    engine.step = counting_step  # type: ignore[method-assign]
    long = [s * 4 for s in sources(parts, 4, seed=31)]  # long sentences: many steps

    async def scenario():
        loop = asyncio.get_running_loop()
        first = submit_with(scheduler, long, SearchOptions(beam_size=1, min_length=60), loop)
        while not len(engine):
            await asyncio.sleep(0.001)
        second = submit_with(scheduler, sources(parts, 1, seed=32), SearchOptions(), loop)
        return await asyncio.gather(first.future, second.future)

    first, second = asyncio.run(asyncio.wait_for(scenario(), 60))
    scheduler.stop(10)
    assert len(first) == 4 and len(second) == 1
    assert len(steps_while_encoding) >= 3  # the batch stepped during the 0.3 s pass
    assert set(steps_while_encoding) == {scheduler.thread.ident}  # in the decoding thread


def test_a_request_cancelled_while_encoded_never_decodes(parts) -> None:
    scheduler, engine, _ = make_scheduler(parts)
    started, release = threading.Event(), threading.Event()
    real_encode, joined = engine.encode, []
    real_join = engine.join

    def held_encode(srcs):
        started.set()
        release.wait(10)
        return real_encode(srcs)

    def recording_join(ids, encoded, options):
        joined.append(list(ids))
        return real_join(ids, encoded, options)

    engine.encode = held_encode  # type: ignore[method-assign]
    engine.join = recording_join  # type: ignore[method-assign]

    async def scenario():
        loop = asyncio.get_running_loop()
        job = submit_with(scheduler, sources(parts, 2, seed=33), SearchOptions(), loop)
        while not started.is_set():
            await asyncio.sleep(0.001)
        scheduler.cancel(job)
        release.set()
        while not joined:
            await asyncio.sleep(0.001)
        engine.encode = real_encode  # type: ignore[method-assign]
        later = submit_with(scheduler, sources(parts, 2, seed=34), SearchOptions(), loop)
        return job, await later.future

    job, later = asyncio.run(asyncio.wait_for(scenario(), 60))
    scheduler.stop(10)
    assert job.state is JobState.CANCELLED and not job.future.done()  # nobody is answered
    assert joined[0] == [(job.id, 0), (job.id, 1)] and len(later) == 2
    assert len(engine) == 0 and engine.active_rows == 0  # its rows died at once


def test_a_failing_encoder_pass_fails_only_its_request(parts) -> None:
    scheduler, engine, _ = make_scheduler(parts, join_interval=1)
    real_encode = engine.encode
    poisoned = sources(parts, 1, seed=35)[0]

    def encode(srcs):
        if poisoned in srcs:
            raise RuntimeError("injected encoder failure")
        return real_encode(srcs)

    engine.encode = encode  # type: ignore[method-assign]
    long = [s * 4 for s in sources(parts, 3, seed=36)]

    async def scenario():
        loop = asyncio.get_running_loop()
        running = submit_with(scheduler, long, SearchOptions(beam_size=2, min_length=40), loop)
        while not len(engine):
            await asyncio.sleep(0.001)
        bad = submit_with(scheduler, [poisoned], SearchOptions(beam_size=2), loop)
        return await asyncio.gather(running.future, bad.future, return_exceptions=True)

    running, bad = asyncio.run(asyncio.wait_for(scenario(), 60))
    alive = scheduler.alive
    scheduler.stop(10)
    assert isinstance(bad, EngineFailure) and "RuntimeError" in str(bad)
    assert len(running) == 3 and all(running)  # the batch it would have joined went on
    assert alive and len(engine) == 0
