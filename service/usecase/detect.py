"""Source-language detection for ``source=auto``: which of the served sources a text is written in.

py3langid (a naive Bayes over byte n-grams, BSD-licensed) ships its model inside its wheel, so
nothing is downloaded at run time. Detection is restricted to the candidates (the repository's
source languages) and renormalized over them, as LibreTranslate restricts it to its installed
languages. A text too short or too mixed to decide, or one the full model confidently places in a
language outside the candidates, raises ``AmbiguousLanguage`` (a 400 naming the leading
candidates) instead of guessing a pair.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.errors import ServiceError

# Below this probability (over the candidates) the answer is refused rather than guessed.
DEFAULT_MIN_CONFIDENCE = 0.9
# A language outside the candidates this likely (over every language) is refused, not mapped to
# the nearest candidate (Spanish is not French because only French is served).
OUTSIDE_CONFIDENCE = 0.5


class AmbiguousLanguage(ServiceError):
    """The text's language cannot be told apart among the candidates with enough confidence."""

    status, error_type = 400, "ambiguous_language"


@dataclass(frozen=True)
class Detection:
    language: str
    confidence: float  # probability among the candidates
    ranking: list[tuple[str, float]]  # every candidate, best first


class Detector:
    """One loaded model; a restricted copy per candidate set (py3langid restricts in place)."""

    def __init__(self, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> None:
        self.min_confidence = min_confidence
        self._model: Any = None  # loaded on first use (about a second), not at start-up
        self._known: frozenset[str] = frozenset()  # its languages, read once with it
        self.restricted: dict[frozenset[str], Any] = {}
        self.lock = threading.Lock()

    @property
    def model(self) -> Any:
        with self.lock:
            if self._model is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                self._model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
                self._known = frozenset(self._model.labels)
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

    def rank(self, text: str, candidates: Sequence[str]) -> list[tuple[str, float]]:
        """Every usable candidate with its probability, best first, with no threshold: what
        LibreTranslate's /detect answers (an empty list when none can be told)."""
        usable = frozenset(c for c in candidates if c in self.known)
        if not usable or not any(ch.isalpha() for ch in text):
            return []
        return [(lang, float(p)) for lang, p in self._for(usable).rank(text)]

    def detect(self, text: str, candidates: Sequence[str]) -> Detection:
        """The candidate ``text`` is written in; AmbiguousLanguage when it cannot be told."""
        usable = frozenset(c for c in candidates if c in self.known)
        if not usable:
            raise AmbiguousLanguage(
                f"cannot detect any of {sorted(candidates)}: give the source language"
            )
        if not any(ch.isalpha() for ch in text):
            raise AmbiguousLanguage("no letters to detect a language from: give the source")
        if len(usable) == 1:
            (only,) = usable
            return Detection(only, 1.0, [(only, 1.0)])
        overall, share = self.model.rank(text)[0]  # among every language the model knows
        if overall not in usable and share >= OUTSIDE_CONFIDENCE:
            raise AmbiguousLanguage(
                f"the text looks like {overall!r}, which no model translates from "
                f"(sources: {', '.join(sorted(usable))})"
            )
        ranking = [(lang, float(p)) for lang, p in self._for(usable).rank(text)]
        best, confidence = ranking[0]
        if confidence < self.min_confidence:
            leading = ", ".join(f"{lang} {p:.0%}" for lang, p in ranking[:2])
            raise AmbiguousLanguage(
                f"the source language is ambiguous ({leading}): give the source language"
            )
        return Detection(best, confidence, ranking)
