"""The serving benchmarks, run for a moment against real servers: every request answered, and
the reports say what was measured. (Speed itself is measured by the commands, not by tests.)"""

from __future__ import annotations

import random
from pathlib import Path

from bench.capacity import capacity, capacity_markdown
from bench.serve import (
    LONG_WORDS,
    SHORT_WORDS,
    compare_mixed,
    free_port,
    markdown,
    mixed,
    run_bench,
    start_server,
)
from tests.conftest import WORDS


def toy_sentences(n: int = 40) -> list[str]:
    """Short and long sentences in the toy model's vocabulary (within its 64 positions)."""
    rng = random.Random(0)
    lengths = [SHORT_WORDS - 4, LONG_WORDS]
    return [" ".join(rng.choices(WORDS, k=lengths[i % 2])) for i in range(n)]


def test_bench_serve_answers_every_request_under_every_policy(toy_repository: Path) -> None:
    sentences = toy_sentences()
    results = run_bench(
        toy_repository,
        sentences,
        clients=[4],
        seconds=1.5,
        threads=1,
        policies=["continuous", "request", "none"],
        log=lambda _: None,
    )
    mixed_results = compare_mixed(
        toy_repository, sentences, rate=20, seconds=1.0, rounds=2, threads=1, log=lambda _: None
    )
    assert [r.policy for r in results] == ["continuous", "request", "none"]
    for r in results:
        assert r.samples and len(r.ok) == len(r.samples), r.policy
        assert r.rows_per_step >= 1.0
    assert {r.policy: r.rows_per_step for r in results}["none"] == 1.0
    assert [(m.policy, m.round) for m in mixed_results] == [
        ("continuous", 0),
        ("request", 0),
        ("continuous", 1),
        ("request", 1),
    ]
    for m in mixed_results:
        assert all(s.ok for s in m.samples)
        assert {s.words >= LONG_WORDS for s in m.samples} == {True, False}  # both kinds sent
    table = markdown(results, {4: 100.0}, 1, 1, mixed_results)
    assert "| continuous | 4 |" in table and "Mixed load, open loop" in table
    assert "per round: " in table


def test_mixed_load_is_half_short_half_long() -> None:
    load = mixed(toy_sentences())
    words = [len(s.split()) for s in load]
    assert sum(w <= SHORT_WORDS for w in words) == sum(w >= LONG_WORDS for w in words) > 0


def test_capacity_search_doubles_then_bisects(toy_repository: Path) -> None:
    port = free_port()
    proc = start_server(toy_repository, "continuous", 1, port)
    try:
        # A bound no request can meet: the search stops at its first rate and reports 0.
        best, trials = capacity(port, toy_sentences(), bound=1e-6, seconds=1.0, refine=2,
                                start_rate=10, log=lambda _: None)  # fmt: skip
        assert best == 0.0 and [t.rate for t in trials] == [10, 5, 2.5]
        # A generous bound, met by every rate up to the cap.
        best, trials = capacity(port, toy_sentences(), bound=5.0, seconds=1.0, refine=2,
                                start_rate=10, max_rate=40, log=lambda _: None)  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(60)
    assert best == 40 and [t.rate for t in trials] == [10, 20, 40]
    assert all(t.failures == 0 and t.samples for t in trials)
    table = capacity_markdown(best, trials, 5.0, 0.97, "test machine", "toy model")
    assert f"**Result: {best:.1f} requests/s**" in table


def test_capacity_sends_the_key_a_server_with_keys_needs(toy_repository: Path) -> None:
    """``--key``: the quota overhead is measured with quotas on; without the key every request
    of the same trial is a 401, which the search counts as failures."""
    port = free_port()
    proc = start_server(toy_repository, "continuous", 1, port, {"TONGYEOK_API_KEYS": "bench-key"})
    try:
        one_trial = {"bound": 5.0, "seconds": 1.0, "refine": 0, "start_rate": 10, "max_rate": 10}
        _, keyed = capacity(port, toy_sentences(), **one_trial, key="bench-key", log=lambda _: None)
        _, keyless = capacity(port, toy_sentences(), **one_trial, log=lambda _: None)
    finally:
        proc.terminate()
        proc.wait(60)
    assert keyed[0].samples and keyed[0].failures == 0
    assert keyless[0].samples and {s.status for s in keyless[0].samples} == {401}
