"""Decoding options and hypotheses: shared by the PyTorch reference and the ONNX engine.

Torch-free, so that the service can import it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import Field, dataclass, field, fields
from typing import Any, Literal


def option(
    default: float,
    *,
    low: float,
    high: float = math.inf,
    help: str,
    on: tuple[str, ...] = ("api", "cli"),
) -> Any:
    """A decoding option's one declaration, as a ``SearchOptions`` field: its default, its
    bounds and its help. The native API's request fields and their 422s, the CLI's flags and the
    check in ``__post_init__`` are all derived from it; ``on`` says where it is offered ("api":
    the native API, "cli": the translate and evaluate commands; none: engine-internal)."""
    return field(default=default, metadata={"option": (low, high, help, on)})


@dataclass(frozen=True, kw_only=True)
class SearchOptions:
    """How to decode one sentence; invalid values raise ValueError (the API maps it to 422).
    Built by keyword only, so that a new option cannot land in another's slot."""

    beam_size: int = option(4, low=1, help="beams per sentence; 1 = greedy")
    length_penalty: float = option(
        1.0,
        low=0.0,
        high=10.0,  # length ** 10 stays far from overflow
        help="a hypothesis scores sum log p / length ** length_penalty",
    )
    max_length_a: float = option(
        1.5, low=0.0, high=10.0, help="output budget a * source_tokens + b: a"
    )
    # Above any model's target limit, which caps the budget anyway.
    max_length_b: int = option(10, low=1, high=1024, help="output budget a * source_tokens + b: b")
    nbest: int = option(
        1, low=1, help="hypotheses returned per text (at most beam_size)", on=("api",)
    )
    # EOS is refused before this many tokens: benchmarks force output lengths with it.
    min_length: int = option(0, low=0, high=1024, help="no EOS before this many tokens", on=())

    def __post_init__(self) -> None:
        for spec in OPTIONS:
            within(spec.name, getattr(self, spec.name), spec.low, spec.high)
        if self.nbest > self.beam_size:
            raise ValueError(f"nbest must be in [1, beam_size={self.beam_size}], got {self.nbest}")

    @classmethod
    def of(cls, values: object) -> SearchOptions:
        """The options named as attributes of ``values`` (a request body, parsed CLI flags);
        defaults for the rest."""
        return cls(**{o.name: getattr(values, o.name) for o in OPTIONS if hasattr(values, o.name)})

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


@dataclass(frozen=True)
class Option:
    """One option as declared on ``SearchOptions``, for the code that derives from it."""

    name: str
    kind: type[int] | type[float]
    default: int | float
    low: float
    high: float  # math.inf: bounded elsewhere (beam_size by the server's max_beam_size)
    help: str
    on: tuple[str, ...]


def declared(declaration: Field[Any]) -> Option:
    default: int | float = declaration.default  # type: ignore[assignment]  # always given
    return Option(declaration.name, type(default), default, *declaration.metadata["option"])


OPTIONS: tuple[Option, ...] = tuple(declared(f) for f in fields(SearchOptions))
OPTION = {o.name: o for o in OPTIONS}
DEFAULT_BEAM_SIZE = int(OPTION["beam_size"].default)
MAX_LENGTH_PENALTY = OPTION["length_penalty"].high


# Why a hypothesis ended: it chose EOS, or its length budget ran out (the API reports it).
FinishReason = Literal["eos", "length"]


def within(name: str, value: float, low: float, high: float) -> None:
    """ValueError naming the bounds unless ``low <= value <= high`` (NaN and infinities fail,
    and so does a bool: it is no number of beams)."""
    finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if not (finite and not isinstance(value, bool) and low <= value <= high):
        raise ValueError(f"{name} must be {bounds_text(low, high)}, got {value!r}")


def bounds_text(low: float, high: float) -> str:
    """``in [low, high]``, or ``>= low`` where the option is bounded elsewhere."""
    return f"in [{low:g}, {high:g}]" if high < math.inf else f">= {low:g}"


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
