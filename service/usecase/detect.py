"""Source-language detection: a text's language over every language the model knows, and what
that says about the sources served.

py3langid (a naive Bayes over byte n-grams, BSD-licensed) ships its model inside its wheel, so
nothing is downloaded at run time; it was chosen over lingua and fastText's lid.176 by
measurement (``python -m bench.detectors``, docs/decisions.md, 44). It weighs about 140
languages, and every confidence given out is a language's share over all of them, never
renormalized over the served sources alone: with only English served, German text gives
English about 0%, not 100%.

- ``rank``: the served sources with their shares (LibreTranslate's /detect).
- ``detect``: the served source a text is written in (``source=auto``); AmbiguousLanguage (a
  400 naming the leading candidates) when it cannot be told, or when the text clearly is in a
  language no model translates from, instead of guessing a pair.
- ``mismatch``: a text clearly not in the source it was sent with (the native API's warning).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.errors import ServiceError

# Detection reads this much of a request: enough to decide, bounded so it stays ~a millisecond.
DETECT_CHARS = 2000
# ... and this much of each text when checking it against its source (two or three sentences).
CHECK_CHARS = 200
# Below this probability (over the candidates) source=auto refuses rather than guesses.
DEFAULT_MIN_CONFIDENCE = 0.9
# A language outside the candidates this likely (over every language) is refused, not mapped to
# the nearest candidate (Spanish is not French because only French is served).
OUTSIDE_CONFIDENCE = 0.5
# A text is clearly not in a language whose share is below this, once it has MIN_LETTERS
# letters: no false alarm on 1,200 texts of 3 words or more in 8 languages, 94-100% of the
# wrong sources caught (docs/decisions.md, 44). Shorter texts are never judged.
NOT_SOURCE_SHARE = 0.01
MIN_LETTERS = 12

LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "cs": "Czech",
    "ko": "Korean",
    "ja": "Japanese",
    "zh": "Chinese",
    "pt": "Portuguese",
    "ru": "Russian",
    "nl": "Dutch",
    "zxx": "no language",  # py3langid's label for text with no linguistic content
}


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


class AmbiguousLanguage(ServiceError):
    """The text's language cannot be told apart among the candidates with enough confidence."""

    status, error_type = 400, "ambiguous_language"


@dataclass(frozen=True)
class Detection:
    language: str  # the candidate chosen
    confidence: float  # its share over every language the model weighs


@dataclass(frozen=True)
class Mismatch:
    """A text clearly not in its source: the language it looks like instead, and how sure."""

    detected: str
    confidence: float


def letters(text: str, enough: int = MIN_LETTERS) -> int:
    """How many letters ``text`` has, counted up to ``enough`` (a long text stops early)."""
    count = 0
    for ch in text:
        if ch.isalpha():
            count += 1
            if count >= enough:
                break
    return count


