"""One search step for many sentences of one beam size at once, as array operations.

The same rule as the PyTorch reference (``model/search.py``), applied to ``n`` sentences of ``K``
beams in one go instead of sentence by sentence: of a sentence's K x width candidates (each row's
best ``width`` continuations, added to the row's score), the best 2K in order; EOS among the best
K finishes a hypothesis, the best K that are not EOS go on; EOS is refused before ``min_length``
tokens; at the length budget the sentence ends. Greedy search is the case K = 1.

The decision is plain data (``Choice``): the engine applies it to its rows and turns the few
finished hypotheses into Python objects, so that nothing per row or per sentence runs in Python
at a step where no sentence finishes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.decoding.rows import NEG_INF, Rows


@dataclass(frozen=True)
class Cohort:
    """Live sequences of one beam size K that need the same candidates per row: their rows,
    one sequence per line in beam order, and their length bounds."""

    slots: np.ndarray  # (n, K) int64
    width: int  # candidates per row: each row's best ``width`` continuations
    min_length: np.ndarray  # (n,) int64
    max_length: np.ndarray  # (n,) int64

    def split(self) -> list[Cohort]:
        """One cohort per sequence (to find which one a failing decision is about)."""
        return [
            Cohort(
                self.slots[i : i + 1],
                self.width,
                self.min_length[i : i + 1],
                self.max_length[i : i + 1],
            )
            for i in range(len(self.slots))
        ]


def step_cohorts(rows: Rows, vocab_size: int) -> tuple[int, list[Cohort]]:
    """The top-k the decoder must return for ``rows``, and their live rows by cohort. Greedy
    needs a row's best continuation, plus one to step over EOS while ``min_length`` forbids it;
    K beams need each row's best 2K (the sentence's best 2K are always among them)."""
    need = np.where(rows.beam == 1, 1 + (rows.min_length > 0), 2 * rows.beam)
    live = np.flatnonzero(rows.alive)
    k = min(int(need[live].max()), vocab_size)
    width = np.minimum(need[live], k)
    kind = rows.beam[live] * (k + 1) + width
    cohorts = []
    for key in np.unique(kind):  # a sequence's rows are contiguous and in beam order
        mine = live[kind == key]
        slots = mine.reshape(-1, int(rows.beam[mine[0]]))
        first = slots[:, 0]
        cohorts.append(
            Cohort(slots, int(key % (k + 1)), rows.min_length[first], rows.max_length[first])
        )
    return k, cohorts


@dataclass(frozen=True)
class Choice:
    """What one step decided for ``n`` sentences of ``K`` beams each."""

    parent: np.ndarray  # (n, K) int64: row each beam continues next step
    tokens: np.ndarray  # (n, K) int64: its next token (pad where no beam goes on)
    scores: np.ndarray  # (n, K) float32: its cumulative log-prob (-inf where no beam goes on)
    length: np.ndarray  # (n,) int64: tokens every hypothesis has after this step
    out_of_budget: np.ndarray  # (n,) bool: the sentence reached its length budget
    touched: np.ndarray  # sentences whose hypotheses changed (the only ones Python visits)
    # Hypotheses ended by EOS, in the order found (best first per sentence): the sentence
    # (index into n), the row whose output they extend with EOS, and their summed log-prob.
    eos_sentence: np.ndarray  # (m,) int64
    eos_row: np.ndarray  # (m,) int64
    eos_score: np.ndarray  # (m,) float32


@dataclass(frozen=True)
class Scored:
    """What a search step reads: every row's score and output length, the decoder's best
    continuations of every row (best first, as TopK returns them), and the special ids."""

    scores: np.ndarray  # (R,) float32
    length: np.ndarray  # (R,) int64: tokens a live row generated so far
    logprobs: np.ndarray  # (R, k) float32
    ids: np.ndarray  # (R, k) int64
    eos_id: int
    pad_id: int
    vocab_size: int


def choose(cohort: Cohort, step: Scored) -> Choice:
    """Next beams of ``cohort``'s sequences."""
    return greedy(cohort, step) if cohort.slots.shape[1] == 1 else beams(cohort, step)


