"""One search step for a cohort of sequences, on hand-made decoder outputs: what finishes, what
goes on and from which row; the greedy shortcut decides exactly what the sorting search does."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from contract.options import SearchOptions
from service.decoding.rows import Rows
from service.decoding.search import Choice, Cohort, Scored, beams, choose, greedy, step_cohorts

EOS, PAD, VOCAB = 2, 1, 12
INF = np.float32(np.inf)


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_a_beam_step_finishes_eos_among_the_best_k_and_continues_the_best_k_others() -> None:
    # Sentence 0: rows 5 and 6, two beams. Sentence 1: rows 2 and 3, the second still unborn.
    scores = np.full(8, -INF)
    scores[[5, 6, 2]] = f32(-1.0, -2.0, 0.0)
    logprobs = np.full((8, 4), -9.0, dtype=np.float32)
    ids = np.tile(np.arange(4, 8), (8, 1))
    logprobs[5], ids[5] = f32(-0.1, -0.5, -3.0, -4.0), [EOS, 7, 8, 9]
    logprobs[6], ids[6] = f32(-0.2, -0.3, -5.0, -6.0), [10, EOS, 8, 9]
    logprobs[2], ids[2] = f32(-0.1, -0.7, -0.9, -1.0), [EOS, 4, 5, 6]
    cohort = Cohort(
        slots=np.array([[5, 6], [2, 3]]),
        width=4,
        min_length=np.array([0, 3]),  # sentence 1 may not end yet: its best (EOS) is refused
        max_length=np.array([10, 1]),  # ... and this is its last step
    )
    length = np.zeros(8, dtype=np.int64)
    length[[5, 6]] = 3
    choice = choose(cohort, Scored(scores, length, logprobs, ids, EOS, PAD, VOCAB))
    # Sentence 0: candidates -1.1 EOS (row 5), -1.5 "7" (row 5), -2.2 "10" (row 6), -2.3 EOS
    # (row 6, fourth: outside the best two, so it finishes nothing).
    assert choice.eos_sentence.tolist() == [0]
    assert choice.eos_row.tolist() == [5]
    assert choice.eos_score.tolist() == [f32(-1.0)[0] + f32(-0.1)[0]]
    # Both beams of sentence 1 continue row 2 (a reorder), with its best two that are not EOS.
    assert choice.parent.tolist() == [[5, 6], [2, 2]]
    assert choice.tokens.tolist() == [[7, 10], [4, 5]]
    np.testing.assert_allclose(choice.scores, [[-1.5, -2.2], [-0.7, -0.9]], rtol=1e-6)
    assert choice.length.tolist() == [4, 1]
    assert choice.out_of_budget.tolist() == [False, True]
    assert choice.touched.tolist() == [0, 1]


def test_beams_that_cannot_go_on_are_marked_dead() -> None:
    """Fewer than K candidates that are not EOS (here: a one-token vocabulary): the beams left
    over score -inf, keep their own row and take the pad token; a dead beam's EOS ends nothing."""
    scores = f32(0.0, -INF)
    cohort = Cohort(np.array([[0, 1]]), 1, np.array([0]), np.array([10]))
    logprobs, ids = f32(-0.5, -0.5)[:, None], np.array([[EOS], [EOS]])
    choice = beams(
        cohort, Scored(scores, np.zeros(2, dtype=np.int64), logprobs, ids, EOS, PAD, vocab_size=1)
    )
    assert choice.eos_row.tolist() == [0] and choice.eos_score.tolist() == [-0.5]
    assert choice.parent.tolist() == [[0, 1]] and choice.tokens.tolist() == [[PAD, PAD]]
    assert choice.scores.tolist() == [[-np.inf, -np.inf]]
    assert choice.touched.tolist() == [0]


def random_outputs(rng: np.random.Generator, rows: int, width: int):
    """Top-k-like outputs: distinct ids per row (EOS often first or second), log-probs best first
    with ties and -inf among them; some rows score -inf."""
    ids = np.stack([rng.permutation(np.arange(3, 9))[:width] for _ in range(rows)])
    ids[rng.random(rows) < 0.4, 0] = EOS
    if width > 1:
        second = (rng.random(rows) < 0.3) & (ids[:, 0] != EOS)
        ids[second, 1] = EOS
    logprobs = -np.round(rng.exponential(1.0, (rows, width)) * 2) / 2
    logprobs[rng.random((rows, width)) < 0.05] = -np.inf
    logprobs = -np.sort(-logprobs, axis=1)
    scores = -np.round(rng.exponential(3.0, rows) * 2) / 2
    scores[rng.random(rows) < 0.1] = -np.inf
    return scores.astype(np.float32), logprobs.astype(np.float32), ids


@pytest.mark.parametrize("width", [1, 2])
def test_greedy_decides_what_the_sorting_search_decides(width: int) -> None:
    rng = np.random.default_rng(width)
    for _ in range(200):
        n, rows = int(rng.integers(1, 9)), 12
        scores, logprobs, ids = random_outputs(rng, rows, width)
        slots = rng.permutation(rows)[:n].reshape(n, 1)
        min_length = rng.integers(0, 5, n) if width == 2 else np.zeros(n, dtype=np.int64)
        cohort = Cohort(slots, width, min_length, rng.integers(1, 6, n))
        step = Scored(scores, rng.integers(0, 5, rows), logprobs, ids, EOS, PAD, VOCAB)
        want, got = beams(cohort, step), greedy(cohort, step)
        for f in fields(Choice):
            np.testing.assert_array_equal(getattr(got, f.name), getattr(want, f.name), f.name)


def joining(owners: list[int], options: SearchOptions, budget: int = 10) -> Rows:
    n = len(owners)
    cross = [np.zeros((n, 1, 3, 1), dtype=np.float32)] * 2
    return Rows.joining(
        cross,
        np.ones((n, 3), dtype=bool),
        0,
        [np.zeros((1, 1, 0, 1), dtype=np.float32)] * 2,
        np.array(owners),
        options,
        np.full(n, budget),
    )


def test_plan_groups_live_rows_by_beam_size_and_candidates() -> None:
    empty = Rows.empty(
        [np.zeros((0, 1, 0, 1), dtype=np.float32)] * 2,
        [np.zeros((0, 1, 0, 1), dtype=np.float32)] * 2,
    )
    rows = (
        empty.concat(joining([0, 1], SearchOptions(beam_size=2)))
        .concat(joining([2], SearchOptions(beam_size=1)))
        .concat(joining([3], SearchOptions(beam_size=1, min_length=4)))
        .concat(joining([4], SearchOptions(beam_size=2, min_length=4)))
        .concat(joining([5], SearchOptions(beam_size=1)))
    )
    rows.kill(np.array([2, 3]), PAD)  # sentence 1 left: its rows are no cohort's
    k, cohorts = step_cohorts(rows, VOCAB)
    assert k == 4
    got = {(g.slots.shape[1], g.width): (g.slots.tolist(), g.min_length.tolist()) for g in cohorts}
    assert got == {
        (1, 1): ([[4], [8]], [0, 0]),
        (1, 2): ([[5]], [4]),
        (2, 4): ([[0, 1], [6, 7]], [0, 4]),
    }
