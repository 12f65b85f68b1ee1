"""Decoding options and hypotheses: shared by the PyTorch reference and the ONNX engine.

Torch-free, so that the service can import it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

# The one default beam: the API, the CLI, the engine and the PyTorch reference all read it here.
DEFAULT_BEAM_SIZE = 4

# Bounds that keep every option finite and every length computation in range (the API's 422s
# name them): lengths are capped by the model anyway, and length ** 10 stays far from overflow.
MAX_LENGTH_PENALTY = 10.0
MAX_LENGTH_A = 100.0
MAX_LENGTH_B = 10_000
MAX_MIN_LENGTH = 10_000


@dataclass(frozen=True)
class SearchOptions:
    """How to decode one sentence; invalid values raise ValueError (the API maps it to 422)."""

    beam_size: int = DEFAULT_BEAM_SIZE  # 1 = greedy
    length_penalty: float = 1.0  # hypothesis score = sum log p / length ** length_penalty
    max_length_a: float = 1.5  # a hypothesis has at most a * source_tokens + b tokens
    max_length_b: int = 10
    nbest: int = 1
    min_length: int = 0  # EOS is not allowed before this many tokens (benchmarks force lengths)

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if not 1 <= self.nbest <= self.beam_size:
            raise ValueError(f"nbest must be in [1, beam_size={self.beam_size}], got {self.nbest}")
        within("min_length", self.min_length, 0, MAX_MIN_LENGTH)
        within("length_penalty", self.length_penalty, 0.0, MAX_LENGTH_PENALTY)
        within("max_length_a", self.max_length_a, 0.0, MAX_LENGTH_A)
        within("max_length_b", self.max_length_b, 1, MAX_LENGTH_B)

    def max_length(self, source_tokens: int, cap: int) -> int:
        """Output budget for a source of ``source_tokens`` ids (EOS included), at most ``cap``."""
        budget = self.max_length_a * source_tokens + self.max_length_b
        return max(1, min(int(budget), cap) if budget < cap else cap)  # False for inf and NaN

    def length_norm(self, length: int) -> float:
        """What a hypothesis of ``length`` tokens divides its log-probability by; infinity
        rather than an OverflowError should a penalty out of bounds get this far."""
        try:
            return float(length) ** self.length_penalty
        except OverflowError:
            return math.inf


# Why a hypothesis ended: it chose EOS, or its length budget ran out (the API reports it).
FinishReason = Literal["eos", "length"]


def within(name: str, value: float, low: float, high: float) -> None:
    """ValueError naming the bounds unless ``low <= value <= high`` (NaN and infinities fail)."""
    if not (isinstance(value, int | float) and low <= value <= high):
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class Hypothesis:
    """One output sentence as token ids, with its score and why it ended."""

    tokens: list[int]  # generated ids, ending with EOS unless the length limit cut it
    score: float  # log-probability / length ** length_penalty
    finish_reason: FinishReason  # decided where the search ends it, read by everyone else


@dataclass(frozen=True)
class SequenceResult:
    """One finished sentence of a decoding engine: its n-best, or why it failed (the other
    sentences of the batch carry on: one sentence's failure is its own request's)."""

    seq_id: Hashable
    hypotheses: list[Hypothesis]  # nbest, best first; empty when ``error`` is set
    error: str | None = None

    @property
    def best(self) -> Hypothesis:
        return self.hypotheses[0]
