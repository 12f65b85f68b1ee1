"""Clients share the server: a flooding client cannot take the batch, the queue or the light
client's turn, and a drain that runs out of time finishes whole requests, oldest first. The pure
core driven by the fake engine, in milliseconds; then the identity each request carries."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from pathlib import Path

import pytest

from contract.options import SearchOptions
from service.errors import QueueFull, ShuttingDown
from service.metrics import Metrics
from service.scheduling import batching
from service.scheduling.batching import BatchState, Job, JobState, Limits
from service.scheduling.scheduler import Scheduler
from service.settings import Settings
from service.usecase.translate import CLIENT, TranslateUseCase
from tests.service.conftest import running_server
from tests.service.test_batching import FakeEngine, queued

GREEDY = SearchOptions(beam_size=1)
BEAM8 = SearchOptions(beam_size=8)


def job(n: int, client: Hashable, options: SearchOptions = GREEDY) -> Job:
    return Job([[5, 6, 7]] * n, options, 1e9, None, None, client)  # type: ignore[arg-type]


class Batch:
    """The core's loop by hand: each step admits what may join, then every sentence that has
    run ``length`` steps finishes."""

    def __init__(self, state: BatchState, length: int, tick: float = 1.0) -> None:
        self.state, self.engine, self.length, self.tick = state, FakeEngine(), length, tick
        self.age: dict[Hashable, int] = {}  # steps each running sentence has taken
        self.answered: list[tuple[Job, object]] = []
        self.now = 0.0

    def step(self) -> list[tuple[Job, int]]:
        """One step; the sentences that joined at it."""
        self.now += self.tick
        self.answered += batching.sweep(self.state, self.now).answers
        plan = batching.admit(self.state, self.engine, self.now)
        self.answered += plan.outcome.answers
        for options, group in plan.by_options().items():
            ids = [(j.id, i) for j, i in group]
            self.engine.add(ids, [j.sources[i] for j, i in group], options)
            self.age.update(dict.fromkeys(ids, 0))
        batching.stepped(self.state)
        for seq_id in self.age:
            self.age[seq_id] += 1
        done = [
            s for s, age in self.age.items() if age >= self.length and s in self.engine.sequences
        ]
        out = batching.update(self.state, self.engine.finish(*done), self.now)
        self.answered += out.answers
        return plan.joins

    def rows_of(self, client: Hashable) -> int:
        return batching.rows_by_client(self.state).get(client, 0)


def test_a_light_client_joins_at_once_and_keeps_its_share_while_another_floods() -> None:
    """48 single-sentence requests of one client fill the batch; another client's sentence joins
    at the first step a row frees (before: after all 48, round robin over requests), and the
    flooder holds at most half the rows while it runs."""
    flood = [job(1, "flood") for _ in range(48)]
    batch = Batch(queued(Limits(max_rows=8), *flood), length=4)
    batch.step()
    assert batch.rows_of("flood") == 8  # alone, it may take the whole batch
    light = job(1, "light")
    batching.enqueue(batch.state, light, now=batch.now)
    waited = 0
    while (light.id, 0) not in [(j.id, i) for j, i in batch.step()]:
        waited += 1
        assert waited < 10, "the light client's sentence never joined"
    assert waited <= 3  # the steps until the first sentences finish
    assert batch.rows_of("flood") <= 4 and batch.rows_of("light") == 1
    while light.state is not JobState.DONE:
        batch.step()
        assert batch.rows_of("flood") <= 4
    assert sum(j.state is JobState.DONE for j in flood) < 48  # it did not wait for the flood


def test_client_rows_bound_a_flood_while_another_client_is_or_was_just_busy() -> None:
    """With ``client_rows`` (where a step's time grows with its rows), a flooding client holds
    at most that many rows while another client has work, and in the gaps between that
    client's requests too (RECENT_SECONDS); alone again for longer, it takes the whole batch."""
    flood = [job(1, "flood") for _ in range(400)]
    batch = Batch(queued(Limits(max_rows=64, client_rows=8), *flood), length=4, tick=0.01)
    batch.step()
    assert batch.rows_of("flood") == 64  # alone: the whole batch
    batching.enqueue(batch.state, job(1, "light"), now=batch.now)
    for _ in range(10):  # the flood's 64 rows finish and it is held to 8
        batch.step()
    assert batch.rows_of("flood") == 8 and batch.rows_of("light") == 0  # light answered
    batch.now += 0.5  # the light client answered, its next request not yet sent: still held
    batch.step()
    assert batch.rows_of("flood") <= 8
    batch.now += batching.RECENT_SECONDS  # quiet for longer: the flood has the batch again
    for _ in range(2):
        batch.step()
    assert batch.rows_of("flood") == 64


def test_without_client_rows_the_share_is_half_the_batch() -> None:
    """The default (no ``client_rows``): two busy clients get half of max_rows each."""
    batch = Batch(queued(Limits(max_rows=64), *[job(1, "flood") for _ in range(400)]), length=4)
    batching.enqueue(batch.state, job(400, "other"), now=batch.now)
    for _ in range(6):
        batch.step()
    assert batch.rows_of("flood") == 32 and batch.rows_of("other") == 32


def test_two_flooding_clients_get_equal_rows_whatever_their_beams() -> None:
    """Deficit round robin counts rows: a beam-8 client does not get eight times the batch of a
    greedy one (before: one sentence each in turn, 8 rows against 1)."""
    wide = [job(10, "wide", BEAM8) for _ in range(4)]
    narrow = [job(100, "narrow") for _ in range(4)]
    both = [j for pair in zip(wide, narrow, strict=True) for j in pair]
    batch = Batch(queued(Limits(max_rows=64), *both), length=6)
    for _ in range(20):
        batch.step()
        assert batch.rows_of("wide") <= 32 and batch.rows_of("narrow") <= 32
    assert batch.rows_of("wide") == 32 and batch.rows_of("narrow") == 32


def test_a_full_queue_makes_room_for_a_client_holding_less_of_it() -> None:
    """One client filled the queue; another's request takes the place of the flooder's newest
    unstarted one (answered 429), and the flooder itself still gets 429 (before: the light
    client got 429 for as long as the flood lasted)."""
    flood = [job(2, "flood") for _ in range(5)]
    state = queued(Limits(max_queue=10), *flood)
    light = job(1, "light")
    pushed = batching.enqueue(state, light, now=1.0)
    assert [(j, type(e)) for j, e in pushed] == [(flood[-1], QueueFull)]
    assert flood[-1].state is JobState.FAILED and pushed[0][1].headers == {"Retry-After": "1"}
    assert light in state.waiting and state.queued_sentences == 9
    assert state.queued_by == {"flood": 8, "light": 1}
    with pytest.raises(QueueFull, match="limit 10"):
        batching.enqueue(state, job(2, "flood"), now=2.0)
    # never so far that the flooder ends up holding less than the newcomer
    with pytest.raises(QueueFull):
        batching.enqueue(state, job(9, "other"), now=3.0)
    assert state.queued_by == {"flood": 8, "light": 1}


def test_a_client_alone_keeps_the_whole_batch_and_queue() -> None:
    """With one client (every loopback benchmark without keys) nothing changes: all rows, all
    of the queue, its requests in turn."""
    big, small = job(100, "one"), job(2, "one")
    batch = Batch(queued(Limits(max_rows=4, max_queue=102), big, small), length=3)
    joins = batch.step()
    assert [(j.id, i) for j, i in joins] == [(big.id, 0), (small.id, 0), (big.id, 1), (small.id, 1)]
    with pytest.raises(QueueFull):
        batching.enqueue(batch.state, job(5, "one"), now=2.0)  # 98 wait, 102 at most


def test_a_drain_that_runs_out_of_time_finishes_whole_requests_oldest_first() -> None:
    """12 requests of 48 sentences, interleaved when the drain begins, and time for about half
    of what is left: the oldest requests finish whole and the rest get 503 (before: every
    request had about half its sentences done, and all 12 got 503)."""
    jobs = [job(48, "one") for _ in range(12)]
    batch = Batch(queued(Limits(max_rows=16), *jobs), length=3)
    for _ in range(6):
        batch.step()
    assert all(0 < j.admitted < 48 for j in jobs)  # interleaved
    batching.drain(batch.state, at=batch.now + 50)
    late = job(1, "late")  # accepted before the signal, prepared after it: queued, the newest
    batching.enqueue(batch.state, late, now=batch.now)
    while batch.now <= batch.state.drain_at:  # type: ignore[operator]
        batch.step()
    done = [j.state is JobState.DONE for j in jobs]
    assert sum(done) >= 4, done
    assert done == sorted(done, reverse=True), done  # the oldest ones, in order
    refused = {j for j, e in batch.answered if isinstance(e, ShuttingDown)}
    assert refused == {j for j in [*jobs, late] if j.state is not JobState.DONE}
    with pytest.raises(ShuttingDown):  # past the drain's deadline no answer could come in time
        batching.enqueue(batch.state, job(1, "later"), now=batch.now)
    assert not batch.state.running and not batch.state.waiting and not batch.state.turns


# -- the shell and the use case ------------------------------------------------------------------


def test_a_pushed_out_request_is_answered_429_by_the_scheduler() -> None:
    scheduler = Scheduler("fake", FakeEngine(), Metrics(), max_queue=4)  # not started: all wait

    async def scenario() -> tuple[BaseException | None, Job]:
        loop = asyncio.get_running_loop()
        flood = [Job([[5]], GREEDY, 1e9, loop, loop.create_future(), "flood") for _ in range(4)]
        for one in flood:
            scheduler.submit(one)
        light = Job([[5]], GREEDY, 1e9, loop, loop.create_future(), "light")
        scheduler.submit(light)
        await asyncio.wait_for(asyncio.wait({flood[-1].future}), 5)
        return flood[-1].future.exception(), light

    error, light = asyncio.run(scenario())
    assert isinstance(error, QueueFull) and "held the most" in str(error)
    assert list(scheduler.state.waiting)[-1] is light and len(scheduler.state.waiting) == 4


def test_the_job_carries_the_client_of_its_request() -> None:
    scheduler = Scheduler("fake", FakeEngine(), Metrics())  # not started: the job stays queued
    use_case = TranslateUseCase(Settings(), None, Metrics(), lambda: False)  # type: ignore[arg-type]

    async def scenario() -> None:
        CLIENT.set("key:abc")
        never = asyncio.Event()
        task = asyncio.create_task(use_case.run_job(scheduler, [[5, 6]], GREEDY, never.wait))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    (queued_job,) = scheduler.state.waiting
    assert queued_job.client == "key:abc"


def test_each_key_is_its_own_client_and_without_keys_the_address(toy_repository: Path) -> None:
    seen: list[Hashable] = []

    def recording(server_app) -> None:
        for scheduler in server_app.state.repository.schedulers():
            submit = scheduler.submit
            scheduler.submit = lambda j, submit=submit: (seen.append(j.client), submit(j))[1]

    with running_server(toy_repository, api_keys=["k1", "k2"]) as server:
        recording(server.app)
        for n, key in enumerate(("k1", "k2", "k1")):
            assert server.translate(["red dog"]).status == 401
            reply = server.request(
                "POST",
                "/v1/translate",
                {"texts": [f"red dog {n}"], "source": "en", "target": "de"},
                headers={"x-api-key": key},
            )
            assert reply.status == 200, reply.body
    assert len(seen) == 3 and seen[0] == seen[2] != seen[1]
    assert all(str(c).startswith("key:") and "k1" not in str(c) for c in seen)
    with running_server(toy_repository) as server:
        recording(server.app)
        assert server.translate(["red dog runs"]).status == 200
    assert seen[-1] == "address:127.0.0.1"
