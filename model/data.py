"""Parallel text: read sentence pairs, filter them, and group them into token-based batches.

Readers fail loudly with the file and line at fault (mismatched line counts, undecodable bytes,
empty files) rather than training on silently misaligned data.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from model.lines import DataError, read_lines  # torch-free: `tongyeok evaluate` reads with them


def read_parallel(source: str | Path, target: str | Path | None = None) -> list[tuple[str, str]]:
    """Sentence pairs from two line-aligned files, or from one TSV file when ``target`` is None."""
    if target is None:
        pairs = []
        for number, line in enumerate(read_lines(source), start=1):
            columns = line.split("\t")
            if len(columns) != 2:
                raise DataError(
                    f"{source}:{number}: expected 2 tab-separated columns, found {len(columns)}"
                )
            pairs.append((columns[0], columns[1]))
        return pairs
    src_lines, tgt_lines = read_lines(source), read_lines(target)
    if len(src_lines) != len(tgt_lines):
        raise DataError(
            f"line counts differ: {source} has {len(src_lines)} lines, "
            f"{target} has {len(tgt_lines)}"
        )
    return list(zip(src_lines, tgt_lines, strict=True))


@dataclass(frozen=True)
class FilterReport:
    kept: int
    empty: int
    too_long: int

    def __str__(self) -> str:
        return f"kept {self.kept} pairs, dropped {self.empty} empty and {self.too_long} overlong"


@dataclass(frozen=True)
class Example:
    src: list[int]
    tgt: list[int]  # ends with EOS


def build_examples(
    pairs: Sequence[tuple[str, str]],
    encode: Callable[[str], list[int]],
    eos_id: int,
    max_tokens: int,
) -> tuple[list[Example], FilterReport]:
    """Tokenize pairs (EOS appended to both sides), dropping empty and overlong ones."""
    examples, empty, too_long = [], 0, 0
    for src_text, tgt_text in pairs:
        if not src_text.strip() or not tgt_text.strip():
            empty += 1
            continue
        src, tgt = encode(src_text) + [eos_id], encode(tgt_text) + [eos_id]
        if len(src) > max_tokens or len(tgt) > max_tokens:
            too_long += 1
            continue
        examples.append(Example(src, tgt))
    return examples, FilterReport(len(examples), empty, too_long)


@dataclass
class Batch:
    src: Tensor  # (B, S) padded source ids, ending with EOS
    tgt_in: Tensor  # (B, T) start token + target
    tgt_out: Tensor  # (B, T) target + EOS
    n_tokens: int  # non-pad target tokens

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            self.src.to(device), self.tgt_in.to(device), self.tgt_out.to(device), self.n_tokens
        )


def pad(rows: Sequence[Sequence[int]], pad_id: int) -> Tensor:
    out = torch.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def collate(examples: Sequence[Example], pad_id: int, start_id: int) -> Batch:
    tgt_in = [[start_id] + ex.tgt[:-1] for ex in examples]
    return Batch(
        src=pad([ex.src for ex in examples], pad_id),
        tgt_in=pad(tgt_in, pad_id),
        tgt_out=pad([ex.tgt for ex in examples], pad_id),
        n_tokens=sum(len(ex.tgt) for ex in examples),
    )


def token_batches(
    examples: Sequence[Example], max_tokens: int, seed: int, epoch: int
) -> list[list[int]]:
    """Indices of examples grouped so that rows x longest side <= ``max_tokens``.

    Examples are sorted by length (ties broken randomly) so batches have little padding, then the
    batches are shuffled. The order depends only on (seed, epoch), which makes resuming exact.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = sorted(
        range(len(examples)),
        key=lambda i: (len(examples[i].src), len(examples[i].tgt), rng.random()),
    )
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        size = max(len(examples[i].src), len(examples[i].tgt) + 1)
        if current and max(longest, size) * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, size)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def iterate_batches(
    examples: Sequence[Example], batches: Sequence[Sequence[int]], pad_id: int, start_id: int
) -> Iterator[Batch]:
    for indices in batches:
        yield collate([examples[i] for i in indices], pad_id, start_id)
