"""Source-language detection: among the served sources for source=auto, and honest about what it
weighed (every share is over all the languages the model knows), and the check of a text
against the source it was sent with."""

from __future__ import annotations

import pytest

from service.usecase.detect import (
    CHECK_CHARS,
    MIN_LETTERS,
    AmbiguousLanguage,
    Detector,
    Mismatch,
)

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
# The cases: with one source (en) served, each was answered "en 100%".
GERMAN = "Zwei Hunde laufen über die grüne Wiese."
KOREAN = "개 두 마리가 푸른 잔디 위를 달리고 있다."
GIBBERISH = "asdkjh qwe zzz"


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector()


@pytest.mark.parametrize(("text", "language"), CLEAR.items())
def test_clear_texts(detector: Detector, text: str, language: str) -> None:
    result = detector.detect(text, CANDIDATES)
    assert result.language == language
    # the confidence given out is the share over every language, not over the four candidates
    assert result.confidence == dict(detector.shares(text))[language] > 0.5


def test_only_the_candidates_are_considered(detector: Detector) -> None:
    """German text with only en and ko served: not German, so no confident answer is made up."""
    assert detector.detect("개 두 마리가 달리고 있다.", ["en", "ko"]).language == "ko"
    with pytest.raises(AmbiguousLanguage, match=r"looks most like German \('de'"):
        detector.detect(GERMAN, ["en", "ko"])


@pytest.mark.parametrize("text", ["OK", "Hotel", "Taxi", "2024", "", "   ", "!?"])
def test_short_or_letterless_text_is_ambiguous(detector: Detector, text: str) -> None:
    with pytest.raises(AmbiguousLanguage) as info:
        detector.detect(text, CANDIDATES)
    assert info.value.status == 400 and info.value.error_type == "ambiguous_language"


def test_a_language_no_model_translates_is_refused(detector: Detector) -> None:
    with pytest.raises(AmbiguousLanguage, match=r"looks most like Spanish \('es'"):
        detector.detect("¿Dónde está la estación de tren?", CANDIDATES)


@pytest.mark.parametrize(
    ("text", "looks_like"), [(GERMAN, "German"), (KOREAN, "Korean"), (GIBBERISH, "no language")]
)
def test_one_candidate_is_not_taken_for_text_clearly_in_another_language(
    detector: Detector, text: str, looks_like: str
) -> None:
    with pytest.raises(
        AmbiguousLanguage, match=f"served \\(English \\(en\\)\\); it looks most like {looks_like}"
    ):
        detector.detect(text, ["en"])


def test_one_candidate_is_taken_for_short_text_with_its_real_share(detector: Detector) -> None:
    """Too short to judge: the one source is the answer, with the share it really has."""
    hello = detector.detect("Hello there", ["en", "xx"])
    assert hello.language == "en" and 0.05 < hello.confidence < 0.5
    assert detector.detect("2024", ["en"]).confidence == 0.0
    english = detector.detect("Two dogs are running through the green grass.", ["en"])
    assert english.language == "en" and english.confidence > 0.99
    with pytest.raises(AmbiguousLanguage, match="cannot detect any of"):
        detector.detect("Hello there", ["xx"])


def test_rank_gives_each_candidate_its_share_over_every_language(detector: Detector) -> None:
    ranking = detector.rank("Ich bin müde und gehe schlafen.", CANDIDATES)
    assert ranking[0][0] == "de" and len(ranking) == 4
    assert sum(p for _, p in ranking) <= 1.0 + 1e-6
    assert detector.rank("1234 !!", CANDIDATES) == []
    for text in (GERMAN, KOREAN, GIBBERISH):  # one source served: no longer 100% English
        ((language, share),) = detector.rank(text, ["en"])
        assert language == "en" and share < 0.01, text


@pytest.mark.parametrize(
    ("text", "detected"),
    [(KOREAN, "ko"), (GERMAN, "de"), ("Deux chiens courent dans l'herbe verte.", "fr")],
)
def test_a_text_clearly_in_another_language_is_a_mismatch(
    detector: Detector, text: str, detected: str
) -> None:
    found = detector.mismatch(text, "en")
    assert isinstance(found, Mismatch)
    assert found.detected == detected and found.confidence > 0.9


@pytest.mark.parametrize(("text", "language"), CLEAR.items())
def test_no_mismatch_for_a_text_in_its_own_language(
    detector: Detector, text: str, language: str
) -> None:
    assert detector.mismatch(text, language) is None


@pytest.mark.parametrize(
    "text",
    [
        "Danke schön",
        "안녕",
        "1234567890123456",
        "!!! ??? ... 2024-12-03",
        "🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂🙂",
    ],
)
def test_short_or_letterless_texts_are_never_judged(detector: Detector, text: str) -> None:
    assert sum(ch.isalpha() for ch in text) < MIN_LETTERS
    assert detector.mismatch(text, "en") is None


def test_the_check_agrees_with_the_shares_it_skips(detector: Detector) -> None:
    """``mismatch`` reads the model's probabilities directly; ``foreign`` over ``shares`` is
    the same rule, through py3langid's public ``rank``."""
    texts = [*CLEAR, GERMAN, KOREAN, GIBBERISH, "¿Dónde está la estación de tren?"]
    judged = 0
    for text in texts:
        for source in ("en", "de", "ko", "zh", "es"):
            found = detector.mismatch(text, source)
            expected = detector.foreign(text, detector.shares(text), frozenset([source]))
            if expected is None:
                assert found is None, (text, source)
            else:
                judged += 1
                assert found is not None, (text, source)
                assert found.detected == expected[0], (text, source)
                assert found.confidence == pytest.approx(expected[1], abs=1e-6)
    assert judged > 20


def test_a_source_the_model_does_not_know_is_never_judged(detector: Detector) -> None:
    assert detector.mismatch(KOREAN, "xx") is None


def test_only_the_start_of_a_long_text_is_read(detector: Detector) -> None:
    """English after CHECK_CHARS characters of Korean: the Korean start decides."""
    text = (KOREAN + " ") * (CHECK_CHARS // len(KOREAN) + 1) + "The house is red. " * 50
    assert detector.mismatch(text, "en") == detector.mismatch(text[:CHECK_CHARS], "en")
    assert detector.mismatch(text, "ko") is None


def test_the_model_loads_on_first_use() -> None:
    detector = Detector()
    assert not detector.loaded
    assert detector.detect("Ich bin müde und gehe schlafen.", CANDIDATES).language == "de"
    assert detector.loaded
    assert detector.detect("저는 피곤해서 자러 갑니다.", CANDIDATES).language == "ko"
