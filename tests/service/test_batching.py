"""The scheduler's pure core driven by a fake engine and hand-made step outputs: fairness, budgets,
the join interval, deadlines, cancels and failures, in milliseconds, with no model and no ONNX
Runtime."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Hashable, Sequence

import pytest

from contract.options import Hypothesis, SearchOptions, SequenceResult
from service.errors import DeadlineExceeded, EngineFailure, InvalidRequest, QueueFull, ShuttingDown
from service.scheduling import batching
from service.scheduling.batching import BatchState, Job, JobState, Limits

GREEDY = SearchOptions(beam_size=1)


class FakeEngine:
    """The engine's bookkeeping without decoding: sequences join, hold ``beam`` rows each and
    reserve ``len(source) * 10`` tokens, until the test says they finished."""

    def __init__(self) -> None:
        self.sequences: dict[Hashable, tuple[int, int]] = {}  # id -> (rows, tokens)
        self.added: list[list[Hashable]] = []

    def add(
        self, seq_ids: Sequence[Hashable], sources: Sequence[Sequence[int]], options: SearchOptions
    ) -> None:
        self.join(seq_ids, self.encode(sources), options)

    def encode(self, sources: Sequence[Sequence[int]]) -> list[Sequence[int]]:
        return list(sources)

    def join(
        self, seq_ids: Sequence[Hashable], encoded: list[Sequence[int]], options: SearchOptions
    ) -> None:
        self.added.append(list(seq_ids))
        for seq_id, source in zip(seq_ids, encoded, strict=True):
            self.sequences[seq_id] = (options.beam_size, self.tokens_for(source, options))

    def step(self) -> list[SequenceResult]:
        """Every sentence finishes at its first step (the shell's tests need answers)."""
        return self.finish(*self.sequences)

    def cancel(self, seq_ids: Sequence[Hashable]) -> None:
        for seq_id in seq_ids:
            self.sequences.pop(seq_id, None)

    def reset(self) -> None:
        self.sequences.clear()

    def tokens_for(self, source: Sequence[int], options: SearchOptions) -> int:
        return options.beam_size * options.max_length(len(source) * 10, 1 << 20)

    @property
    def active_rows(self) -> int:
        return sum(rows for rows, _ in self.sequences.values())

    @property
    def reserved_tokens(self) -> int:
        return sum(tokens for _, tokens in self.sequences.values())

    @property
    def rows(self) -> int:
        return self.active_rows

    def __len__(self) -> int:
        return len(self.sequences)

    def finish(self, *seq_ids: Hashable) -> list[SequenceResult]:
        """Hand-made step output: these sequences ended with EOS."""
        self.cancel(seq_ids)
        return [SequenceResult(s, [Hypothesis([7, 2], -1.0, "eos")]) for s in seq_ids]


def job(n: int, deadline: float = 100.0, options: SearchOptions = GREEDY, length: int = 3) -> Job:
    return Job([[5] * length for _ in range(n)], options, deadline, None, None)  # type: ignore[arg-type]


def queued(limits: Limits, *jobs: Job) -> BatchState:
    state = BatchState(limits)
    for j in jobs:
        batching.enqueue(state, j, now=0.0)
    return state


def run_plan(state: BatchState, engine: FakeEngine, now: float = 1.0) -> batching.Plan:
    plan = batching.admit(state, engine, now)
    for options, group in plan.by_options().items():
        engine.add([(j.id, i) for j, i in group], [j.sources[i] for j, i in group], options)
    return plan


def test_the_core_imports_neither_onnxruntime_nor_the_engine() -> None:
    heavy = "{'onnxruntime', 'service.decoding.engine', 'numpy'}"
    code = f"import sys, service.scheduling.batching; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_round_robin_lets_a_small_request_through_a_huge_one() -> None:
    big, small = job(100), job(2)
    state, engine = queued(Limits(max_rows=4), big, small), FakeEngine()
    plan = run_plan(state, engine)
    # Alternating, one sentence each turn: the small request is wholly admitted in the first plan.
    assert [(j.id, i) for j, i in plan.joins] == [
        (big.id, 0),
        (small.id, 0),
        (big.id, 1),
        (small.id, 1),
    ]
    out = batching.update(state, engine.finish((small.id, 0), (small.id, 1)), now=2.0)
    assert [a[0] for a in out.answers] == [small] and small.state is JobState.DONE
    assert big.state is JobState.RUNNING and state.queued_sentences == 98


def test_the_row_budget_counts_beams() -> None:
    beam4 = SearchOptions(beam_size=4)
    state, engine = queued(Limits(max_rows=10), job(5, options=beam4)), FakeEngine()
    assert len(run_plan(state, engine).joins) == 2  # 2 x 4 rows; a third would need 12
    assert engine.active_rows == 8
    assert run_plan(state, engine, now=2.0).joins == []  # full: nothing joins until rows free


def test_an_oversized_sentence_still_runs_alone() -> None:
    state, engine = (
        queued(Limits(max_rows=2), job(1, options=SearchOptions(beam_size=4))),
        FakeEngine(),
    )
    assert len(run_plan(state, engine).joins) == 1


def test_the_token_budget_limits_what_runs_together() -> None:
    one = FakeEngine().tokens_for([5] * 3, GREEDY)
    state, engine = queued(Limits(max_tokens=2 * one), job(6)), FakeEngine()
    assert len(run_plan(state, engine).joins) == 2
    assert engine.reserved_tokens == 2 * one
    batching.update(state, engine.finish((state.running[min(state.running)].id, 0)), now=2.0)
    state.steps_since_join = 99  # past the join interval
    assert len(run_plan(state, engine, now=3.0).joins) == 1  # one freed, one joins


def test_the_join_interval_lets_arrivals_gather() -> None:
    state, engine = queued(Limits(join_interval=3), job(1)), FakeEngine()
    run_plan(state, engine)
    batching.enqueue(state, job(1), now=1.0)
    for _ in range(3):  # busy and fewer than JOIN_AT_ONCE waiting: wait for the interval
        assert run_plan(state, engine).joins == []
        batching.stepped(state)
    assert len(run_plan(state, engine).joins) == 1  # three steps later: they join


def test_many_waiting_join_at_once_whatever_the_interval() -> None:
    state, engine = queued(Limits(join_interval=100), job(1)), FakeEngine()
    run_plan(state, engine)
    batching.enqueue(state, job(batching.JOIN_AT_ONCE), now=1.0)
    assert len(run_plan(state, engine).joins) == batching.JOIN_AT_ONCE


@pytest.mark.parametrize("policy", ["request", "none"])
def test_non_continuous_policies_wait_for_the_batch_to_drain(policy: str) -> None:
    state, engine = queued(Limits(policy=policy), job(3)), FakeEngine()  # type: ignore[arg-type]
    assert len(run_plan(state, engine).joins) == (1 if policy == "none" else 3)
    batching.enqueue(state, job(1), now=1.0)
    state.steps_since_join = 99
    assert run_plan(state, engine).joins == []  # busy: nobody joins mid-flight


def test_deadlines_expire_with_504_and_leave_the_engine() -> None:
    late, fine = job(3, deadline=5.0), job(1, deadline=50.0)
    state, engine = queued(Limits(max_rows=1), late, fine), FakeEngine()
    run_plan(state, engine)  # late's first sentence runs
    out = batching.sweep(state, now=6.0)
    assert [(j, type(e)) for j, e in out.answers] == [(late, DeadlineExceeded)]
    assert out.cancel == [(late.id, 0)] and late.state is JobState.EXPIRED
    assert list(state.waiting) == [fine] and state.queued_sentences == 1
    assert batching.sweep(state, now=7.0).answers == []  # answered exactly once


def test_a_cancelled_request_leaves_queue_and_engine_unanswered() -> None:
    gone, other = job(4), job(1)
    state, engine = queued(Limits(), gone, other), FakeEngine()
    run_plan(state, engine)
    gone.state = JobState.CANCELLED
    out = batching.sweep(state, now=2.0)
    assert out.answers == [] and out.cancelled == 1
    assert sorted(out.cancel) == [(gone.id, i) for i in range(4)]
    assert list(state.running) == [other.id] and state.queued_sentences == 0


def test_a_request_both_running_and_waiting_is_cancelled_once() -> None:
    gone = job(3)
    state, engine = queued(Limits(max_rows=1), gone), FakeEngine()
    run_plan(state, engine)  # one sentence runs, two wait
    gone.state = JobState.CANCELLED
    out = batching.sweep(state, now=2.0)
    assert out.cancelled == 1 and out.cancel == [(gone.id, 0)]
    assert not state.waiting and not state.running and state.queued_sentences == 0


def test_a_failing_sentence_fails_only_its_request() -> None:
    a, b = job(2), job(1)
    state, engine = queued(Limits(), a, b), FakeEngine()
    run_plan(state, engine)
    finished = [SequenceResult((a.id, 0), [], error="OverflowError"), *engine.finish((b.id, 0))]
    out = batching.update(state, finished, now=2.0)
    assert [(j, type(v)) for j, v in out.answers] == [(a, EngineFailure), (b, list)]
    assert out.cancel == [(a.id, 0), (a.id, 1)]  # a's other sentence leaves the engine too
    assert not state.running and a.state is JobState.FAILED


def test_a_failing_step_fails_the_requests_in_the_batch_not_those_waiting() -> None:
    running, waiting = job(1), job(1)
    state, engine = queued(Limits(max_rows=1), running), FakeEngine()
    run_plan(state, engine)
    batching.enqueue(state, waiting, now=1.0)
    out = batching.fail_running(state, EngineFailure("boom"), now=2.0)
    assert [j for j, _ in out.answers] == [running]
    assert list(state.waiting) == [waiting] and waiting.state is JobState.QUEUED


def test_options_that_cannot_be_costed_fail_their_request_only() -> None:
    class Exploding(FakeEngine):
        def tokens_for(self, source: Sequence[int], options: SearchOptions) -> int:
            if options.nbest == 2:
                raise OverflowError("cannot convert float infinity to integer")
            return super().tokens_for(source, options)

    bad, good = job(2, options=SearchOptions(beam_size=2, nbest=2)), job(1)
    state, engine = queued(Limits(), bad, good), Exploding()
    plan = run_plan(state, engine)
    assert [j for j, _ in plan.joins] == [good]
    assert [(j, type(e)) for j, e in plan.outcome.answers] == [(bad, InvalidRequest)]
    assert state.queued_sentences == 0 and bad.id not in state.running


def test_the_queue_limit_and_the_drain() -> None:
    state = queued(Limits(max_queue=3), job(2))
    with pytest.raises(QueueFull):
        batching.enqueue(state, job(2), now=0.0)
    engine = FakeEngine()
    run_plan(state, engine)
    batching.drain(state, at=10.0)
    late = job(1)  # a request accepted before the signal, its preparation finished after it
    batching.enqueue(state, late, now=1.0)
    assert late in state.waiting
    assert batching.sweep(state, now=9.0).answers == []  # before the drain deadline: running on
    out = batching.sweep(state, now=10.0)
    assert {type(e) for _, e in out.answers} == {ShuttingDown} and len(out.answers) == 2
    assert not state.running and not state.waiting
    with pytest.raises(ShuttingDown):  # past the deadline nothing could answer it in time
        batching.enqueue(state, job(1), now=10.0)