class Detector:
    """One loaded model; a restricted copy per candidate set (py3langid restricts in place)."""

    def __init__(self, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> None:
        self.min_confidence = min_confidence
        self._model: Any = None  # loaded at the server's start-up (about a second), or first use
        self._known: frozenset[str] = frozenset()  # its languages, read once with it
        self._column: dict[str, int] = {}  # each language's column in its probabilities
        self.restricted: dict[frozenset[str], Any] = {}
        self.lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        self.model  # noqa: B018 - loads it

    @property
    def model(self) -> Any:
        with self.lock:
            if self._model is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                self._known = frozenset(model.labels)
                for i, lang in enumerate(model.nb_classes):  # an alias's score is in its first
                    self._column.setdefault(lang, i)
                self._model = model
            return self._model

    @property
    def known(self) -> frozenset[str]:
        """The languages the model knows (a set built once, not on every request)."""
        self.model  # noqa: B018 - loads the model (and the set) on first use
        return self._known

    def _for(self, candidates: frozenset[str]) -> Any:
        base = self.model
        with self.lock:
            model = self.restricted.get(candidates)
            if model is None:
                model = copy.copy(base)
                model.set_languages(sorted(candidates))
                self.restricted[candidates] = model
            return model

    def shares(self, text: str) -> list[tuple[str, float]]:
        """Every language the model knows with its probability, best first; empty when the
        text has no letters to tell a language by."""
        if not any(ch.isalpha() for ch in text):
            return []
        return [(lang, float(p)) for lang, p in self.model.rank(text[:DETECT_CHARS])]

    def rank(self, text: str, candidates: Sequence[str]) -> list[tuple[str, float]]:
        """Every usable candidate with its share over all languages, best first, with no
        threshold: what LibreTranslate's /detect answers (an empty list when none can be told).
        The shares need not add up to 1: the rest went to languages no candidate is."""
        usable = frozenset(c for c in candidates if c in self.known)
        return [(lang, p) for lang, p in self.shares(text) if lang in usable]

    def foreign(
        self, text: str, shares: list[tuple[str, float]], candidates: frozenset[str]
    ) -> tuple[str, float] | None:
        """The model's best language when ``text`` clearly is none of ``candidates`` (long
        enough to judge, and every candidate's share under NOT_SOURCE_SHARE), else None."""
        if not shares or letters(text) < MIN_LETTERS:
            return None
        if any(p >= NOT_SOURCE_SHARE for lang, p in shares if lang in candidates):
            return None
        return shares[0]

    def mismatch(self, text: str, source: str) -> Mismatch | None:
        """What ``text`` looks like when it clearly is not in ``source``; None when it is, when
        it is too short or letterless to judge, or when the model does not know ``source``."""
        sample = text[:CHECK_CHARS]
        if letters(sample) < MIN_LETTERS or source not in self.known:
            return None
        # The probabilities ``rank`` would sort into a list of pairs: this runs on every text
        # of every native request, and the sort and the pairs were half its time (py3langid is
        # pinned exactly in constraints.txt; test_detect.py checks the two agree).
        probabilities = self.model._decide(sample)
        if probabilities[self._column[source]] >= NOT_SOURCE_SHARE:
            return None
        best = int(probabilities.argmax())
        return Mismatch(self.model.nb_classes[best], float(probabilities[best]))

    def detect(self, text: str, candidates: Sequence[str]) -> Detection:
        """The candidate ``text`` is written in; AmbiguousLanguage when it cannot be told. With
        one candidate it is the answer unless the text clearly is another language."""
        usable = frozenset(c for c in candidates if c in self.known)
        if not usable:
            raise AmbiguousLanguage(
                f"cannot detect any of {sorted(candidates)}: give the source language"
            )
        text = text[:DETECT_CHARS]
        shares = self.shares(text)
        outside = self.foreign(text, shares, usable)
        if outside is None and len(usable) > 1 and shares:
            overall, share = shares[0]
            if overall not in usable and share >= OUTSIDE_CONFIDENCE:
                outside = overall, share
        if outside is not None:
            lang, share = outside
            served = ", ".join(f"{language_name(c)} ({c})" for c in sorted(usable))
            raise AmbiguousLanguage(
                f"the text does not look like any source served ({served}); it looks most like "
                f"{language_name(lang)} ({lang!r}, {share:.0%}): give the source to translate "
                "it anyway"
            )
        overall_share = dict(shares)
        if len(usable) == 1:
            (only,) = usable
            return Detection(only, overall_share.get(only, 0.0))
        if not shares:
            raise AmbiguousLanguage("no letters to detect a language from: give the source")
        ranking = [(lang, float(p)) for lang, p in self._for(usable).rank(text)]
        best, confidence = ranking[0]
        if confidence < self.min_confidence:
            leading = ", ".join(f"{lang} {p:.0%}" for lang, p in ranking[:2])
            raise AmbiguousLanguage(
                f"the source language is ambiguous among the sources ({leading}): give it"
            )
        return Detection(best, overall_share.get(best, 0.0))
