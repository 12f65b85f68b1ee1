"""Existing clients work unchanged: the official libretranslatepy and deepl packages."""

from __future__ import annotations

from pathlib import Path

import deepl
import pytest
from libretranslatepy import LibreTranslateAPI

from tests.service.conftest import Server, running_server


def test_libretranslate_client(server: Server) -> None:
    client = LibreTranslateAPI(server.url + "/")
    assert client.translate("red dog runs", "en", "de") == "red dog runs"
    assert client.languages() == [{"code": "en", "name": "English", "targets": ["de"]}]


def test_libretranslate_json_lists_auto_and_errors(server: Server) -> None:
    reply = server.request(
        "POST",
        "/translate",
        {"q": ["a cat", "big bird"], "source": "auto", "target": "de", "format": "text"},
    )
    assert reply.status == 200
    assert reply.body["translatedText"] == ["a cat", "big bird"]
    assert reply.body["detectedLanguage"]["language"] == "en"
    bad = server.request("POST", "/translate", {"q": "x", "source": "en", "target": "xx"})
    assert bad.status == 400 and "error" in bad.body
    missing = server.request("POST", "/translate", {"source": "en", "target": "de"})
    assert missing.status == 422 and missing.body["error"] == "'q' and 'target' are required"


def test_deepl_client(server: Server) -> None:
    translator = deepl.Translator("any-key", server_url=server.url)
    result = translator.translate_text(
        ["red dog runs", "a cat sits"], target_lang="DE", source_lang="EN"
    )
    assert [r.text for r in result] == ["red dog runs", "a cat sits"]
    assert result[0].detected_source_lang == "EN"
    assert result[0].billed_characters == len("red dog runs")
    single = translator.translate_text("small bird", target_lang="DE")  # no source: inferred
    assert single.text == "small bird"
    assert [lang.code for lang in translator.get_source_languages()] == ["EN"]
    assert [lang.code for lang in translator.get_target_languages()] == ["DE"]


def test_deepl_form_body_and_errors(server: Server) -> None:
    form = b"text=red+dog&text=a+cat&target_lang=DE&source_lang=EN"
    reply = server.request(
        "POST",
        "/v2/translate",
        raw=form,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert reply.status == 200
    assert [t["text"] for t in reply.body["translations"]] == ["red dog", "a cat"]
    translator = deepl.Translator("any-key", server_url=server.url)
    with pytest.raises(deepl.DeepLException):
        translator.translate_text("x", target_lang="FR", source_lang="EN")


def test_each_router_answers_errors_in_its_own_shape(toy_repository: Path) -> None:
    """DeepL's routes add the ``message`` its clients read, for errors raised in the route, by
    the framework (405) and before routing (a body too large); other routes keep ours."""
    with running_server(toy_repository, max_body_bytes=2000) as server:
        pair = server.request("POST", "/v2/translate", {"text": ["x"], "target_lang": "FR"})
        assert pair.status == 400 and pair.body["message"] == pair.body["error"]
        wrong_method = server.request("GET", "/v2/translate")
        assert wrong_method.status == 405 and wrong_method.body["message"]
        too_large = server.request("POST", "/v2/translate", {"text": ["x" * 3000]})
        assert too_large.status == 413 and "max_body_bytes" in too_large.body["message"]
        native = server.translate(["x"], target="fr")
        assert native.status == 400 and set(native.body) == {"error", "error_type"}
        libre_large = server.request("POST", "/translate", {"q": "x" * 3000})
        assert libre_large.status == 413 and set(libre_large.body) == {"error", "error_type"}
