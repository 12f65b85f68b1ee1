"""Existing clients work unchanged: the official libretranslatepy and deepl packages."""

from __future__ import annotations

import json
import urllib.error
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


# Issue 33: with one source (en) served, each of these was detected as "en 100%".
NOT_ENGLISH = {
    "de": "Zwei Hunde laufen über die grüne Wiese.",
    "ko": "개 두 마리가 푸른 잔디 위를 달리고 있다.",
    "zxx": "asdkjh qwe zzz",  # no language at all
}


def test_libretranslate_detect_with_one_source_is_honest(server: Server) -> None:
    """The one source served is given the share it really has, not 100%."""
    client = LibreTranslateAPI(server.url + "/")
    for text in NOT_ENGLISH.values():
        (answer,) = client.detect(text)
        assert answer["language"] == "en" and 0 <= answer["confidence"] < 1, (text, answer)
    english = client.detect("Two dogs are running through the green grass in the park.")
    assert english[0]["language"] == "en" and english[0]["confidence"] > 90


def test_deepl_without_source_lang_refuses_text_clearly_in_another_language(
    server: Server,
) -> None:
    """DeepL's detected_source_language must be the truth: translating German as English and
    calling it English would not be, nor would calling it German; a 400 names what it looks
    like, and the client raises it."""
    translator = deepl.Translator("any-key", server_url=server.url)
    for code, text in NOT_ENGLISH.items():
        with pytest.raises(
            deepl.DeepLException, match=f"English \\(en\\).*looks most like .*'{code}'"
        ):
            translator.translate_text(text, target_lang="DE")
    english = translator.translate_text("Two dogs are running through the park.", target_lang="DE")
    assert english.detected_source_lang == "EN"
    given = translator.translate_text(NOT_ENGLISH["de"], target_lang="DE", source_lang="EN")
    assert given.detected_source_lang == "EN"  # a source given is taken, as DeepL does


def test_libretranslate_auto_refuses_text_clearly_in_another_language(server: Server) -> None:
    client = LibreTranslateAPI(server.url + "/")
    with pytest.raises(urllib.error.HTTPError) as info:
        client.translate(NOT_ENGLISH["de"], "auto", "de")
    assert info.value.code == 400
    body = json.loads(info.value.read())
    assert body["error_type"] == "ambiguous_language" and "looks most like German" in body["error"]
    reply = server.request(
        "POST", "/translate", {"q": "red dog runs", "source": "auto", "target": "de"}
    )
    assert reply.status == 200  # too short to judge: the one source, with its real share
    assert reply.body["detectedLanguage"]["language"] == "en"
    assert 0 < reply.body["detectedLanguage"]["confidence"] < 90


def test_auto_reads_the_text_of_html_not_its_tags_and_checks_limits_first(server: Server) -> None:
    html = '<div class="card"><p data-x="q7"><b>Two dogs</b> are running in the park.</p></div>'
    reply = server.request("POST", "/translate", {"q": html, "target": "de", "format": "html"})
    assert reply.status == 200, reply.body
    assert reply.body["detectedLanguage"]["language"] == "en"
    assert reply.body["detectedLanguage"]["confidence"] > 50
    too_many = {"text": [NOT_ENGLISH["de"]] * 129, "target_lang": "DE"}
    reply = server.request("POST", "/v2/translate", too_many)
    assert reply.status == 422 and "max_texts" in reply.body["message"]  # before detection
