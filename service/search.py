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

from service.rows import NEG_INF


@dataclass(frozen=True)
class Choice:
    """What one step decided for ``n`` sentences of ``K`` beams each."""

    parent: np.ndarray  # (n, K) int64: row each beam continues next step
    tokens: np.ndarray  # (n, K) int64: its next token (pad where no beam goes on)
    scores: np.ndarray  # (n, K) float32: its cumulative log-prob (-inf where no beam goes on)
    length: np.ndarray  # (n,) int64: tokens every hypothesis has after this step
    out_of_budget: np.ndarray  # (n,) bool: the sentence reached its length budget
    # Hypotheses ended by EOS, in the order found (best first per sentence): the sentence
    # (index into n), the row whose output they extend with EOS, and their summed log-prob.
    eos_sentence: np.ndarray  # (m,) int64
    eos_row: np.ndarray  # (m,) int64
    eos_score: np.ndarray  # (m,) float32

    def touched(self) -> np.ndarray:
        """Sentences whose hypotheses changed this step (the only ones Python has to visit)."""
        return np.union1d(self.eos_sentence, np.flatnonzero(self.out_of_budget))


def choose(
    slots: np.ndarray,
    scores: np.ndarray,
    logprobs: np.ndarray,
    ids: np.ndarray,
    length: np.ndarray,
    min_length: np.ndarray,
    max_length: np.ndarray,
    eos_id: int,
    pad_id: int,
    vocab_size: int,
) -> Choice:
    """Next beams of the sentences whose rows are ``slots`` (n, K), one sentence per line in
    beam order. ``scores`` (R,) are every row's, ``logprobs`` and ``ids`` (R, width) every row's
    best continuations, best first; ``length``, ``min_length``, ``max_length`` (n,) are each
    sentence's tokens so far and bounds."""
    n, beam = slots.shape
    width = logprobs.shape[1]
    # Candidates in the reference's order: beam-major, then each beam's continuations.
    cand = (scores[slots][:, :, None] + logprobs[slots]).reshape(n, beam * width)
    tok = ids[slots].reshape(n, beam * width)
    row = np.repeat(slots, width, axis=1)
    refused = (length + 1 < min_length)[:, None] & (tok == eos_id)  # EOS not allowed yet
    cand = np.where(refused, NEG_INF, cand)
    n_top = min(2 * beam, beam * vocab_size, beam * width)
    order = np.argsort(-cand, axis=1, kind="stable")[:, :n_top]
    cand, tok, row = (np.take_along_axis(a, order, axis=1) for a in (cand, tok, row))
    is_eos = tok == eos_id
    # EOS among the best K candidates finishes a hypothesis.
    eos_sentence, eos_at = np.nonzero(is_eos[:, :beam] & (cand[:, :beam] > NEG_INF))
    # The best K others go on (a stable sort puts them first, in order); -inf where fewer.
    pick = np.argsort(is_eos, axis=1, kind="stable")[:, :beam]
    goes_on = ~np.take_along_axis(is_eos, pick, axis=1)
    return Choice(
        parent=np.where(goes_on, np.take_along_axis(row, pick, axis=1), slots),
        tokens=np.where(goes_on, np.take_along_axis(tok, pick, axis=1), pad_id),
        scores=np.where(goes_on, np.take_along_axis(cand, pick, axis=1), NEG_INF),
        length=length + 1,
        out_of_budget=length + 1 >= max_length,
        eos_sentence=eos_sentence,
        eos_row=row[eos_sentence, eos_at],
        eos_score=cand[eos_sentence, eos_at],
    )
