"""HTML and XML through the drop-in APIs and their official clients, file translation, and the
LibreTranslate routes a web front end calls; the page itself is served from the package."""

from __future__ import annotations

import re
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import deepl
import pytest

from tests.service.conftest import Server, running_server
from tests.service.test_markup import outline

DOCUMENT = (
    '<div class="post"><h2 title="a dog">two dogs play</h2><!-- by hand -->'
    '<p>red dog <b>runs</b> in the <a href="/park?a=1&amp;b=2">park</a>.</p>'
    "<script>var s = 'red dog';</script><p>Visit <x>Tongyeok</x> today.</p></div>"
)


def plain(server: Server, text: str) -> str:
    return server.translate([text]).body["translations"][0]["text"]


def test_deepl_client_html_keeps_the_markup(server: Server) -> None:
    translator = deepl.Translator("any-key", server_url=server.url)
    result = translator.translate_text(
        DOCUMENT, target_lang="DE", source_lang="EN", tag_handling="html", ignore_tags=["x"]
    )
    structure, _ = outline(DOCUMENT)
    assert outline(result.text)[0] == structure  # every tag, attribute and comment
    heading = result.text.split('<h2 title="a dog">')[1].split("</h2>")[0]
    assert heading == plain(server, "two dogs play")  # the text node is the model's translation
    assert "<script>var s = 'red dog';</script>" in result.text
    assert "<x>Tongyeok</x>" in result.text  # ignore_tags: copied
    assert result.billed_characters == len(DOCUMENT)


def test_deepl_client_xml_and_its_errors(server: Server) -> None:
    translator = deepl.Translator("any-key", server_url=server.url)
    xml = '<?xml version="1.0"?><doc><par>two dogs play</par><par>red <i>dog</i></par></doc>'
    result = translator.translate_text(xml, target_lang="DE", source_lang="EN", tag_handling="xml")
    assert outline(result.text)[0] == outline(xml)[0]
    assert f"<par>{plain(server, 'two dogs play')}</par>" in result.text
    with pytest.raises(deepl.DeepLException):
        translator.translate_text("<a><b></a>", target_lang="DE", tag_handling="xml")
    malformed = server.request(
        "POST",
        "/v2/translate",
        {"text": ["<a><b></a>"], "target_lang": "DE", "tag_handling": "xml"},
    )
    assert malformed.status == 400 and malformed.body["error_type"] == "invalid_markup"
    assert "not well-formed XML at line 1, column 7" in malformed.body["error"]
    bad = server.request(
        "POST",
        "/v2/translate",
        {"text": ["x"], "target_lang": "DE", "tag_handling": "markdown"},
    )
    assert bad.status == 422 and "tag_handling" in bad.body["error"]


def test_libretranslate_format_html(server: Server) -> None:
    reply = server.request(
        "POST",
        "/translate",
        {"q": [DOCUMENT, "two dogs play"], "source": "en", "target": "de", "format": "html"},
    )
    assert reply.status == 200, reply.body
    html, text = reply.body["translatedText"]
    assert outline(html)[0] == outline(DOCUMENT)[0]
    assert text == plain(server, "two dogs play")
    too_long = server.request(
        "POST", "/translate", {"q": "<p>" + "a " * 3000 + "</p>", "target": "de", "format": "html"}
    )
    assert too_long.status == 422 and "max_text_chars" in too_long.body["error"]


def upload(server: Server, name: str, content: bytes, **fields: str):
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return server.request(
        "POST",
        "/translate_file",
        raw=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )


def test_translate_file_txt_and_html(server: Server) -> None:
    reply = upload(
        server, "notes.txt", b"two dogs play\n\nred dog runs\n", source="en", target="de"
    )
    assert reply.status == 200, reply.body
    with urllib.request.urlopen(reply.body["translatedFileUrl"], timeout=30) as answer:
        assert answer.headers["content-type"].startswith("text/plain")
        lines = answer.read().decode().split("\n")
    assert lines == [plain(server, "two dogs play"), "", plain(server, "red dog runs"), ""]
    reply = upload(server, "page.html", DOCUMENT.encode(), source="en", target="de")
    with urllib.request.urlopen(reply.body["translatedFileUrl"], timeout=30) as answer:
        assert outline(answer.read().decode())[0] == outline(DOCUMENT)[0]
    assert upload(server, "x.pdf", b"%PDF", target="de").status == 422
    assert upload(server, "x.txt", b"\xff\xfe", target="de").status == 422
    huge = b"a b c d\n" * (128 * 5000 // 8 + 1)  # more than max_texts x max_text_chars
    assert upload(server, "big.txt", huge, target="de").status == 413
    missing = server.request("GET", "/download_file/nope.txt")
    assert missing.status == 404 and missing.body["error_type"] == "not_found"


def test_detect_settings_and_page(server: Server) -> None:
    detect = server.request("POST", "/detect", {"q": "two dogs"})
    assert detect.status == 200 and [d["language"] for d in detect.body] == ["en"]
    assert 0 < detect.body[0]["confidence"] < 50  # two words: its real share, not 100%
    settings = server.request("GET", "/frontend/settings").body
    assert settings["charLimit"] == 5000 and settings["keyRequired"] is False
    assert settings["language"]["source"]["code"] == "en"
    page = server.request("GET", "/")
    assert page.status == 200 and "<title>Tongyeok" in page.body["text"]
    for name in ("app.js", "style.css"):
        static = server.request("GET", f"/static/{name}")
        assert static.status == 200
        assert "://" not in static.body["text"]  # nothing fetched from anywhere but here
    assert "://" not in page.body["text"]


@pytest.fixture(scope="module")
def shipped_server(shipped_repository: Path) -> Iterator[Server]:
    """The shipped model (int8, as served by default): a real translation to align tags in."""
    with running_server(shipped_repository) as server:
        yield server


TAGGED = [
    ("<p>A <b>dog</b> runs on the beach.</p>", "<b>Hund</b>"),
    ('A woman in a <span class="c">red dress</span> is sitting on a bench.', "roten Kleid</span>"),
    ('The man with the black hat is reading a <a href="/n">newspaper</a>.', ">Zeitung</a>."),
]


def untagged(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


@pytest.mark.parametrize(("document", "expected"), TAGGED)
def test_tags_wrap_the_words_they_wrapped_through_both_official_clients(
    shipped_server: Path, document: str, expected: str
) -> None:
    """Issue 33: "<p>A <b>dog</b> runs on the beach.</p>" came back as "<p>Ein Mann. <b>Ein Hund
    Hund, der einen Hund Hund schwimmt.</b> Ein läuft am Strand.</p>" (pieces translated alone).
    Now the sentence translates exactly as it does without its tags, tags around the aligned
    words, through LibreTranslate's format=html and DeepL's official client alike."""
    server: Server = shipped_server  # type: ignore[assignment]
    without_tags = plain(server, untagged(document))
    # libretranslatepy has no ``format``: LibreTranslate's own page sends it as here
    reply = server.request(
        "POST", "/translate", {"q": document, "source": "en", "target": "de", "format": "html"}
    )
    assert reply.status == 200, reply.body
    libre = reply.body["translatedText"]
    translator = deepl.Translator("any-key", server_url=server.url)
    result = translator.translate_text(
        document, source_lang="EN", target_lang="DE", tag_handling="html"
    )
    for translated in (libre, result.text):
        assert untagged(translated) == untagged(document).replace(untagged(document), without_tags)
        assert outline(translated)[0] == outline(document)[0]  # every tag, byte for byte
        assert expected in translated, translated
