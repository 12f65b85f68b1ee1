"""Decoding options and hypotheses: shared by the PyTorch reference and the ONNX engine.

Torch-free, so that the service can import it.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Literal

# The one default beam: the API, the CLI, the engine and the PyTorch reference all read it here.
DEFAULT_BEAM_SIZE = 4


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
        if self.min_length < 0:
            raise ValueError(f"min_length must be >= 0, got {self.min_length}")
        if self.max_length_a < 0 or self.max_length_b < 1:
            raise ValueError("max_length_a must be >= 0 and max_length_b >= 1")

    def max_length(self, source_tokens: int, cap: int) -> int:
        """Output budget for a source of ``source_tokens`` ids (EOS included)."""
        return max(1, min(int(self.max_length_a * source_tokens + self.max_length_b), cap))


# Why a hypothesis ended: it chose EOS, or its length budget ran out (the API reports it).
FinishReason = Literal["eos", "length"]


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
