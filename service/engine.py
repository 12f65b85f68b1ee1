"""The decoding engine: batched greedy and beam search over a package, one decoder step at a time.

Step API (what the scheduler drives): ``add`` sequences (runs the encoder for them), ``step`` (one
decoder pass over every active row; returns the sequences that finished), ``cancel``. Sequences
join and leave between steps without restarting the others, and each may have its own options.

Layout. Every sequence owns ``beam_size`` row slots for its whole life; all of them share the
sequence's cross-attention keys/values, so beam reordering never moves those: it is only the
``cache_index`` the decoder graph gathers its self-attention cache by. A finished sequence's slots
become dead (still computed, results ignored) until the next compaction, which happens when new
sequences join or dead slots pass ``compact_ratio`` of all: copying the cross keys/values on every
finish would cost more than the wasted rows. The rows are one value (``service/rows.py``): a join,
a compaction and a beam reorder are one operation on it each.

Search mirrors the PyTorch reference (``model/search.py``) step for step, so that both produce the
same translations: the top 2K continuations of a sentence's K beams, EOS among the best K finishes
a hypothesis, the best K others go on; a sentence is done with K finished hypotheses or at its
length limit a * source_len + b. The graph returns each row's top 2K only (top 1 for greedy).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from contract.options import Hypothesis, SearchOptions, SequenceResult
from service.rows import NEG_INF, Rows
from service.runtime import PackageRuntime

__all__ = ["Engine", "SequenceResult", "SourceTooLong", "check_source"]

log = logging.getLogger("tongyeok.engine")


class SourceTooLong(ValueError):
    """A sentence longer than the model takes (the API maps it to 422, naming the text)."""

    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(f"source has {tokens} tokens; the model takes at most {limit}")
        self.tokens, self.limit = tokens, limit


def check_source(src_ids: Sequence[int], max_source_tokens: int) -> None:
    """The one source-length check: ``src_ids`` plus EOS must fit ``max_source_tokens``."""
    if len(src_ids) + 1 > max_source_tokens:
        raise SourceTooLong(len(src_ids), max_source_tokens - 1)


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
        cross = [
            np.zeros((0, cfg.n_heads, 0, cfg.head_dim), dtype=self.runtime.cache_dtype)
            for _ in range(2 * cfg.decoder_layers)
        ]
        self._set_rows(Rows.empty(self.runtime.empty_cache(0), cross))

    def _set_rows(self, rows: Rows) -> None:
        self.batch = rows
        self._cross_values: list | None = None  # OrtValues of the cross K/V, made at next step

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
        return len(self.batch)

    @property
    def active_rows(self) -> int:
        return int(self.batch.alive.sum())

    def __len__(self) -> int:
        return len(self.sequences)

    # -- joining -----------------------------------------------------------------------------------

    def add(
        self, seq_ids: Sequence[Hashable], sources: Sequence[Sequence[int]], options: SearchOptions
    ) -> None:
        """Encode ``sources`` (token ids without EOS) and let them join at the next step."""
        if not sources:
            return
        cfg = self.config
        for seq_id, source in zip(seq_ids, sources, strict=True):
            if seq_id in self.sequences:
                raise ValueError(f"sequence {seq_id!r} is already active")
            check_source(source, cfg.max_source_tokens)
        rows = [list(s) + [cfg.eos_id] for s in sources]
        limits = [options.max_length(len(row), cfg.max_target_tokens) for row in rows]
        width = max(len(r) for r in rows)
        src = np.full((len(rows), width), cfg.pad_id, dtype=np.int64)
        for i, r in enumerate(rows):
            src[i, : len(r)] = r
        new_mask = src != cfg.pad_id
        encoded = self.runtime.encode(src, new_mask)

        k = options.beam_size
        joining = Rows.joining(
            encoded.cross, new_mask, k, cfg.decoder_start_id, self.runtime.empty_cache(1)
        )
        keep = np.flatnonzero(self.batch.alive)
        self._set_rows(self.batch.take(keep).without_unused_past().concat(joining))
        self._renumber(keep)
        start = len(keep)
        for i, (seq_id, row) in enumerate(zip(seq_ids, rows, strict=True)):
            slots = np.arange(start + i * k, start + (i + 1) * k)
            self.sequences[seq_id] = ActiveSequence(seq_id, options, limits[i], slots, len(row))

    def _renumber(self, keep: np.ndarray) -> None:
        """Slots after keeping only the rows ``keep`` (old slot keep[i] becomes slot i)."""
        remap = {int(old): new for new, old in enumerate(keep)}
        for seq in self.sequences.values():
            seq.slots = np.array([remap[int(s)] for s in seq.slots], dtype=np.int64)

    # -- leaving -----------------------------------------------------------------------------------

    def cancel(self, seq_ids: Sequence[Hashable]) -> None:
        """Drop sequences (e.g. their client went away); their slots die at once."""
        for seq_id in seq_ids:
            seq = self.sequences.pop(seq_id, None)
            if seq is not None:
                self.batch.kill(seq.slots, self.config.pad_id)

    def _compact(self) -> None:
        keep = np.flatnonzero(self.batch.alive)
        if len(keep) == 0:
            self._reset_rows()
            return
        self._set_rows(self.batch.take(keep).without_unused_past().without_unused_source())
        self._renumber(keep)

    # -- one decoder step --------------------------------------------------------------------------

    def step(self) -> list[SequenceResult]:
        """Run the decoder once over every row; return the sequences that finished."""
        if not self.sequences:
            return []
        k = max(self._width(s) for s in self.sequences.values())
        k = min(k, self.config.vocab_size)
        batch = self.batch
        mask = np.concatenate([batch.self_mask, np.ones((self.rows, 1), dtype=bool)], axis=1)
        if self._cross_values is None:  # rebuilt at joins and compactions only
            self._cross_values = [self.runtime.to_device(c) for c in batch.cross]
        out = self.runtime.step(
            batch.tokens[:, None],
            batch.positions[:, None],
            batch.cache_index,
            mask,
            batch.src_mask,
            k,
            batch.cache,
            self._cross_values,
        )
        parent = np.arange(self.rows)  # row each slot continues next step
        next_tokens = batch.tokens.copy()
        results = []
        for seq in list(self.sequences.values()):
            error: str | None = None
            try:
                done = self._advance(seq, out.logprobs, out.ids, parent, next_tokens)
            except Exception as exc:  # this sentence's own search failed: only it ends
                log.exception("search failed for sequence %r", seq.seq_id)
                seq.finished, done, error = [], True, type(exc).__name__
            if done:
                del self.sequences[seq.seq_id]
                batch.kill(seq.slots, self.config.pad_id)
                hyps = sorted(seq.finished, key=lambda h: h.score, reverse=True)
                results.append(SequenceResult(seq.seq_id, hyps[: seq.options.nbest], error))
        # Next step: every slot gathers its parent's cache row (inside the graph) and mask.
        self.batch = batch = batch.advanced(out.cache, mask, parent, next_tokens)
        for seq in self.sequences.values():  # append the chosen tokens to the reordered histories
            for slot in seq.slots:
                if batch.scores[slot] > NEG_INF:
                    batch.history[slot] = [*batch.history[slot], int(next_tokens[slot])]
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
        history, scores = self.batch.history, self.batch.scores
        cand = (scores[slots][:, None] + logprobs[slots, :width]).reshape(-1)  # (K*width,)
        cand_slot = np.repeat(slots, width)
        cand_tok = ids[slots, :width].reshape(-1)
        if seq.length + 1 < opts.min_length:  # EOS not allowed yet
            cand = np.where(cand_tok == cfg.eos_id, NEG_INF, cand)
        n_top = min(2 * beam, beam * cfg.vocab_size, cand.size)
        order = np.argsort(-cand, kind="stable")[:n_top]
        seq.length += 1
        norm = opts.length_norm(seq.length)
        for j in order[:beam]:  # EOS among the best K candidates finishes a hypothesis
            if cand_tok[j] == cfg.eos_id and cand[j] > NEG_INF:
                prefix = history[cand_slot[j]]
                hyp = Hypothesis([*prefix, cfg.eos_id], float(cand[j]) / norm, "eos")
                seq.finished.append(hyp)
        open_ = [j for j in order if cand_tok[j] != cfg.eos_id][:beam]
        new_scores = np.full(beam, NEG_INF, dtype=np.float32)
        new_parent = slots.copy()
        new_tokens = np.full(beam, cfg.pad_id, dtype=np.int64)
        for b, j in enumerate(open_):
            new_scores[b], new_parent[b], new_tokens[b] = cand[j], cand_slot[j], cand_tok[j]
        parent[slots] = new_parent
        next_tokens[slots] = new_tokens
        scores[slots] = new_scores
        if seq.length >= seq.max_length:  # out of budget: open beams end here, unfinished
            for b in range(beam):
                if new_scores[b] > NEG_INF:
                    tokens = [*history[new_parent[b]], int(new_tokens[b])]
                    hyp = Hypothesis(tokens, float(new_scores[b]) / norm, "length")
                    seq.finished.append(hyp)
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
                if result.error is not None:
                    raise RuntimeError(f"decoding failed: {result.error}")
                results[index_of.pop(result.seq_id)] = result.hypotheses
        return results
