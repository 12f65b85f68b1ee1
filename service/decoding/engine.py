"""The decoding engine: batched greedy and beam search over a package, one decoder step at a time.

Step API (what the scheduler drives): ``add`` sequences (runs the encoder for them), ``step`` (one
decoder pass over every active row; returns the sequences that finished), ``cancel``. Sequences
join and leave between steps without restarting the others, and each may have its own options.

Layout. Every sequence owns ``beam_size`` row slots for its whole life; all of them share the
sequence's cross-attention keys/values, so beam reordering never moves those: it is only the
``cache_index`` the decoder's self-attention cache is gathered by (inside the graph, or, for an
in-place cache, the rows that moved, by the runtime before the step: decision #31). Where the
package's decoder takes shared sources and every sequence has the same beam size, the slots of a
sequence read one copy of its cross keys/values; otherwise each slot has its own
(``Rows.rows_per_source``).
A finished sequence's slots become dead (still computed, results ignored) until the next
compaction, which happens when new sequences join or dead slots pass ``compact_ratio`` of all:
copying the cross keys/values on every finish would cost more than the wasted rows. The rows are
one value (``service/rows.py``): a join, a compaction and a beam reorder are one operation on it
each.

Search mirrors the PyTorch reference (``model/search.py``) step for step, so that both produce the
same translations: the top 2K continuations of a sentence's K beams, EOS among the best K finishes
a hypothesis, the best K others go on; a sentence is done with K finished hypotheses or at its
length limit a * source_len + b. The graph returns each row's top 2K only (top 1 for greedy).
A step decides for all sequences of one beam size at once (``service/search.py``); Python visits
only the sequences that finished a hypothesis, so a step costs a few array operations per beam
size in the batch, not a loop over sequences or rows.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from contract.options import Hypothesis, SearchOptions, SequenceResult
from service.decoding.rows import Rows
from service.decoding.search import Choice, Cohort, Scored, choose, step_cohorts
from service.errors import SourceTooLong
from service.runtime.sessions import PackageRuntime

__all__ = ["Encoded", "Engine", "SequenceResult", "check_source"]

log = logging.getLogger("tongyeok.engine")


def check_source(src_ids: Sequence[int], max_source_tokens: int) -> None:
    """The one source-length check: ``src_ids`` plus EOS must fit ``max_source_tokens``."""
    if len(src_ids) + 1 > max_source_tokens:
        raise SourceTooLong(len(src_ids), max_source_tokens - 1)


@dataclass
class ActiveSequence:
    seq_id: Hashable
    options: SearchOptions
    number: int  # what its rows' ``owner`` says (ids may be any hashable; rows hold ints)
    max_length: int
    source_tokens: int = 0  # EOS included
    finished: list[Hypothesis] = field(default_factory=list)

    @property
    def reserved_tokens(self) -> int:
        """Cache positions this sequence may hold at its longest: beams x (source + output)."""
        return self.options.beam_size * (self.source_tokens + self.max_length)


@dataclass(frozen=True)
class Encoded:
    """Sentences through the encoder, not yet in the batch."""

    lengths: list[int]  # source tokens of each, EOS included
    mask: np.ndarray  # (B, S) bool: which source positions are tokens
    cross: list[np.ndarray]  # the decoder's cross keys/values, cross_key.0, cross_value.0, ...


class Engine:
    """Continuous-batching search state over one ``PackageRuntime``."""

    def __init__(self, runtime: PackageRuntime, compact_ratio: float = 0.25) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.compact_ratio = compact_ratio
        self.sequences: dict[Hashable, ActiveSequence] = {}
        self._numbered: dict[int, ActiveSequence] = {}  # the same sequences by ``number``
        self._next_number = 0
        self._reserved = 0
        self._reset_rows()

    # -- state -----------------------------------------------------------------------------------

    def _reset_rows(self) -> None:
        self.runtime.release()
        cfg = self.config
        cross = [
            np.zeros((0, cfg.n_heads, 0, cfg.head_dim), dtype=self.runtime.cache_dtype)
            for _ in range(2 * cfg.decoder_layers)
        ]
        self._set_rows(Rows.empty(self.runtime.empty_cache(0), cross, self.runtime.tensor_ops))

    def _set_rows(self, rows: Rows) -> None:
        self.running = rows
        self._cross_values: list | None = None  # OrtValues of the cross K/V, made at next step
        self._cohorts: tuple[int, list[Cohort]] | None = (
            None  # top-k and cohorts, made at next step
        )

    def _kill(self, rows: np.ndarray) -> None:
        """Rows whose sequence left (the cohorts change with them)."""
        self.running.kill(rows, self.config.pad_id)
        self._cohorts = None

    def reset(self) -> None:
        """Forget every sequence and row (after a failed step)."""
        self.sequences.clear()
        self._numbered.clear()
        self._reserved = 0
        self._reset_rows()

    @property
    def reserved_tokens(self) -> int:
        return self._reserved

    def tokens_for(self, source: Sequence[int], options: SearchOptions) -> int:
        """What ``reserved_tokens`` would grow by if ``source`` joined with ``options``."""
        n = len(source) + 1
        return options.beam_size * (n + options.max_length(n, self.config.max_target_tokens))

    @property
    def rows(self) -> int:
        return len(self.running)

    @property
    def active_rows(self) -> int:
        return int(self.running.alive.sum())

    def __len__(self) -> int:
        return len(self.sequences)

    # -- joining -----------------------------------------------------------------------------------

    def add(
        self, seq_ids: Sequence[Hashable], sources: Sequence[Sequence[int]], options: SearchOptions
    ) -> None:
        """Encode ``sources`` (token ids without EOS) and let them join at the next step."""
        self.join(seq_ids, self.encode(sources), options)

    def encode(self, sources: Sequence[Sequence[int]]) -> Encoded:
        """The encoder pass for ``sources`` (token ids without EOS). It reads no engine state,
        so it may run in another thread while this engine steps (the scheduler overlaps the
        two); ``join`` then lets the sentences into the batch."""
        cfg = self.config
        for source in sources:
            check_source(source, cfg.max_source_tokens)
        rows = [list(s) + [cfg.eos_id] for s in sources]
        width = max((len(r) for r in rows), default=0)
        src = np.full((len(rows), width), cfg.pad_id, dtype=np.int64)
        for i, r in enumerate(rows):
            src[i, : len(r)] = r
        mask = src != cfg.pad_id
        cross = self.runtime.encode(src, mask).cross if rows else []
        return Encoded([len(r) for r in rows], mask, cross)

    def join(self, seq_ids: Sequence[Hashable], encoded: Encoded, options: SearchOptions) -> None:
        """Let encoded sentences into the batch; they decode from the next step on."""
        if len(seq_ids) != len(encoded.lengths):
            raise ValueError(f"{len(seq_ids)} ids for {len(encoded.lengths)} encoded sentences")
        if not seq_ids:
            return
        if len(set(seq_ids)) != len(seq_ids):
            raise ValueError("sequence ids repeat within one join")
        for seq_id in seq_ids:
            if seq_id in self.sequences:
                raise ValueError(f"sequence {seq_id!r} is already active")
        cfg = self.config
        limits = [options.max_length(n, cfg.max_target_tokens) for n in encoded.lengths]
        numbers = range(self._next_number, self._next_number + len(seq_ids))
        self._next_number += len(seq_ids)
        joining = Rows.joining(
            encoded.cross,
            encoded.mask,
            cfg.decoder_start_id,
            self.runtime.empty_cache(1),
            np.array(numbers),
            options,
            np.array(limits),
            self.runtime.tensor_ops,
        )
        if not self.runtime.shared_sources:
            joining = joining.per_row()
        keep = np.flatnonzero(self.running.alive)
        self._set_rows(
            self._sharing_sources(
                self.running.take(keep).without_unused_past(self.runtime.in_place).concat(joining)
            )
        )
        for seq_id, number, limit, n in zip(seq_ids, numbers, limits, encoded.lengths, strict=True):
            seq = ActiveSequence(seq_id, options, number, limit, n)
            self.sequences[seq_id] = self._numbered[number] = seq
            self._reserved += seq.reserved_tokens

    # -- leaving -----------------------------------------------------------------------------------

    def cancel(self, seq_ids: Sequence[Hashable]) -> None:
        """Drop sequences (e.g. their client went away); their rows die at once."""
        for seq_id in seq_ids:
            seq = self.sequences.get(seq_id)
            if seq is not None:
                self._forget(seq)
                self._kill(self.running.owned_by(seq.number))

    def _forget(self, seq: ActiveSequence) -> None:
        del self.sequences[seq.seq_id], self._numbered[seq.number]
        self._reserved -= seq.reserved_tokens

    def _compact(self) -> None:
        keep = np.flatnonzero(self.running.alive)
        if len(keep) == 0:
            self._reset_rows()
            return
        rows = self.running.take(keep).without_unused_past(self.runtime.in_place)
        rows = rows.without_unused_source()
        self._set_rows(self._sharing_sources(rows))

    def _sharing_sources(self, rows: Rows) -> Rows:
        """``rows`` with a sentence's beams sharing its source, where the decoder allows it."""
        return rows.sharing_sources() if self.runtime.shared_sources else rows

    # -- one decoder step --------------------------------------------------------------------------

    def step(self) -> list[SequenceResult]:
        """Run the decoder once over every row; return the sequences that finished."""
        if not self.sequences:
            return []
        batch = self.running
        if self._cohorts is None:  # the same until sequences join or leave
            self._cohorts = step_cohorts(batch, self.config.vocab_size)
        k, cohorts = self._cohorts
        mask = np.concatenate([batch.self_mask, np.ones((self.rows, 1), dtype=bool)], axis=1)
        if self._cross_values is None:  # rebuilt at joins and compactions only
            self._cross_values = [self.runtime.to_device(c) for c in batch.cross]
            if self.runtime.io_binding:  # from now on reshaped there too (service/tensor_ops.py)
                batch.cross = list(self._cross_values)
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
        # What every row continues next step; rows that no sequence owns stay as they are.
        parent = np.arange(self.rows)
        tokens, scores = batch.tokens.copy(), batch.scores.copy()
        results: list[SequenceResult] = []
        ended: list[np.ndarray] = []  # rows of the sequences that finished
        cfg = self.config
        step = Scored(
            batch.scores,
            batch.positions,
            out.logprobs,
            out.ids,
            cfg.eos_id,
            cfg.pad_id,
            cfg.vocab_size,
        )
        for cohort in cohorts:
            for part, choice in self._choices(cohort, step):
                slots = part.slots
                if isinstance(choice, Exception):  # only this sequence's search failed
                    results.append(self._end(self._owner(batch, slots), type(choice).__name__))
                    ended.append(slots.ravel())
                    continue
                parent[slots], tokens[slots], scores[slots] = (
                    choice.parent,
                    choice.tokens,
                    choice.scores,
                )
                done, finished = self._finish(batch, slots, choice)
                results += finished
                ended.append(slots[done].ravel())
        # Next step: every row gathers its parent's cache row (inside the graph) and mask.
        self.running = batch.advanced(out.cache, mask, parent, tokens, scores)
        if results:
            self._kill(np.concatenate(ended))
        if self.rows and (self.rows - self.active_rows) / self.rows > self.compact_ratio:
            self._compact()
        return results

    def _choices(self, cohort: Cohort, step: Scored) -> list[tuple[Cohort, Choice | Exception]]:
        """The search's choice for the sequences of ``cohort``, or, should it fail, for each of
        them alone: one sentence's search failing ends only it."""
        try:
            return [(cohort, choose(cohort, step))]
        except Exception:
            log.warning("search failed for a cohort of %d; deciding one by one", len(cohort.slots))
        decided: list[tuple[Cohort, Choice | Exception]] = []
        for one in cohort.split():
            try:
                decided.append((one, choose(one, step)))
            except Exception as exc:
                seq = self._owner(self.running, one.slots)
                log.exception("search failed for sequence %r", seq.seq_id)
                decided.append((one, exc))
        return decided

    def _finish(
        self, batch: Rows, group: np.ndarray, choice: Choice
    ) -> tuple[list[int], list[SequenceResult]]:
        """Hypotheses that ended this step, as Python objects (only for the sequences that had
        one); which sequences of ``group`` are done, and their results."""
        if not len(choice.touched):
            return [], []
        eos, beam = self.config.eos_id, group.shape[1]
        by_eos: dict[int, list[tuple[int, float]]] = {}  # sequence -> (row it extends, score)
        ended = (choice.eos_sentence, choice.eos_row, choice.eos_score)
        for i, row, score in zip(*(a.tolist() for a in ended), strict=True):
            by_eos.setdefault(i, []).append((row, score))
        touched = choice.touched
        owners = batch.owner[group[touched, 0]].tolist()
        lengths, out_of_budget = choice.length[touched].tolist(), choice.out_of_budget[touched]
        open_ = (choice.parent, choice.tokens, choice.scores)  # (n, K) each
        beams = zip(*(a[touched].tolist() for a in open_), strict=True)
        done: list[int] = []
        results: list[SequenceResult] = []
        for i, owner, length, over, open_beams in zip(
            touched.tolist(), owners, lengths, out_of_budget.tolist(), beams, strict=True
        ):
            seq = self._numbered[owner]
            error: str | None = None
            try:
                norm = seq.options.length_norm(length)
                for row, score in by_eos.get(i, []):
                    tokens = [*batch.generated(row, length - 1), eos]
                    seq.finished.append(Hypothesis(tokens, score / norm, "eos"))
                if over:  # out of budget: open beams end here, unfinished
                    for row, token, score in zip(*open_beams, strict=True):
                        if score > -math.inf:
                            tokens = [*batch.generated(row, length - 1), token]
                            seq.finished.append(Hypothesis(tokens, score / norm, "length"))
                over = over or len(seq.finished) >= beam
            except Exception as exc:  # this sentence's own search failed: only it ends
                log.exception("search failed for sequence %r", seq.seq_id)
                over, error = True, type(exc).__name__
            if over:
                done.append(i)
                results.append(self._end(seq, error))
        return done, results

    def _owner(self, batch: Rows, slots: np.ndarray) -> ActiveSequence:
        """The sequence whose rows are ``slots``."""
        return self._numbered[int(batch.owner[slots.flat[0]])]

    def _end(self, seq: ActiveSequence, error: str | None) -> SequenceResult:
        """The sequence leaves (its rows die with the step): its n-best, or its error."""
        self._forget(seq)
        hyps = [] if error else sorted(seq.finished, key=lambda h: h.score, reverse=True)
        return SequenceResult(seq.seq_id, hyps[: seq.options.nbest], error)

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
