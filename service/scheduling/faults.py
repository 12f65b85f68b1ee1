"""Fault injection for the reliability tests: an engine wrapper that fails, slows or kills decoder
steps on request. Off by default: only ``TONGYEOK_FAULTS`` (a JSON object, ``Settings.faults``)
turns it on, and ``service/scheduling/repository.py`` imports this module only then."""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from contract.options import SearchOptions, SequenceResult
from service.scheduling.batching import EngineLike

log = logging.getLogger("tongyeok.faults")


@dataclass(frozen=True)
class Faults:
    step_raises_every: int = 0  # every Nth decoder step raises (its batch fails with 500)
    step_sleep_seconds: float = 0.0  # every decoder step first sleeps this long (deadlines pass)
    thread_dies_at_step: int = 0  # the Nth step ends the scheduler thread (liveness must see it)

    @classmethod
    def parse(cls, spec: Mapping[str, float]) -> Faults:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {sorted(known)}")
        return cls(
            step_raises_every=int(spec.get("step_raises_every", 0)),
            step_sleep_seconds=float(spec.get("step_sleep_seconds", 0.0)),
            thread_dies_at_step=int(spec.get("thread_dies_at_step", 0)),
        )


class FaultyEngine:
    """``engine`` with ``faults`` injected into its decoder steps (an ``EngineLike`` itself)."""

    def __init__(self, engine: EngineLike, faults: Faults) -> None:
        self.engine, self.faults, self.steps = engine, faults, 0
        log.warning("fault injection is ON: %s", faults)

    def step(self) -> list[SequenceResult]:
        self.steps += 1
        f = self.faults
        if f.step_sleep_seconds:
            time.sleep(f.step_sleep_seconds)
        if f.thread_dies_at_step and self.steps == f.thread_dies_at_step:
            raise SystemExit("fault injection: the scheduler thread dies")  # not an Exception
        if f.step_raises_every and self.steps % f.step_raises_every == 0:
            raise RuntimeError(f"fault injection: decoder step {self.steps} failed")
        return self.engine.step()

    def add(
        self, seq_ids: Sequence[Hashable], sources: Sequence[Sequence[int]], options: SearchOptions
    ) -> None:
        self.engine.add(seq_ids, sources, options)

    def encode(self, sources: Sequence[Sequence[int]]) -> Any:
        return self.engine.encode(sources)

    def join(self, seq_ids: Sequence[Hashable], encoded: Any, options: SearchOptions) -> None:
        self.engine.join(seq_ids, encoded, options)

    def cancel(self, seq_ids: Sequence[Hashable]) -> None:
        self.engine.cancel(seq_ids)

    def reset(self) -> None:
        self.engine.reset()

    def tokens_for(self, source: Sequence[int], options: SearchOptions) -> int:
        return self.engine.tokens_for(source, options)

    @property
    def active_rows(self) -> int:
        return self.engine.active_rows

    @property
    def reserved_tokens(self) -> int:
        return self.engine.reserved_tokens

    @property
    def rows(self) -> int:
        return self.engine.rows

    def __len__(self) -> int:
        return len(self.engine)
