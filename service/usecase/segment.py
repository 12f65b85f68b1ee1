"""Split texts into sentences for translation and join the translations back, spacing intact.

``split(text)`` returns the sentences and the exact whitespace around them, so that
``join(split(text))`` gives back ``text`` byte for byte: newlines and paragraph breaks survive
translation, and nothing is dropped or truncated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! ? … (with closing quotes or brackets) followed by whitespace and a
# capital letter, digit, Hangul syllable or opening quote; at 。！？ (Chinese, Japanese; no space
# needed); or at a line break. Abbreviations that take a capital after them ("Dr. Smith",
# "e.g. Paris") are kept whole.
#
# Every alternative runs in linear time: a match may start only where a whitespace run starts
# (``(?<!\s)``) or right after sentence-ending punctuation, so no run of whitespace is rescanned
# from each of its positions (``\s*\n\s*`` alone is quadratic: docs/decisions.md #42).
ABBREVIATIONS = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "st",
    "jr",
    "sr",
    "vs",
    "etc",
    "e.g",
    "i.e",
    "z.b",
    "bzw",
    "ca",
    "nr",
    "u.a",
    "mme",
    "mlle",
    "m",
}
BOUNDARY = re.compile(
    r"""(?<=[.!?…])["'”’»)\]]*(\s+)(?=["'“‘«(\[]?[A-ZÀ-ÖØ-Þ0-9가-힣])"""
    r"""|(?<=[。！？])[」』）"”’]*(\s*)(?=[^\s。！？.!?」』）"”’])"""
    r"""|(?<!\s)(\s*\n\s*)"""
)


@dataclass(frozen=True)
class Segmented:
    sentences: list[str]
    gaps: list[str]  # len(sentences) + 1: before the first, between, after the last

    def join(self, translations: list[str]) -> str:
        if len(translations) != len(self.sentences):
            raise ValueError("one translation per sentence is needed")
        out = [self.gaps[0]]
        for sentence, gap in zip(translations, self.gaps[1:], strict=True):
            out += [sentence, gap]
        return "".join(out)


def last_word(text: str, start: int, end: int) -> str:
    """The word before ``end`` (from ``start`` on), lower-cased, dots stripped; looks only at a
    short tail, which is all an abbreviation needs, so skipping many abbreviations stays linear."""
    tail = text[max(start, end - 12) : end].rsplit(None, 1)
    return tail[-1].rstrip(".").lower() if tail else ""


def split(text: str) -> Segmented:
    stripped = text.strip()
    if not stripped:
        return Segmented([], [text])
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    sentences, gaps, start = [], [lead], 0
    for match in BOUNDARY.finditer(stripped):
        group = next(g for g in (1, 2, 3) if match.group(g) is not None)
        gap_start, gap_end = match.span(group)
        if group == 1 and last_word(stripped, start, gap_start) in ABBREVIATIONS:
            continue
        candidate = stripped[start:gap_start]
        if candidate:
            sentences.append(candidate)
            gaps.append(stripped[gap_start:gap_end])
            start = gap_end
    sentences.append(stripped[start:])
    gaps.append(trail)
    return Segmented(sentences, gaps)
