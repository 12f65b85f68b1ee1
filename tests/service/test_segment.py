"""Sentence splitting is lossless and splits where a reader would."""

from __future__ import annotations

import time

import pytest

from service.usecase.segment import split

TEXTS = [
    "A dog runs. Two cats sleep!  Is it raining?",
    "  Leading and trailing spaces stay.  ",
    "First paragraph.\n\nSecond paragraph, line one\nline two.",
    'He said "Stop." Then he left.',
    "Dr. Smith arrived at 5 p.m. on Monday. Mr. Jones did not.",
    "No final punctuation",
    "Zahlen wie 3.5 bleiben ganz. Ein Satz endet hier.",
    "",
    "   ",
]


@pytest.mark.parametrize("text", TEXTS)
def test_join_of_split_is_the_identity(text: str) -> None:
    segmented = split(text)
    assert segmented.join(segmented.sentences) == text
    assert all(s.strip() == s and s for s in segmented.sentences)


def test_splits_where_sentences_end() -> None:
    assert split(TEXTS[0]).sentences == ["A dog runs.", "Two cats sleep!", "Is it raining?"]
    assert split(TEXTS[2]).sentences == [
        "First paragraph.",
        "Second paragraph, line one",
        "line two.",
    ]
    assert split(TEXTS[3]).sentences == ['He said "Stop."', "Then he left."]
    assert split(TEXTS[4]).sentences == [
        "Dr. Smith arrived at 5 p.m. on Monday.",
        "Mr. Jones did not.",
    ]
    assert split(TEXTS[6]).sentences == ["Zahlen wie 3.5 bleiben ganz.", "Ein Satz endet hier."]


def test_join_keeps_the_spacing_around_translations() -> None:
    segmented = split("  One. Two.\n\nThree.  ")
    assert segmented.join(["Eins.", "Zwei.", "Drei."]) == "  Eins. Zwei.\n\nDrei.  "
    with pytest.raises(ValueError, match="one translation per sentence"):
        segmented.join(["Eins."])


def test_korean_and_cjk_sentence_ends() -> None:
    korean = "나는 학생이다. 그는 선생님이다! 정말?  네."
    assert split(korean).sentences == ["나는 학생이다.", "그는 선생님이다!", "정말?", "네."]
    japanese = "今日は晴れです。明日は雨でしょう！本当？はい。"
    assert split(japanese).sentences == [
        "今日は晴れです。",
        "明日は雨でしょう！",
        "本当？",
        "はい。",
    ]
    assert split("我很好。 你呢？").sentences == ["我很好。", "你呢？"]
    assert split("「行こう。」と言った。次。").sentences == ["「行こう。」", "と言った。", "次。"]
    assert split("すごい。。。本当").sentences == ["すごい。。。", "本当"]  # no empty sentences
    for text in (korean, japanese, "我很好。 你呢？"):
        segmented = split(text)
        assert segmented.join(segmented.sentences) == text


@pytest.mark.parametrize(
    "text",
    [
        "a" + " " * 50_000 + "b",  # whitespace without a newline: quadratic before
        "a" + "\t " * 25_000 + "\n" + " " * 25_000 + "b",
        "Dr. " * 12_500 + "Smith.",  # abbreviations skipped one after another
        "x。" * 25_000,
    ],
)
def test_splitting_is_linear_in_the_text(text: str) -> None:
    """50,000 characters split in well under a second (the quadratic pattern took ~1 minute)."""
    started = time.perf_counter()
    segmented = split(text)
    assert time.perf_counter() - started < 2.0
    assert segmented.join(segmented.sentences) == text


@pytest.mark.parametrize(
    "text",
    [
        "\ufeff",
        "\u200b\u200b",
        "2024",
        "12.5 %",
        "...",
        "👍🎉",
        " -- ",
        "\ufeff42\u200b",
        "(1) [2]",
    ],
)
def test_a_text_with_nothing_to_translate_has_no_sentence(text: str) -> None:
    segmented = split(text)
    assert segmented.sentences == []
    assert segmented.join([]) == text


def test_invisible_characters_at_the_edges_stay_out_of_the_sentence() -> None:
    segmented = split("\ufeffA dog runs.\u200b Two cats sleep.\u2060")
    assert segmented.sentences == ["A dog runs.", "Two cats sleep."]
    assert segmented.join(["Ein Hund.", "Zwei Katzen."]) == (
        "\ufeffEin Hund.\u200b Zwei Katzen.\u2060"
    )


def test_numbers_between_sentences_are_copied_in_place() -> None:
    segmented = split("A dog runs. 2024. Two cats sleep.")
    assert segmented.sentences == ["A dog runs.", "Two cats sleep."]
    assert segmented.join(["X.", "Y."]) == "X. 2024. Y."
