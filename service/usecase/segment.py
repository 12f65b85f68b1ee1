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
# Characters that show nothing: a byte-order mark, zero-width spaces and joiners, direction marks,
# the word joiner, a soft hyphen. At a sentence's edges they are kept in its gaps, never sent to
# the model: "\ufeffA dog runs." translates as "A dog runs." does.
INVISIBLE = "\ufeff\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\u00ad"
BOUNDARY = re.compile(
    rf"""(?<=[.!?…])["'”’»)\]{INVISIBLE}]*(\s+)(?=[{INVISIBLE}]*["'“‘«(\[]?[A-ZÀ-ÖØ-Þ0-9가-힣])"""
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


def translatable(sentence: str) -> bool:
    """Whether there is anything to translate: a letter of any script. Digits, punctuation,
    symbols and emoji alone are copied as they are (a model asked to translate "2024" or "👍"
    invents words)."""
    return any(ch.isalpha() for ch in sentence)


def inner(sentence: str) -> tuple[int, int]:
    """Where ``sentence`` starts and ends once whitespace and invisible characters are off its
    edges (in linear time: a long run of spaces is looked at once)."""
    start, end = 0, len(sentence)
    while start < end and (sentence[start].isspace() or sentence[start] in INVISIBLE):
        start += 1
    while end > start and (sentence[end - 1].isspace() or sentence[end - 1] in INVISIBLE):
        end -= 1
    return start, end


def split(text: str) -> Segmented:
    """The sentences of ``text`` worth translating, and everything else in the gaps around them."""
    raw = split_sentences(text)
    sentences: list[str] = []
    gaps = [raw.gaps[0]]
    for sentence, gap in zip(raw.sentences, raw.gaps[1:], strict=True):
        start, end = inner(sentence)
        if not translatable(sentence[start:end]):  # copied: part of the gap around it
            gaps[-1] += sentence + gap
            continue
        gaps[-1] += sentence[:start]
        sentences.append(sentence[start:end])
        gaps.append(sentence[end:] + gap)
    return Segmented(sentences, gaps)


def split_sentences(text: str) -> Segmented:
    """Every sentence of ``text`` where a reader would split it, whitespace in the gaps."""
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
