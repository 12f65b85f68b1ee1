"""The engine's decoder rows as one value (TGI's ``Batch``): joins, compaction and beam reordering
are one operation each instead of a dozen parallel arrays re-indexed by hand at every site.

A row is one beam slot of one sentence. Every per-row field is an array indexed by row, the
search's state included (scores, generated tokens, the sentence a row belongs to and its length
bounds), so taking, joining and reordering rows are a few fancy indexes with no Python loop over
rows. ``cache`` is not per row: it holds the rows of the previous step, and each row reads its past
through ``cache_index`` (the decoder graph gathers it, or, for an in-place cache, the runtime
moves the rows that changed before the step), so taking rows never copies the self-attention
cache.

Nor are the cross-attention keys/values and the source mask: they are per *source*, and
``rows_per_source`` consecutive rows read one source (row r reads source r // rows_per_source).
When every sentence in the batch has the same beam size K and the package's decoder takes shared
sources, ``rows_per_source`` is K: the K beams of a sentence read its encoder output once
instead of K copies of it (at beam 4, a quarter of the memory and of what cross-attention reads
per step). Otherwise (mixed beam sizes, or a decoder that takes one source per row)
``rows_per_source`` is 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from contract.options import SearchOptions
from service.runtime.tensor_ops import NUMPY, Tensor, TensorOps, pad_axis, rows_of, shape_of

NEG_INF = np.float32(-np.inf)

# The per-row arrays (first axis: rows): what ``take`` indexes and ``concat`` stacks.
BY_ROW = (
    "tokens",
    "positions",
    "scores",
    "cache_index",
    "self_mask",
    "history",
    "alive",
    "owner",
    "beam",
    "min_length",
    "max_length",
)
PADDED = ("self_mask", "history")  # stacked with their second axis padded


@dataclass
class Rows:
    # What the decoder reads.
    tokens: np.ndarray  # (R,) int64: next input token of every row
    positions: np.ndarray  # (R,) int64: its position; for a live row, also tokens generated so far
    cache_index: np.ndarray  # (R,) int64: row of ``cache`` each row continues
    self_mask: np.ndarray  # (R, P) bool: valid past positions per row
    cache: list[Tensor]  # 2L x (R_prev, H, P, Dh): read through ``cache_index``, not by row
    cross: list[
        Tensor
    ]  # 2L x (R / rows_per_source, H, S, Dh): cross-attention keys/values per source
    src_mask: np.ndarray  # (R / rows_per_source, S) bool: True at source tokens
    # The search's state.
    scores: np.ndarray  # (R,) float32: cumulative log-prob; -inf: dead or unborn
    # (R, G) int64, right-aligned: a live row's generated tokens are its last ``positions``
    # columns (the last of them is ``tokens``); the rest is padding.
    history: np.ndarray
    alive: np.ndarray  # (R,) bool
    owner: np.ndarray  # (R,) int64: number of the sentence the row is a beam of
    beam: np.ndarray  # (R,) int64: that sentence's beam size (its rows are contiguous)
    min_length: np.ndarray  # (R,) int64: no EOS before this many tokens
    max_length: np.ndarray  # (R,) int64: the sentence's output budget
    rows_per_source: int = 1  # row r reads source r // rows_per_source
    # How ``cache`` and ``cross`` are reshaped: where they live (numpy, or the decoder's device).
    ops: TensorOps = field(default=NUMPY, repr=False, compare=False)

    @classmethod
    def empty(cls, cache: list[Tensor], cross: list[Tensor], ops: TensorOps = NUMPY) -> Rows:
        """No rows: ``cache`` and ``cross`` are the runtime's empty tensors of the right shapes,
        reshaped from here on by ``ops``."""

        def none() -> np.ndarray:
            return np.zeros(0, dtype=np.int64)

        return cls(
            tokens=none(),
            positions=none(),
            cache_index=none(),
            self_mask=np.zeros((0, 0), dtype=bool),
            cache=cache,
            cross=cross,
            src_mask=np.zeros((0, 0), dtype=bool),
            scores=np.zeros(0, dtype=np.float32),
            history=np.zeros((0, 0), dtype=np.int64),
            alive=np.zeros(0, dtype=bool),
            owner=none(),
            beam=none(),
            min_length=none(),
            max_length=none(),
            ops=ops,
        )

    @classmethod
    def joining(
        cls,
        cross: list[np.ndarray],
        src_mask: np.ndarray,
        start_id: int,
        empty_cache: list[Tensor],
        owners: np.ndarray,
        options: SearchOptions,
        max_length: np.ndarray,
        ops: TensorOps = NUMPY,
    ) -> Rows:
        """Rows for sentences that join (numbered ``owners``, with budgets ``max_length``):
        ``beam`` slots each, the first live and the others unborn (-inf) until step one; no past
        (they gather row 0 of any cache and mask it). The beams of a sentence share its source:
        the encoder's arrays as they are, not a copy (``per_row`` makes the copies where a
        decoder needs them)."""
        beam = options.beam_size
        sentences = len(src_mask)
        repeat = np.repeat(np.arange(sentences), beam)
        n = sentences * beam
        first_live = np.array([0.0] + [-np.inf] * (beam - 1), dtype=np.float32)
        return cls(
            tokens=np.full(n, start_id, dtype=np.int64),
            positions=np.zeros(n, dtype=np.int64),
            cache_index=np.zeros(n, dtype=np.int64),
            self_mask=np.zeros((n, 0), dtype=bool),
            cache=empty_cache,
            cross=list(cross),
            src_mask=src_mask,
            rows_per_source=beam,
            scores=np.tile(first_live, sentences),
            history=np.zeros((n, 0), dtype=np.int64),
            alive=np.ones(n, dtype=bool),
            owner=np.asarray(owners, dtype=np.int64)[repeat],
            beam=np.full(n, beam, dtype=np.int64),
            min_length=np.full(n, options.min_length, dtype=np.int64),
            max_length=np.asarray(max_length, dtype=np.int64)[repeat],
            ops=ops,
        )

    def __len__(self) -> int:
        return len(self.tokens)

    def per_row(self) -> Rows:
        """The same rows with one source each (``rows_per_source`` 1): the shared sources copied."""
        if self.rows_per_source == 1:
            return self
        index = np.arange(len(self)) // self.rows_per_source
        cross = [self.ops.take(c, index) for c in self.cross]
        return replace(self, cross=cross, src_mask=self.src_mask[index], rows_per_source=1)

    def sharing_sources(self) -> Rows:
        """The same rows with the beams of a sentence sharing one source, where every sentence
        has the same beam size K > 1 (``rows_per_source`` K); as they are otherwise."""
        k = int(self.beam[0]) if len(self) else 1
        if self.rows_per_source != 1 or k == 1 or not (self.beam == k).all():
            return self  # already shared, greedy, or mixed beam sizes
        lines = self.owner.reshape(-1, k)  # a sentence's rows are contiguous, in beam order
        if not (lines == lines[:, :1]).all():
            return self
        first = np.arange(0, len(self), k)
        cross = [self.ops.take(c, first) for c in self.cross]
        return replace(self, cross=cross, src_mask=self.src_mask[first], rows_per_source=k)

    def take(self, index: np.ndarray) -> Rows:
        """The rows at ``index``, in that order (the cache is shared: see the module docstring).
        Whole sentences keep sharing their sources; any other selection gets one per row."""
        if len(index) == len(self) and (np.diff(index) == 1).all():
            return self  # every row, in order: nothing to copy (joins usually find no dead row)
        g = self.rows_per_source
        if g > 1:  # only whole sentences, each as its g rows in order, keep sharing
            lines = index.reshape(-1, g) if len(index) % g == 0 else None
            if lines is None or not (
                (lines[:, 0] % g == 0).all() and (lines == lines[:, :1] + np.arange(g)).all()
            ):
                return self.per_row().take(index)
            sources = lines[:, 0] // g
        else:
            sources = index
        taken: dict[str, Any] = {name: getattr(self, name)[index] for name in BY_ROW}
        return replace(
            self,
            cross=[self.ops.take(c, sources) for c in self.cross],
            src_mask=self.src_mask[sources],
            **taken,
        )

    def concat(self, other: Rows) -> Rows:
        """These rows, then ``other``'s (rows that join: no past of their own), with the source
        axis padded to the longer of the two. Without rows of its own, ``other`` as it is: the
        batch starts empty at every idle start, and copying the joining cross keys/values (beam
        x sentences x source, every layer) would double them at the moment memory peaks."""
        if not len(self):
            return other if other.ops is self.ops else replace(other, ops=self.ops)
        if self.rows_per_source != other.rows_per_source:  # beam sizes differ: one source per row
            return self.per_row().concat(other.per_row())
        width = max(self.src_mask.shape[1], other.src_mask.shape[1])
        generated = max(self.history.shape[1], other.history.shape[1])
        stacked: dict[str, Any] = {
            name: np.concatenate([getattr(self, name), getattr(other, name)])
            for name in BY_ROW
            if name not in PADDED
        }
        stacked.update(
            self_mask=np.concatenate(
                [self.self_mask, pad_axis(other.self_mask, 1, self.self_mask.shape[1])]
            ),
            history=np.concatenate(
                [pad_axis(h, 1, generated, before=True) for h in (self.history, other.history)]
            ),
        )
        return replace(
            self,
            src_mask=np.concatenate(
                [pad_axis(self.src_mask, 1, width), pad_axis(other.src_mask, 1, width)]
            ),
            # Nothing to gather from: the joining rows' empty past stands in for the cache.
            cache=self.cache if rows_of(self.cache[0]) else other.cache,
            cross=[
                self.ops.concat(a, b, width) for a, b in zip(self.cross, other.cross, strict=True)
            ],
            **stacked,
        )

    def without_unused_past(self, in_place: bool = False) -> Rows:
        """Drop the self-attention columns no row attends to any more (all of them without
        rows; a copy of the cache, so only when there is something to drop), and the history
        columns older than the longest row's output. ``in_place``: the cache's columns are each
        row's own positions (contract/spec.py), not the mask's: only the mask is trimmed."""
        first = first_valid_column(self.self_mask) if len(self) else self.self_mask.shape[1]
        longest = int(self.positions.max()) if len(self) else 0
        old = self.history.shape[1] - longest
        rows = self
        if old > 0:
            rows = replace(rows, history=rows.history[:, old:])
        if first:
            cache = rows.cache
            if not in_place:
                cache = [self.ops.columns(c, first, shape_of(c)[2]) for c in cache]
            rows = replace(rows, self_mask=rows.self_mask[:, first:], cache=cache)
        return rows

    def without_unused_source(self) -> Rows:
        """Drop the source columns past the longest source still present."""
        used = int(np.flatnonzero(self.src_mask.any(axis=0)).max()) + 1
        cross = [self.ops.columns(c, 0, used) for c in self.cross]
        return replace(self, cross=cross, src_mask=self.src_mask[:, :used])

    def kill(self, rows: np.ndarray, pad_id: int) -> None:
        """Rows whose sentence left: computed until the next compaction, results ignored."""
        self.alive[rows] = False
        self.scores[rows] = NEG_INF
        self.tokens[rows] = pad_id
        self.positions[rows] = 0  # dead rows must not walk off the end of the position table

    def generated(self, row: int, length: int) -> list[int]:
        """The ``length`` tokens row ``row`` generated so far (its ``positions``, if live)."""
        return self.history[row, self.history.shape[1] - length :].tolist()

    def owned_by(self, owner: int) -> np.ndarray:
        """The rows of sentence ``owner`` (none once it left)."""
        return np.flatnonzero(self.alive & (self.owner == owner))

    def advanced(
        self,
        cache: list[Tensor],
        self_mask: np.ndarray,
        parent: np.ndarray,
        tokens: np.ndarray,
        scores: np.ndarray,
    ) -> Rows:
        """After a decoder step (``cache`` and ``self_mask`` grown by one position): every row
        continues its ``parent``'s past (gathered inside the graph) and output with ``tokens``,
        now scoring ``scores``."""
        return replace(
            self,
            cache=cache,
            cache_index=parent,
            self_mask=self_mask[parent],
            history=np.concatenate([self.history[parent], tokens[:, None]], axis=1),
            tokens=tokens,
            scores=scores,
            positions=np.where(self.alive, self.positions + 1, 0),
        )


def first_valid_column(mask: np.ndarray) -> int:
    """The first column any row still attends to (earlier ones can be dropped from the cache)."""
    if mask.size == 0:
        return 0
    used = mask.any(axis=0)
    return int(used.argmax()) if used.any() else mask.shape[1]
