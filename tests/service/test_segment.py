"""Sentence splitting is lossless and splits where a reader would."""

from __future__ import annotations

import pytest

from service.segment import split

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
