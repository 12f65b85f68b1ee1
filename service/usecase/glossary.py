"""A glossary's terms put into translations: found in the source, replaced where they went.

Chosen by measurement (docs/decisions.md #52) among the three ways the issue names: a sentence
that holds no source term is translated exactly as without a glossary (same cache, same speed);
one that holds some is translated as usual, aligned by the model's attention
(service/decoding/alignment.py, as tags are), and the target words its term looked at are
replaced by the glossary's target term, the words around them left as the model wrote them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.decoding.alignment import WordAlignment, strongest_run, words

EDGE_PUNCTUATION = ".,;:!?…()[]{}\"'«»„“”‘’¡¿。、，．！？：；「」『』"


def word_key(word: str) -> str:
    """How a source word is matched: case-folded, its edge punctuation off."""
    return word.strip(EDGE_PUNCTUATION).casefold()


@dataclass(frozen=True)
class Match:
    first: int  # the source words first..last (inclusive) are the term
    last: int
    target: str


class Terms:
    """A dictionary's entries, indexed for matching whole words: longest term first."""

    def __init__(self, entries: dict[str, str]) -> None:
        self.index: dict[tuple[str, ...], str] = {}
        for source, target in entries.items():
            key = tuple(word_key(w) for w in source.split())
            if key and all(key):
                self.index.setdefault(key, target)
        self.longest = max((len(k) for k in self.index), default=0)

    def find(self, sentence: str) -> list[Match]:
        """The terms in ``sentence``, left to right, never overlapping."""
        keys = [word_key(sentence[a:b]) for a, b in words(sentence)]
        found: list[Match] = []
        i = 0
        while i < len(keys):
            for n in range(min(self.longest, len(keys) - i), 0, -1):
                target = self.index.get(tuple(keys[i : i + n]))
                if target is not None:
                    found.append(Match(i, i + n - 1, target))
                    i += n
                    break
            else:
                i += 1
        return found


def apply_terms(translation: str, matches: Sequence[Match], alignment: WordAlignment) -> str:
    """``translation`` with the words each term looked at replaced by the term's target (the
    run of consecutive target words whose attention falls most on the term; at least the one
    word that looks at it most); a target already there is left alone."""
    spans = words(translation)
    weights = alignment.weights
    if weights.shape[0] != len(spans) or not spans:
        return translation
    owner = weights.argmax(axis=1) if weights.shape[1] else None
    replaced: list[tuple[int, int, str]] = []  # (first, last) target words, the term
    taken: set[int] = set()
    for match in matches:
        if match.target.casefold() in translation.casefold():
            continue
        mass = weights[:, match.first : match.last + 1].sum(axis=1)
        mine = [
            t
            for t in range(len(spans))
            if owner is not None and match.first <= owner[t] <= match.last and t not in taken
        ]
        if not mine:
            free = [t for t in range(len(spans)) if t not in taken]
            if not free:
                continue
            mine = [max(free, key=lambda t: mass[t])]
        best = strongest_run(mine, [float(m) for m in mass].__getitem__)
        taken.update(best)
        replaced.append((best[0], best[-1], match.target))
    out, last = [], 0
    for first, final, target in sorted(replaced):
        start, end = spans[first][0], spans[final][1]
        word = translation[start:end]
        lead = len(word) - len(word.lstrip(EDGE_PUNCTUATION))
        trail = len(word) - len(word.rstrip(EDGE_PUNCTUATION))
        out.append(translation[last : start + lead])
        out.append(target)
        last = end - trail if end - trail > start + lead else end
    out.append(translation[last:])
    return "".join(out)
