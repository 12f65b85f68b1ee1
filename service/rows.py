"""The engine's decoder rows as one value (TGI's ``Batch``): joins, compaction and beam reordering
are one operation each instead of ten parallel arrays re-indexed by hand at every site.

A row is one beam slot of one sentence. Every per-row field is indexed by row; ``cache`` is not:
it holds the rows of the previous step, and each row reads its past through ``cache_index``
(the decoder graph gathers it), so taking rows never copies the self-attention cache.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from service.runtime import Tensor, as_array, rows_of

NEG_INF = np.float32(-np.inf)


@dataclass
class Rows:
    tokens: np.ndarray  # (R,) int64: next input token of every row
    positions: np.ndarray  # (R,) int64: its position within the row's own sequence
    scores: np.ndarray  # (R,) float32: cumulative log-prob; -inf: dead or unborn
    cache_index: np.ndarray  # (R,) int64: row of ``cache`` each row continues
    self_mask: np.ndarray  # (R, P) bool: valid past positions per row
    history: list[list[int]]  # tokens generated so far, per row
    alive: np.ndarray  # (R,) bool
    cache: list[Tensor]  # 2L x (R_prev, H, P, Dh): read through ``cache_index``, not by row
    cross: list[np.ndarray]  # 2L x (R, H, S, Dh): cross-attention keys/values per row
    src_mask: np.ndarray  # (R, S) bool: True at source tokens

    @classmethod
    def empty(cls, cache: list[Tensor], cross: list[np.ndarray]) -> Rows:
        """No rows: ``cache`` and ``cross`` are the runtime's empty tensors of the right shapes."""
        return cls(
            tokens=np.zeros(0, dtype=np.int64),
            positions=np.zeros(0, dtype=np.int64),
            scores=np.zeros(0, dtype=np.float32),
            cache_index=np.zeros(0, dtype=np.int64),
            self_mask=np.zeros((0, 0), dtype=bool),
            history=[],
            alive=np.zeros(0, dtype=bool),
            cache=cache,
            cross=cross,
            src_mask=np.zeros((0, 0), dtype=bool),
        )

    @classmethod
    def joining(
        cls,
        cross: list[np.ndarray],
        src_mask: np.ndarray,
        beam: int,
        start_id: int,
        empty_cache: list[Tensor],
    ) -> Rows:
        """Rows for sentences that join: ``beam`` slots each, the first live and the others
        unborn (-inf) until step one; no past (they gather row 0 of any cache and mask it)."""
        sentences = len(src_mask)
        repeat = np.repeat(np.arange(sentences), beam)
        n = sentences * beam
        first_live = np.array([0.0] + [-np.inf] * (beam - 1), dtype=np.float32)
        return cls(
            tokens=np.full(n, start_id, dtype=np.int64),
            positions=np.zeros(n, dtype=np.int64),
            scores=np.tile(first_live, sentences),
            cache_index=np.zeros(n, dtype=np.int64),
            self_mask=np.zeros((n, 0), dtype=bool),
            history=[[] for _ in range(n)],
            alive=np.ones(n, dtype=bool),
            cache=empty_cache,
            cross=[c[repeat] for c in cross],
            src_mask=src_mask[repeat],
        )

    def __len__(self) -> int:
        return len(self.tokens)

    def take(self, index: np.ndarray) -> Rows:
        """The rows at ``index``, in that order (the cache is shared: see the module docstring)."""
        return replace(
            self,
            tokens=self.tokens[index],
            positions=self.positions[index],
            scores=self.scores[index],
            cache_index=self.cache_index[index],
            self_mask=self.self_mask[index],
            history=[self.history[i] for i in index],
            alive=self.alive[index],
            cross=[c[index] for c in self.cross],
            src_mask=self.src_mask[index],
        )

    def concat(self, other: Rows) -> Rows:
        """These rows, then ``other``'s (rows that join: no past of their own), with the source
        axis padded to the longer of the two."""
        width = max(self.src_mask.shape[1], other.src_mask.shape[1])
        past = self.self_mask.shape[1]
        return Rows(
            tokens=np.concatenate([self.tokens, other.tokens]),
            positions=np.concatenate([self.positions, other.positions]),
            scores=np.concatenate([self.scores, other.scores]),
            cache_index=np.concatenate([self.cache_index, other.cache_index]),
            self_mask=np.concatenate([self.self_mask, pad_axis(other.self_mask, 1, past)]),
            history=self.history + other.history,
            alive=np.concatenate([self.alive, other.alive]),
            # Nothing to gather from: the joining rows' empty past stands in for the cache.
            cache=self.cache if rows_of(self.cache[0]) else other.cache,
            cross=[
                np.concatenate([pad_axis(a, 2, width), pad_axis(b, 2, width)])
                for a, b in zip(self.cross, other.cross, strict=True)
            ],
            src_mask=np.concatenate(
                [pad_axis(self.src_mask, 1, width), pad_axis(other.src_mask, 1, width)]
            ),
        )

    def without_unused_past(self) -> Rows:
        """Drop the self-attention columns no row attends to any more (all of them without
        rows); a copy of the cache, so only when there is something to drop."""
        first = first_valid_column(self.self_mask) if len(self) else self.self_mask.shape[1]
        if not first:
            return self
        return replace(
            self,
            self_mask=self.self_mask[:, first:],
            cache=[as_array(c)[:, :, first:] for c in self.cache],
        )

    def without_unused_source(self) -> Rows:
        """Drop the source columns past the longest source still present."""
        used = int(np.flatnonzero(self.src_mask.any(axis=0)).max()) + 1
        return replace(
            self, cross=[c[:, :, :used] for c in self.cross], src_mask=self.src_mask[:, :used]
        )

    def kill(self, slots: np.ndarray, pad_id: int) -> None:
        """Slots whose sequence left: computed until the next compaction, results ignored."""
        self.alive[slots] = False
        self.scores[slots] = NEG_INF
        self.tokens[slots] = pad_id
        self.positions[slots] = 0  # dead rows must not walk off the end of the position table

    def advanced(
        self,
        cache: list[Tensor],
        self_mask: np.ndarray,
        parent: np.ndarray,
        next_tokens: np.ndarray,
    ) -> Rows:
        """After a decoder step (``cache`` and ``self_mask`` grown by one position): every slot
        continues its ``parent``'s past (gathered inside the graph) with its ``next_tokens``."""
        return replace(
            self,
            cache=cache,
            cache_index=parent,
            self_mask=self_mask[parent],
            history=[self.history[p] for p in parent],
            tokens=next_tokens,
            positions=np.where(self.alive, self.positions + 1, 0),
        )


def pad_axis(array: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Zero-pad (False for bool) ``array`` along ``axis`` up to ``size``."""
    missing = size - array.shape[axis]
    if missing <= 0:
        return array
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, missing)
    return np.pad(array, widths)


def first_valid_column(mask: np.ndarray) -> int:
    """The first column any row still attends to (earlier ones can be dropped from the cache)."""
    if mask.size == 0:
        return 0
    used = mask.any(axis=0)
    return int(used.argmax()) if used.any() else mask.shape[1]
