"""Source-language detection among the served sources: English, German, French and Korean."""

from __future__ import annotations

import pytest

from service.usecase.detect import AmbiguousLanguage, Detector

CANDIDATES = ["en", "de", "fr", "ko"]
CLEAR = {
    "Two dogs are running through the green grass.": "en",
    "The house is red.": "en",
    "Zwei Hunde laufen über die grüne Wiese.": "de",
    "Wo ist der Bahnhof?": "de",
    "Deux chiens courent dans l'herbe verte.": "fr",
    "La maison est rouge.": "fr",
    "개 두 마리가 푸른 잔디 위를 달리고 있다.": "ko",
    "안녕하세요, 만나서 반갑습니다.": "ko",
    "서울": "ko",
}


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


@pytest.mark.parametrize(("text", "language"), CLEAR.items())
def test_clear_texts(detector: Detector, text: str, language: str) -> None:
    result = detector.detect(text, CANDIDATES)
    assert result.language == language
    assert result.confidence >= 0.9
    assert [lang for lang, _ in result.ranking] == sorted(
        CANDIDATES, key=dict(result.ranking).__getitem__, reverse=True
    )


def test_only_the_candidates_are_considered(detector: Detector) -> None:
    """German text with only en and ko served: not German, so no confident answer is made up."""
    assert detector.detect("개 두 마리가 달리고 있다.", ["en", "ko"]).language == "ko"
    with pytest.raises(AmbiguousLanguage):
        detector.detect("Zwei Hunde laufen über die grüne Wiese.", ["en", "ko"])


@pytest.mark.parametrize("text", ["OK", "Hotel", "Taxi", "2024", "", "   ", "!?"])
def test_short_or_letterless_text_is_ambiguous(detector: Detector, text: str) -> None:
    with pytest.raises(AmbiguousLanguage) as info:
        detector.detect(text, CANDIDATES)
    assert info.value.status == 400 and info.value.error_type == "ambiguous_language"


def test_a_language_no_model_translates_is_refused(detector: Detector) -> None:
    with pytest.raises(AmbiguousLanguage, match="looks like 'es'"):
        detector.detect("¿Dónde está la estación de tren?", CANDIDATES)


def test_one_candidate_and_unknown_codes(detector: Detector) -> None:
    assert detector.detect("Hello there", ["en", "xx"]).language == "en"
    with pytest.raises(AmbiguousLanguage, match="cannot detect any of"):
        detector.detect("Hello there", ["xx"])


def test_rank_lists_every_candidate_without_a_threshold(detector: Detector) -> None:
    ranking = detector.rank("Ich bin müde und gehe schlafen.", CANDIDATES)
    assert ranking[0][0] == "de" and len(ranking) == 4
    assert sum(p for _, p in ranking) == pytest.approx(1.0, abs=1e-6)
    assert detector.rank("1234 !!", CANDIDATES) == []


def test_the_model_loads_on_first_use() -> None:
    detector = Detector()
    assert detector._model is None
    assert detector.detect("Ich bin müde und gehe schlafen.", CANDIDATES).language == "de"
    assert detector.detect("저는 피곤해서 자러 갑니다.", CANDIDATES).language == "ko"
