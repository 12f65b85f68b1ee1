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