def beams(cohort: Cohort, step: Scored) -> Choice:
    """``choose`` for any K, as the reference does it: sort the candidates."""
    slots, width, eos_id = cohort.slots, cohort.width, step.eos_id
    n, beam = slots.shape
    length = step.length[slots[:, 0]]
    at = np.arange(n)[:, None]  # with an (n, m) index: line i of each (n, ...) array
    # Candidates in the reference's order: beam-major, then each beam's continuations; the
    # candidate c of a sentence extends its row slots[c // width].
    logprobs = step.logprobs[slots, :width]  # (n, K, width)
    cand = (step.scores[slots][:, :, None] + logprobs).reshape(n, beam * width)
    tok = step.ids[slots, :width].reshape(n, beam * width)
    refused = (length + 1 < cohort.min_length)[:, None] & (tok == eos_id)  # no EOS yet
    cand = np.where(refused, NEG_INF, cand)
    n_top = min(2 * beam, beam * step.vocab_size, beam * width)
    order = np.argsort(-cand, axis=1, kind="stable")[:, :n_top]  # the best, best first
    is_eos = tok[at, order] == eos_id
    # EOS among the best K candidates finishes a hypothesis.
    ends = is_eos[:, :beam] & (cand[at, order[:, :beam]] > NEG_INF)
    eos_sentence, eos_at = np.nonzero(ends)
    eos_cand = order[eos_sentence, eos_at]
    # The best K others go on (a stable sort puts them first, in order); -inf where fewer.
    pick = order[at, np.argsort(is_eos, axis=1, kind="stable")[:, :beam]]
    goes_on = tok[at, pick] != eos_id
    return decided(
        cohort,
        length,
        parent=np.where(goes_on, slots[at, pick // width], slots),
        tokens=np.where(goes_on, tok[at, pick], step.pad_id),
        scores=np.where(goes_on, cand[at, pick], NEG_INF),
        ended=ends.any(axis=1),
        eos=(eos_sentence, slots[eos_sentence, eos_cand // width], cand[eos_sentence, eos_cand]),
    )


def greedy(cohort: Cohort, step: Scored) -> Choice:
    """``choose`` for K = 1 without sorting (what ``beams`` decides; a test holds them equal):
    the best continuation goes on, or if it is EOS it ends the hypothesis; the second best, when
    the cohort has one (``min_length``), goes on instead of EOS."""
    rows = cohort.slots[:, 0]
    length = step.length[rows]
    cand = step.scores[rows, None] + step.logprobs[rows, : cohort.width]  # (n, width)
    tok = step.ids[rows, : cohort.width]
    eos = tok[:, :1] == step.eos_id  # (n, 1), as every array the choice holds per beam
    ends = eos & (cand[:, :1] > NEG_INF) & (length[:, None] + 1 >= cohort.min_length[:, None])
    if cohort.width > 1:  # ids in a row differ: the second best is not EOS when the first is
        tokens = np.where(eos, tok[:, 1:2], tok[:, :1])
        score = np.where(eos, cand[:, 1:2], cand[:, :1])
    else:
        tokens, score = np.where(eos, step.pad_id, tok), np.where(eos, NEG_INF, cand)
    eos_sentence = np.flatnonzero(ends)
    return decided(
        cohort,
        length,
        parent=cohort.slots,
        tokens=tokens,
        scores=score,
        ended=ends[:, 0],
        eos=(eos_sentence, rows[eos_sentence], cand[eos_sentence, 0]),
    )


def decided(
    cohort: Cohort,
    length: np.ndarray,
    parent: np.ndarray,
    tokens: np.ndarray,
    scores: np.ndarray,
    ended: np.ndarray,
    eos: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> Choice:
    """The ``Choice`` of a step that took ``cohort``'s sequences from ``length`` tokens to one
    more, where ``ended`` (n,) marks those with a hypothesis ended by EOS (listed in ``eos``)."""
    out_of_budget = length + 1 >= cohort.max_length
    return Choice(
        parent=parent,
        tokens=tokens,
        scores=scores,
        length=length + 1,
        out_of_budget=out_of_budget,
        touched=np.flatnonzero(ended | out_of_budget),
        eos_sentence=eos[0],
        eos_row=eos[1],
        eos_score=eos[2],
    )
