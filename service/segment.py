"""Split texts into sentences for translation and join the translations back, spacing intact.

``split(text)`` returns the sentences and the exact whitespace around them, so that
``join(split(text))`` gives back ``text`` byte for byte: newlines and paragraph breaks survive
translation, and nothing is dropped or truncated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A sentence ends at . ! ? … (with closing quotes or brackets) followed by whitespace and a
# capital letter, digit or opening quote; or at a line break. Abbreviations that take a capital
# after them ("Dr. Smith", "e.g. Paris") are kept whole.
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
BOUNDARY = re.compile(r"""(?<=[.!?…])["'”’»)\]]*(\s+)(?=["'“‘«(\[]?[A-ZÀ-ÖØ-Þ0-9])|(\s*\n\s*)""")


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


def split(text: str) -> Segmented:
    stripped = text.strip()
    if not stripped:
        return Segmented([], [text])
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    sentences, gaps, start = [], [lead], 0
    for match in BOUNDARY.finditer(stripped):
        gap_start, gap_end = match.span(1) if match.group(1) is not None else match.span(2)
        candidate = stripped[start:gap_start]
        last_word = candidate.rsplit(None, 1)[-1].rstrip(".").lower() if candidate else ""
        if match.group(1) is not None and last_word in ABBREVIATIONS:
            continue
        if candidate:
            sentences.append(candidate)
            gaps.append(stripped[gap_start:gap_end])
            start = gap_end
    sentences.append(stripped[start:])
    gaps.append(trail)
    return Segmented(sentences, gaps)
