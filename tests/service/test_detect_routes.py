"""source=auto through the drop-in APIs, and LibreTranslate's /detect, against a real server whose
repository translates two sources (en, fr) into one target (de): the detector must choose."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import deepl
import pytest

from export.onnx_export import export_package
from model.checkpoint import load_checkpoint
from tests.service.conftest import Server, running_server


@pytest.fixture(scope="module")
def two_sources(toy_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """en→de and fr→de (the toy copy task, labelled twice)."""
    repo = tmp_path_factory.mktemp("two-sources")
    export_package(toy_checkpoint, repo / "en-de")
    french = load_checkpoint(toy_checkpoint)
    french.source_lang = "fr"
    french.save(repo.parent / "fr-de.pt")
    export_package(repo.parent / "fr-de.pt", repo / "fr-de")
    with running_server(repo) as server:
        yield server


ENGLISH = "Two dogs are running through the green grass in the park."
FRENCH = "Deux chiens courent dans l'herbe verte du parc."


def test_libretranslate_auto_detects_the_source(two_sources: Server) -> None:
    for text, language in ((ENGLISH, "en"), (FRENCH, "fr")):
        reply = two_sources.request(
            "POST", "/translate", {"q": text, "source": "auto", "target": "de"}
        )
        assert reply.status == 200, reply.body
        assert reply.body["detectedLanguage"]["language"] == language
        assert reply.body["detectedLanguage"]["confidence"] >= 90


def test_ambiguous_text_is_a_clear_400(two_sources: Server) -> None:
    reply = two_sources.request(
        "POST", "/translate", {"q": "1234 !!", "source": "auto", "target": "de"}
    )
    assert reply.status == 400
    assert reply.body["error_type"] == "ambiguous_language"
    assert "give the source" in reply.body["error"]


def test_detect_ranks_every_served_source(two_sources: Server) -> None:
    reply = two_sources.request("POST", "/detect", {"q": FRENCH})
    assert reply.status == 200
    assert [d["language"] for d in reply.body] == ["fr", "en"]
    assert reply.body[0]["confidence"] > reply.body[1]["confidence"]
    missing = two_sources.request("POST", "/detect", {})
    assert missing.status == 422 and "'q'" in missing.body["error"]


def test_deepl_without_source_lang_detects_it(two_sources: Server) -> None:
    translator = deepl.Translator("any-key", server_url=two_sources.url)
    result = translator.translate_text(FRENCH, target_lang="DE")
    assert result.detected_source_lang == "FR"


KOREAN = "개 두 마리가 푸른 잔디 위를 달리고 있다."
GERMAN = "Zwei Hunde laufen über die grüne Wiese."


def test_native_warns_for_a_text_clearly_not_in_its_source(server: Server) -> None:
    """Issue 33: Korean sent to en→de came back as fluent nonsense with no warning. It is still
    translated (the caller chose the source), with a warning naming the text and the language."""
    texts = ["Two dogs are running through the green grass.", KOREAN, "2024", GERMAN, "안녕"]
    reply = server.translate(texts, nbest=2, beam_size=2)
    assert reply.status == 200, reply.body
    assert len(reply.body["translations"]) == len(texts)
    warnings = reply.body["warnings"]
    assert [(w["code"], w["index"], w["detected"]) for w in warnings] == [
        ("source_language_mismatch", 1, "ko"),
        ("source_language_mismatch", 3, "de"),
    ]
    assert all(w["confidence"] > 0.9 for w in warnings)
    assert warnings[0]["message"] == (
        "Text 2 does not look like English (en); it looks most like Korean (ko, 100%). No model "
        "here translates Korean into German: its translation is likely nonsense."
    )  # it said "give its language as the source", which only a 400 would answer
    assert reply.body["detected_source"] is None  # the source was given, not detected


def test_the_warning_advises_the_source_only_where_a_model_takes_it(two_sources: Server) -> None:
    """French sent as English where fr→de is served: the advice is to say so."""
    reply = two_sources.translate([FRENCH])
    assert reply.status == 200, reply.body
    (warning,) = reply.body["warnings"]
    assert warning["detected"] == "fr"
    assert warning["message"].endswith("Give fr as the source, or auto."), warning
    assert two_sources.translate([FRENCH], source="fr").body["warnings"] == []


def test_native_has_no_warning_for_text_in_its_source(server: Server) -> None:
    reply = server.translate(["red dog runs", "Two dogs are running through the green grass."])
    assert reply.status == 200 and reply.body["warnings"] == []


def test_native_source_auto(server: Server, two_sources: Server) -> None:
    """The native API takes source "auto" as the drop-in ones do, and says what it detected."""
    one = server.translate(["Two dogs are running through the park."], source="auto")
    assert one.status == 200, one.body
    assert one.body["detected_source"] == "en" and one.body["warnings"] == []
    refused = server.translate([KOREAN], source="auto")
    assert refused.status == 400 and "looks most like Korean" in refused.body["error"]
    two = two_sources.translate([FRENCH], source="auto")
    assert two.status == 200 and two.body["detected_source"] == "fr"
    # mostly French: detected as French, and the English text among them is named
    mixed = two_sources.translate([FRENCH, FRENCH, ENGLISH, FRENCH], source="auto")
    assert mixed.status == 200 and mixed.body["detected_source"] == "fr"
    assert [(w["index"], w["detected"]) for w in mixed.body["warnings"]] == [(2, "en")]


def test_deepl_and_libretranslate_shapes_are_unchanged(server: Server) -> None:
    """No warnings field leaks into the drop-in shapes, warned or not."""
    libre = server.request("POST", "/translate", {"q": KOREAN, "source": "en", "target": "de"})
    assert libre.status == 200 and set(libre.body) == {"translatedText"}
    deepl_reply = server.request(
        "POST", "/v2/translate", {"text": [KOREAN], "target_lang": "DE", "source_lang": "EN"}
    )
    assert deepl_reply.status == 200
    assert set(deepl_reply.body["translations"][0]) == {
        "detected_source_language",
        "text",
        "billed_characters",
    }
