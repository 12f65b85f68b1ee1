"""The decoding engine: batched greedy and beam search over a package, one decoder step at a time.

Step API (what the scheduler drives): ``add`` sequences (runs the encoder for them), ``step`` (one
decoder pass over every active row; returns the sequences that finished), ``cancel``. Sequences
join and leave between steps without restarting the others, and each may have its own options.

Layout. Every sequence owns ``beam_size`` row slots for its whole life; all of them share the
sequence's cross-attention keys/values, so beam reordering never moves those: it is only the
``cache_index`` the decoder graph gathers its self-attention cache by. A finished sequence's slots
become dead (still computed, results ignored) until the next compaction, which happens when new
sequences join or dead slots pass ``compact_ratio`` of all: copying the cross keys/values on every
finish would cost more than the wasted rows.

Search mirrors the PyTorch reference (``model/search.py``) step for step, so that both produce the
same translations: the top 2K continuations of a sentence's K beams, EOS among the best K finishes
a hypothesis, the best K others go on; a sentence is done with K finished hypotheses or at its
length limit a * source_len + b. The graph returns each row's top 2K only (top 1 for greedy).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from contract.options import Hypothesis, SearchOptions
from service.runtime import PackageRuntime, as_array, rows_of

NEG_INF = np.float32(-np.inf)


@dataclass(frozen=True)
class SequenceResult:
    seq_id: Hashable
    hypotheses: list[Hypothesis]  # nbest, best first

    @property
    def best(self) -> Hypothesis:
        return self.hypotheses[0]


@dataclass
class ActiveSequence:
    seq_id: Hashable
    options: SearchOptions
    max_length: int
    slots: np.ndarray  # row indices owned by this sequence (beam_size of them)
    source_tokens: int = 0  # EOS included
    finished: list[Hypothesis] = field(default_factory=list)
    length: int = 0  # tokens generated so far

    @property
    def reserved_tokens(self) -> int:
        """Cache positions this sequence may hold at its longest: beams x (source + output)."""
        return self.options.beam_size * (self.source_tokens + self.max_length)


class Engine:
    """Continuous-batching search state over one ``PackageRuntime``."""

    def __init__(self, runtime: PackageRuntime, compact_ratio: float = 0.25) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.compact_ratio = compact_ratio
        self.sequences: dict[Hashable, ActiveSequence] = {}
        self._reset_rows()

    # -- state -----------------------------------------------------------------------------------

    def _reset_rows(self) -> None:
        cfg = self.config
        self.tokens = np.zeros(0, dtype=np.int64)  # next input token of every row
        self.positions = np.zeros(0, dtype=np.int64)  # its position within the row's own sequence
        self.scores = np.zeros(0, dtype=np.float32)  # cumulative log-prob; -inf: dead or unborn
        self.cache_index = np.zeros(0, dtype=np.int64)  # row of ``cache`` each row continues
        self.self_mask = np.zeros((0, 0), dtype=bool)  # (R, P): valid past positions per row
        self.history: list[list[int]] = []
        self.alive = np.zeros(0, dtype=bool)
        self.cache = self.runtime.empty_cache(0)  # 2L x (R_prev, H, P, Dh)
        self.cross: list[np.ndarray] = [
            np.zeros((0, cfg.n_heads, 0, cfg.head_dim), dtype=self.runtime.cache_dtype)
            for _ in range(2 * cfg.decoder_layers)
        ]
        self.src_mask = np.zeros((0, 0), dtype=bool)
        self._cross_values: list | None = None  # OrtValues of self.cross, made at the next step

    def reset(self) -> None:
        """Forget every sequence and row (after a failed step)."""
        self.sequences.clear()
        self._reset_rows()

    @property
    def reserved_tokens(self) -> int:
        return sum(seq.reserved_tokens for seq in self.sequences.values())

    def tokens_for(self, source: Sequence[int], options: SearchOptions) -> int:
        """What ``reserved_tokens`` would grow by if ``source`` joined with ``options``."""
        n = len(source) + 1
        return options.beam_size * (n + options.max_length(n, self.config.max_target_tokens))

    @property
    def rows(self) -> int:
        return len(self.tokens)

    @property
    def active_rows(self) -> int:
        return int(self.alive.sum())

    def __len__(self) -> int:
        return len(self.sequences)

    # -- joining -----------------------------------------------------------------------------------

    def check_source(self, src_ids: Sequence[int]) -> None:
        limit = self.config.max_source_tokens
        if len(src_ids) + 1 > limit:
            raise ValueError(
                f"source has {len(src_ids)} tokens; the model takes at most {limit - 1}"
            )

    def add(
        self, seq_ids: Sequence[Hashable], sources: Sequence[Sequence[int]], options: SearchOptions
    ) -> None:
        """Encode ``sources`` (token ids without EOS) and let them join at the next step."""
        if not sources:
            return
        for seq_id, source in zip(seq_ids, sources, strict=True):
            if seq_id in self.sequences:
                raise ValueError(f"sequence {seq_id!r} is already active")
            self.check_source(source)
        cfg = self.config
        rows = [list(s) + [cfg.eos_id] for s in sources]
        width = max(len(r) for r in rows)
        src = np.full((len(rows), width), cfg.pad_id, dtype=np.int64)
        for i, r in enumerate(rows):
            src[i, : len(r)] = r
        new_mask = src != cfg.pad_id
        encoded = self.runtime.encode(src, new_mask)

        k = options.beam_size
        keep = np.flatnonzero(self.alive)
        start = len(keep)
        # New rows: K slots per sequence; the first is live, the others unborn until step one.
        n_new = len(rows) * k
        repeat = np.repeat(np.arange(len(rows)), k)
        new_scores = np.tile(np.array([0.0] + [-np.inf] * (k - 1), dtype=np.float32), len(rows))

        # Merge cross keys/values and source masks, padding the source axis to the longer one.
        s_old, s_new = self.src_mask.shape[1], width
        s_max = max(s_old, s_new)
        self.cross = [
            np.concatenate([pad_axis(old[keep], 2, s_max), pad_axis(new[repeat], 2, s_max)])
            for old, new in zip(self.cross, encoded.cross, strict=True)
        ]
        self.src_mask = np.concatenate(
            [pad_axis(self.src_mask[keep], 1, s_max), pad_axis(new_mask[repeat], 1, s_max)]
        )
        self._cross_values = None
        # Self-attention: existing rows keep their past; new rows gather any row (0) and mask it.
        past = self.self_mask.shape[1]
        first_used = first_valid_column(self.self_mask[keep]) if start else past
        if first_used:  # columns no kept row attends to: drop them (a copy, so only when needed)
            self.cache = [as_array(c)[:, :, first_used:] for c in self.cache]
        past -= first_used
        self.cache_index = np.concatenate([self.cache_index[keep], np.zeros(n_new, dtype=np.int64)])
        if rows_of(self.cache[0]) == 0:  # nothing to gather from: give new rows an empty past
            self.cache = self.runtime.empty_cache(1)
        self.self_mask = np.concatenate(
            [self.self_mask[keep][:, first_used:], np.zeros((n_new, past), dtype=bool)]
        )
        self.tokens = np.concatenate(
            [self.tokens[keep], np.full(n_new, cfg.decoder_start_id, dtype=np.int64)]
        )
        self.positions = np.concatenate([self.positions[keep], np.zeros(n_new, dtype=np.int64)])
        self.scores = np.concatenate([self.scores[keep], new_scores])
        self.alive = np.concatenate([self.alive[keep], np.ones(n_new, dtype=bool)])
        self.history = [self.history[i] for i in keep] + [[] for _ in range(n_new)]
        remap = {int(old): new for new, old in enumerate(keep)}  # old slot -> new slot
        for seq in self.sequences.values():
            seq.slots = np.array([remap[int(s)] for s in seq.slots], dtype=np.int64)
        for i, (seq_id, row) in enumerate(zip(seq_ids, rows, strict=True)):
            slots = np.arange(start + i * k, start + (i + 1) * k)
            limit = options.max_length(len(row), cfg.max_target_tokens)
            self.sequences[seq_id] = ActiveSequence(seq_id, options, limit, slots, len(row))

    # -- leaving -----------------------------------------------------------------------------------

    def cancel(self, seq_ids: Sequence[Hashable]) -> None:
        """Drop sequences (e.g. their client went away); their slots die at once."""
        for seq_id in seq_ids:
            seq = self.sequences.pop(seq_id, None)
            if seq is not None:
                self._kill(seq.slots)

    def _kill(self, slots: np.ndarray) -> None:
        self.alive[slots] = False
        self.scores[slots] = NEG_INF
        self.tokens[slots] = self.config.pad_id
        self.positions[slots] = 0  # dead rows must not walk off the end of the position table

    def _compact(self) -> None:
        keep = np.flatnonzero(self.alive)
        if len(keep) == 0:
            self._reset_rows()
            return
        remap = {int(old): new for new, old in enumerate(keep)}
        first_used = first_valid_column(self.self_mask[keep])
        self.cross = [c[keep] for c in self.cross]
        used_src = int(np.flatnonzero(self.src_mask[keep].any(axis=0)).max()) + 1
        self.cross = [c[:, :, :used_src] for c in self.cross]
        self.src_mask = self.src_mask[keep][:, :used_src]
        self._cross_values = None
        if first_used:
            self.cache = [as_array(c)[:, :, first_used:] for c in self.cache]
        self.self_mask = self.self_mask[keep][:, first_used:]
        self.cache_index = self.cache_index[keep]
        self.tokens, self.positions = self.tokens[keep], self.positions[keep]
        self.scores, self.alive = self.scores[keep], self.alive[keep]
        self.history = [self.history[i] for i in keep]
        for seq in self.sequences.values():
            seq.slots = np.array([remap[int(s)] for s in seq.slots], dtype=np.int64)

    # -- one decoder step --------------------------------------------------------------------------

    def step(self) -> list[SequenceResult]:
        """Run the decoder once over every row; return the sequences that finished."""
        if not self.sequences:
            return []
        k = max(self._width(s) for s in self.sequences.values())
        k = min(k, self.config.vocab_size)
        mask = np.concatenate([self.self_mask, np.ones((self.rows, 1), dtype=bool)], axis=1)
        if self._cross_values is None:  # rebuilt at joins and compactions only
            self._cross_values = [self.runtime.to_device(c) for c in self.cross]
        out = self.runtime.step(
            self.tokens[:, None],
            self.positions[:, None],
            self.cache_index,
            mask,
            self.src_mask,
            k,
            self.cache,
            self._cross_values,
        )
        self.cache, self.self_mask = out.cache, mask
        parent = np.arange(self.rows)  # row each slot continues next step
        next_tokens = self.tokens.copy()
        results = []
        for seq in list(self.sequences.values()):
            done = self._advance(seq, out.logprobs, out.ids, parent, next_tokens)
            if done:
                del self.sequences[seq.seq_id]
                self._kill(seq.slots)
                hyps = sorted(seq.finished, key=lambda h: h.score, reverse=True)
                results.append(SequenceResult(seq.seq_id, hyps[: seq.options.nbest]))
        # Next step: every slot gathers its parent's cache row (inside the graph) and mask.
        self.cache_index = parent
        self.self_mask = self.self_mask[parent]
        self.history = [self.history[p] for p in parent]
        self.tokens = next_tokens
        self.positions = np.where(self.alive, self.positions + 1, 0)
        for seq in self.sequences.values():  # append the chosen tokens to the reordered histories
            for slot in seq.slots:
                if self.scores[slot] > NEG_INF:
                    self.history[slot] = [*self.history[slot], int(next_tokens[slot])]
        if self.rows and (self.rows - self.active_rows) / self.rows > self.compact_ratio:
            self._compact()
        return results

    @staticmethod
    def _width(seq: ActiveSequence) -> int:
        """Candidates needed per row: the best 2K (K beams), or 1 for greedy, plus one to step
        over EOS while ``min_length`` forbids it."""
        beam = seq.options.beam_size
        width = 1 if beam == 1 else 2 * beam
        return width + 1 if seq.options.min_length and beam == 1 else width

    def _advance(
        self,
        seq: ActiveSequence,
        logprobs: np.ndarray,
        ids: np.ndarray,
        parent: np.ndarray,
        next_tokens: np.ndarray,
    ) -> bool:
        """Choose the sequence's next beams; True when it is done."""
        cfg, opts = self.config, seq.options
        beam = opts.beam_size
        slots = seq.slots
        width = min(self._width(seq), ids.shape[1])
        cand = (self.scores[slots][:, None] + logprobs[slots, :width]).reshape(-1)  # (K*width,)
        cand_slot = np.repeat(slots, width)
        cand_tok = ids[slots, :width].reshape(-1)
        if seq.length + 1 < opts.min_length:  # EOS not allowed yet
            cand = np.where(cand_tok == cfg.eos_id, NEG_INF, cand)
        n_top = min(2 * beam, beam * cfg.vocab_size, cand.size)
        order = np.argsort(-cand, kind="stable")[:n_top]
        seq.length += 1
        norm = seq.length**opts.length_penalty
        for j in order[:beam]:  # EOS among the best K candidates finishes a hypothesis
            if cand_tok[j] == cfg.eos_id and cand[j] > NEG_INF:
                prefix = self.history[cand_slot[j]]
                seq.finished.append(Hypothesis([*prefix, cfg.eos_id], float(cand[j]) / norm))
        open_ = [j for j in order if cand_tok[j] != cfg.eos_id][:beam]
        new_scores = np.full(beam, NEG_INF, dtype=np.float32)
        new_parent = slots.copy()
        new_tokens = np.full(beam, cfg.pad_id, dtype=np.int64)
        for b, j in enumerate(open_):
            new_scores[b], new_parent[b], new_tokens[b] = cand[j], cand_slot[j], cand_tok[j]
        parent[slots] = new_parent
        next_tokens[slots] = new_tokens
        self.scores[slots] = new_scores
        if seq.length >= seq.max_length:  # out of budget: open beams end here, unfinished
            for b in range(beam):
                if new_scores[b] > NEG_INF:
                    tokens = [*self.history[new_parent[b]], int(new_tokens[b])]
                    seq.finished.append(Hypothesis(tokens, float(new_scores[b]) / norm))
            return True
        return len(seq.finished) >= beam

    # -- convenience -------------------------------------------------------------------------------

    def run(
        self,
        sources: Sequence[Sequence[int]],
        options: SearchOptions,
        max_batch: int = 64,
        sort: bool = True,
    ) -> list[list[Hypothesis]]:
        """Decode ``sources`` to completion, ``max_batch`` sentences at a time, sorted by length to
        limit padding (unless ``sort`` is False: in the given order, as a server meets them);
        results in input order. New sentences join as others finish."""
        order = list(range(len(sources)))
        if sort:
            order.sort(key=lambda i: len(sources[i]))
        results: list[list[Hypothesis]] = [[] for _ in sources]
        pending = list(order)
        index_of: dict[Hashable, int] = {}  # ids private to this call
        while pending or self.sequences:
            room = max_batch - len(self.sequences)
            if room > 0 and pending:
                batch, pending = pending[:room], pending[room:]
                ids = [object() for _ in batch]
                index_of.update(zip(ids, batch, strict=True))
                self.add(ids, [sources[i] for i in batch], options)
            for result in self.step():
                results[index_of.pop(result.seq_id)] = result.hypotheses
        return results


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
