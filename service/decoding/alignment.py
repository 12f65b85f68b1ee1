"""Which source words each target word came from: the aligner graph's attention, summed by word.

Inline tags are put back by it (service/usecase/markup.py), the way Bergamot places them and
CTranslate2's ``return_attention`` exposes it: a sentence is translated whole, then the target is
forced through the decoder once more (the aligner graph, contract/spec.py) and the attention of one
layer says where each target token looked. Words are what tags wrap, so tokens are grouped into
words: a piece that starts with ``▁`` starts one, and words are what whitespace separates in the
text, so a word's index is the same here and in the markup layer (``words``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from contract.marian import SPIECE_UNDERLINE, language_token
from contract.tokenizers import TextTokenizer
from service.runtime.sessions import PackageRuntime

WORD = re.compile(r"\S+")
# Pairs aligned in one run of the aligner: bounds the (B, T, S) attention it returns.
ALIGN_BATCH = 16


def words(text: str) -> list[tuple[int, int]]:
    """The character spans of ``text``'s words (whitespace, Unicode's included, separates them)."""
    return [m.span() for m in WORD.finditer(text)]


@dataclass(frozen=True)
class WordAlignment:
    """``weights[t, s]``: the share of target word t's attention on source word s (rows sum to
    1, or to 0 for a target word that looked only at the end of the source)."""

    weights: np.ndarray  # (target words, source words)


def strongest_run(indices: Sequence[int], weight: Callable[[int], float]) -> list[int]:
    """Of the runs of consecutive ``indices`` (ascending, not empty), the one whose summed
    ``weight`` is largest: where a tag or a glossary term goes, so that a word elsewhere that
    glanced at the source does not stretch it over the words between."""
    runs: list[list[int]] = [[indices[0]]]
    for t in indices[1:]:
        if t == runs[-1][-1] + 1:
            runs[-1].append(t)
        else:
            runs.append([t])
    return max(runs, key=lambda run: sum(weight(t) for t in run))


def word_index(pieces: Sequence[str]) -> list[int]:
    """The word each piece belongs to, -1 for a language token (``>>kor<<``) that is no word."""
    out, current = [], -1
    for piece in pieces:
        if language_token(piece):
            out.append(-1)
            continue
        if piece.startswith(SPIECE_UNDERLINE) or current < 0:
            current += 1
        out.append(current)
    return out


def by_word(index: Sequence[int], count: int) -> np.ndarray:
    """(tokens, words) 0/1 matrix of which word each token belongs to."""
    matrix = np.zeros((len(index), count), dtype=np.float32)
    for token, word in enumerate(index):
        if 0 <= word < count:
            matrix[token, word] = 1.0
    return matrix


def align_words(
    runtime: PackageRuntime,
    tokenizer: TextTokenizer,
    pairs: Sequence[tuple[str, str]],
    max_tokens: int,
) -> list[WordAlignment | None]:
    """The word alignment of each (source, translation) pair; None where it cannot be told: the
    package has no aligner, a side is longer than ``max_tokens``, or the tokenizer's words are not
    the text's words (a character the tokenizer reads as a space)."""
    if runtime.aligner is None:
        return [None] * len(pairs)
    config = runtime.config
    prepared: list[tuple[int, list[int], list[int], np.ndarray, np.ndarray] | None] = []
    for i, (source, target) in enumerate(pairs):
        src_pieces = tokenizer.pieces(source)
        tgt_ids = tokenizer.encode_target(target)
        src_words, tgt_words = (
            word_index(src_pieces),
            word_index([tokenizer.piece(t) for t in tgt_ids]),
        )
        n_src, n_tgt = len(words(source)), len(words(target))
        fits = 0 < len(src_pieces) < max_tokens and 0 < len(tgt_ids) < max_tokens
        if not fits or max(src_words, default=-1) + 1 != n_src or tgt_words[-1] + 1 != n_tgt:
            prepared.append(None)
            continue
        src_ids = tokenizer.encode(source) + [config.eos_id]
        prepared.append((i, src_ids, tgt_ids, by_word(src_words, n_src), by_word(tgt_words, n_tgt)))
    out: list[WordAlignment | None] = [None] * len(pairs)
    ready = [p for p in prepared if p is not None]
    for start in range(0, len(ready), ALIGN_BATCH):
        batch = ready[start : start + ALIGN_BATCH]
        src = padded([b[1] for b in batch], config.pad_id)
        tgt = padded([[config.decoder_start_id, *b[2]] for b in batch], config.pad_id)
        attention = runtime.align(src, src != config.pad_id, tgt)  # (B, T + 1, S)
        for row, (i, src_ids, tgt_ids, src_by_word, tgt_by_word) in enumerate(batch):
            # Row t is the position that predicts target token t (its input is token t - 1): the
            # alignment CTranslate2 returns; the source's EOS column is no word.
            tokens = attention[row, : len(tgt_ids), : len(src_ids) - 1]
            per_word = tgt_by_word.T @ tokens @ src_by_word  # (target words, source words)
            counts = tgt_by_word.sum(axis=0)[:, None]
            out[i] = WordAlignment(per_word / np.maximum(counts, 1.0))
    return out


def padded(rows: Sequence[Sequence[int]], pad: int) -> np.ndarray:
    width = max(len(r) for r in rows)
    array = np.full((len(rows), width), pad, dtype=np.int64)
    for i, r in enumerate(rows):
        array[i, : len(r)] = r
    return array
