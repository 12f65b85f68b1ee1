"""The translation page in a real browser with every non-loopback address blocked: type and read
the translation, switch pairs, detect the language, translate a file, read every error beside the
output (on a phone too), never see a translation of other text, and no accessibility violation
(axe-core) in light or dark mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import run_axe
from tests.service.conftest import Server

KEY = "s3cret"


def output_lines(page) -> list[str]:
    return page.locator("#output p").all_text_contents()


def wait_for_output(page, lines: list[str]) -> None:
    page.wait_for_function(
        "want => JSON.stringify([...document.querySelectorAll('#output p')]"
        ".map(p => p.textContent)) == JSON.stringify(want)",
        arg=lines,
    )


def wait_for_message(page, words: str, where: str = "#message") -> None:
    page.wait_for_function(
        "([where, words]) => document.querySelector(where).textContent.includes(words)",
        arg=[where, words],
    )


def shows_nothing_translated(page) -> bool:
    """The output pane and everything that goes with a translation are empty or hidden."""
    return bool(
        page.evaluate(
            """() => document.querySelector('#output').textContent === ''
            && document.querySelector('#alternatives-box').hidden
            && document.querySelectorAll('#notes li').length === 0
            && document.querySelector('#detected').textContent === ''
            && document.querySelector('#copy').disabled"""
        )
    )


def open_page(page, server: Server) -> None:
    page.goto(server.url + "/")
    page.wait_for_function("document.querySelectorAll('#target option').length >= 1")


def native(server: Server, texts: list[str], source: str = "en", target: str = "de") -> dict:
    payload = {"texts": texts, "source": source, "target": target, "beam_size": 4, "nbest": 3}
    reply = server.request("POST", "/v1/translate", payload)
    assert reply.status == 200, reply.body
    return reply.body


def answer(status: int, body: dict, headers: dict[str, str] | None = None):
    """A route handler standing in for a server that answers ``status`` with ``body``."""

    def fulfill(route, request) -> None:
        route.fulfill(status=status, headers=headers or {}, json=body)

    return fulfill


# A native answer with the fields another change adds (warnings, detected_source): the page
# shows them when present and must not need them.
WARNED = {
    "translations": [
        {
            "text": "ein roter Hund",
            "score": -0.5,
            "tokens": 4,
            "finish_reason": "eos",
            "alternatives": ["roter Hund", "ein Hund"],
        }
    ],
    "model": "en-de",
    "timings": {},
    "warnings": [
        {
            "code": "source_language_mismatch",
            "index": 0,
            "detected": "ko",
            "confidence": 0.98,
            "message": "Text 1 looks like Korean (ko), not English: choose Korean or Detect.",
        }
    ],
    "detected_source": "en",
}


def test_type_and_read_the_translation(page, page_server: Server, artifacts: Path) -> None:
    open_page(page, page_server)
    assert page.title().startswith("Tongyeok")
    assert page.locator("#source option").all_inner_texts() == [
        "Detect language",
        "German (de)",
        "English (en)",
    ]
    page.select_option("#source", "en")
    assert page.locator("#target option").all_inner_texts() == ["German (de)"]
    assert not page.is_visible("#api-key")  # no keys on this server: no key field
    models = page_server.request("GET", "/v1/models").body["models"]
    en_de = next(m for m in models if (m["source"], m["target"]) == ("en", "de"))
    assert en_de["description"]  # what the model is for, shown beside the languages
    assert page.inner_text("#model-note") == f"Model {en_de['name']}: {en_de['description']}"
    text = "red dog runs\n\na cat sits"
    page.fill("#input", text)
    want = [t["text"] for t in native(page_server, ["red dog runs", "a cat sits"])["translations"]]
    wait_for_output(page, [want[0], "", want[1]])  # paragraphs kept as paragraphs
    page.wait_for_function("document.querySelector('#output').getAttribute('aria-busy') == 'false'")
    assert page.locator("#count").inner_text() == f"{len(text)} / 5000 characters"
    assert not page.locator("#copy").is_disabled()
    assert page.locator("#notes li").count() == 0  # this server's answer has no warnings
    page.screenshot(path=str(artifacts / "page-desktop.png"), full_page=True)
    # one paragraph of one sentence: its alternatives (nbest) are listed
    page.fill("#input", "red dog runs")
    single = native(page_server, ["red dog runs"])["translations"][0]
    wait_for_output(page, [single["text"]])
    page.wait_for_selector("#alternatives-box:not([hidden])")
    assert page.locator("#alternatives li").all_text_contents() == single["alternatives"]
    assert all(url.startswith(page_server.url) for url in page.requests), page.requests
    # the icon: the SVG the page links, and /favicon.ico for every other client
    assert page.get_attribute("link[rel=icon]", "href") == "/static/favicon.svg"
    svg = page.request.get(page_server.url + "/static/favicon.svg")
    assert svg.ok and svg.headers["content-type"].startswith("image/svg+xml")
    ico = page.request.get(page_server.url + "/favicon.ico")
    assert ico.ok and ico.headers["content-type"] == "image/x-icon"
    assert ico.body()[:4] == b"\x00\x00\x01\x00" and len(ico.body()) < 4096


def test_typing_fast_shows_the_last_text_only(page, page_server: Server) -> None:
    open_page(page, page_server)
    page.select_option("#source", "en")
    page.locator("#input").press_sequentially("a cat", delay=5)
    page.wait_for_timeout(450)  # the first request is on its way
    page.locator("#input").press_sequentially(" sits on a red mat", delay=5)
    want = native(page_server, ["a cat sits on a red mat"])["translations"][0]["text"]
    wait_for_output(page, [want])
    page.wait_for_timeout(300)  # an earlier answer arriving late must not replace it
    assert output_lines(page) == [want]


def test_output_never_shows_a_translation_of_other_text(page, page_server: Server) -> None:
    open_page(page, page_server)
    page.select_option("#source", "en")
    page.fill("#input", "red dog")
    first = native(page_server, ["red dog"])["translations"][0]
    wait_for_output(page, [first["text"]])
    page.wait_for_selector("#alternatives-box:not([hidden])")
    # edited: the old translation goes at once, not when the new one arrives
    held: list = []
    page.route("**/v1/translate", lambda route, request: held.append(route))
    page.fill("#input", "red cat")
    assert shows_nothing_translated(page)
    page.wait_for_function("document.querySelector('#output').getAttribute('aria-busy') == 'true'")
    assert shows_nothing_translated(page)  # still nothing while the request is in flight
    held[0].continue_()
    page.unroute("**/v1/translate")
    wait_for_output(page, [native(page_server, ["red cat"])["translations"][0]["text"]])
    # a 4xx: the server's words beside an empty output
    too_long = {"error": "text 1 has 600 tokens, more than 511", "error_type": "invalid_request"}
    page.route("**/v1/translate", answer(422, too_long))
    page.fill("#input", "a cat sits")
    wait_for_message(page, "text 1 has 600 tokens, more than 511")
    assert shows_nothing_translated(page)
    page.unroute("**/v1/translate")
    page.fill("#input", "red dog")
    wait_for_output(page, [first["text"]])
    assert page.inner_text("#message") == ""  # an answer clears the error
    # the network fails: said so, and nothing stale
    page.route("**/v1/translate", lambda route, request: route.abort("connectionrefused"))
    page.fill("#input", "two dogs")
    wait_for_message(page, "Cannot reach the server")
    assert shows_nothing_translated(page)
    page.unroute("**/v1/translate")
    # over the limit: said before sending, nothing stale
    page.fill("#input", "red dog")
    wait_for_output(page, [first["text"]])
    page.fill("#input", "x" * 5001)
    wait_for_message(page, "limit of 5000 characters")
    assert "over" in page.get_attribute("#count", "class")
    assert shows_nothing_translated(page)
    # cleared: nothing to translate, nothing shown, no message
    page.fill("#input", "red dog")
    wait_for_output(page, [first["text"]])
    page.fill("#input", "")
    assert shows_nothing_translated(page)
    page.wait_for_timeout(400)  # past the typing delay: still nothing, and no error
    assert shows_nothing_translated(page) and page.inner_text("#message") == ""


def test_swap_switches_the_pair_and_the_texts(page, page_server: Server) -> None:
    open_page(page, page_server)
    page.select_option("#source", "en")
    page.wait_for_function("!document.querySelector('#swap').disabled")  # de→en exists
    assert not page.is_visible("#swap-reason")
    page.fill("#input", "red dog")
    first = native(page_server, ["red dog"])["translations"][0]["text"]
    wait_for_output(page, [first])
    page.focus("#swap")
    page.keyboard.press("Enter")  # keyboard, not only the mouse
    assert page.input_value("#source") == "de" and page.input_value("#target") == "en"
    assert page.input_value("#input") == first
    back = native(page_server, [first], "de", "en")["translations"][0]["text"]
    wait_for_output(page, [back])


def test_detect_language(page, page_server: Server) -> None:
    """Source "auto": the native API where it takes it, else LibreTranslate's /translate; the
    language detected is shown, and swap then swaps with it."""
    open_page(page, page_server)
    page.select_option("#source", "auto")
    page.select_option("#target", "de")
    assert page.is_disabled("#swap")  # nothing detected yet: the reason is on the page
    assert "Swap needs a source language" in page.inner_text("#swap-reason")
    assert page.get_attribute("#swap", "title") == page.inner_text("#swap-reason")
    assert "detected among the languages translated into German: English (en)" in page.inner_text(
        "#model-note"
    )
    page.fill("#input", "red dog")
    natively = native(page_server, ["red dog"])["translations"][0]["text"]
    libre = page_server.request(
        "POST", "/translate", {"q": ["red dog"], "source": "auto", "target": "de"}
    ).body["translatedText"][0]
    page.wait_for_function("document.querySelector('#detected').textContent != ''")
    assert output_lines(page) in ([natively], [libre])
    assert page.inner_text("#detected") == "Detected language: English (en)."
    assert page.inner_text("#model-note").startswith("Model en-de")
    assert not page.is_disabled("#swap")
    page.click("#swap")
    assert page.input_value("#source") == "de" and page.input_value("#target") == "en"
    # a server whose native API does not take "auto": LibreTranslate's /translate does
    older = {
        "error": "no model translates auto→de; available: de→en, en→de",
        "error_type": "unsupported_language_pair",
    }
    page.route("**/v1/translate", answer(400, older))
    page.select_option("#source", "auto")
    page.select_option("#target", "de")
    with page.expect_response(page_server.url + "/translate") as fallback:
        page.fill("#input", "red dog")
    assert fallback.value.ok and fallback.value.request.post_data_json["source"] == "auto"
    wait_for_output(page, [libre])
    assert page.inner_text("#detected") == "Detected language: English (en)."
    assert page.inner_text("#message") == ""


def test_warnings_and_the_detected_language_are_shown(page, page_server: Server) -> None:
    open_page(page, page_server)
    page.select_option("#source", "en")
    page.route("**/v1/translate", answer(200, WARNED))
    page.fill("#input", "빨간 개")
    wait_for_output(page, ["ein roter Hund"])
    assert page.locator("#notes li").all_text_contents() == [WARNED["warnings"][0]["message"]]
    assert page.inner_text("#detected") == ""  # a source was chosen: nothing was detected
    page.select_option("#source", "auto")
    page.select_option("#target", "de")
    wait_for_output(page, ["ein roter Hund"])
    page.wait_for_selector("#detected:has-text('Detected language: English (en).')")
    assert page.locator("#alternatives li").all_text_contents() == ["roter Hund", "ein Hund"]
    # an answer without the new fields (an older server): no notes, no error
    older = {k: v for k, v in WARNED.items() if k not in ("warnings", "detected_source")}
    page.unroute("**/v1/translate")
    page.route("**/v1/translate", answer(200, older))
    page.select_option("#source", "en")
    page.fill("#input", "red dog")
    wait_for_output(page, ["ein roter Hund"])
    assert page.locator("#notes li").count() == 0 and page.inner_text("#message") == ""


def test_translate_a_file(page, page_server: Server) -> None:
    open_page(page, page_server)
    page.select_option("#source", "en")
    text = "red dog\n\na cat sits\n"
    page.set_input_files(
        "#file", files=[{"name": "note.txt", "mimeType": "text/plain", "buffer": text.encode()}]
    )
    page.click("#file-submit")
    page.wait_for_selector("#file-result:not([hidden])")
    assert page.inner_text("#file-link") == "Download note.de.txt (German)"
    with page.expect_download() as download:
        page.click("#file-link")
    assert download.value.suggested_filename == "note.de.txt"
    got = Path(download.value.path()).read_text(encoding="utf-8")
    lines = page_server.request(
        "POST", "/translate", {"q": ["red dog", "a cat sits"], "source": "en", "target": "de"}
    ).body["translatedText"]
    assert got == f"{lines[0]}\n\n{lines[1]}\n"
    # .html: the text nodes, the markup kept
    html = "<p>red dog</p>"
    page.set_input_files(
        "#file", files=[{"name": "page.html", "mimeType": "text/html", "buffer": html.encode()}]
    )
    assert page.is_hidden("#file-result")  # a new file: the old link goes
    page.click("#file-submit")
    page.wait_for_selector("#file-result:not([hidden])")
    with page.expect_download() as download:
        page.click("#file-link")
    assert download.value.suggested_filename == "page.de.html"
    want = page_server.request(
        "POST", "/translate", {"q": html, "source": "en", "target": "de", "format": "html"}
    ).body["translatedText"]
    assert Path(download.value.path()).read_text(encoding="utf-8") == want
    # a format the API does not take: its words, no link
    page.set_input_files(
        "#file", files=[{"name": "notes.pdf", "mimeType": "application/pdf", "buffer": b"%PDF"}]
    )
    page.click("#file-submit")
    wait_for_message(page, "'.pdf' is not supported: .docx, .htm, .html", "#file-message")
    assert page.is_hidden("#file-result") and page.inner_text("#file-status") == ""
    # no file chosen
    page.set_input_files("#file", files=[])
    page.click("#file-submit")
    wait_for_message(page, "Choose a document first.", "#file-message")


def test_keys_and_errors_are_explained(page, keyed_server: Server, artifacts: Path) -> None:
    with page.expect_response("**/v1/models") as models:
        page.goto(keyed_server.url + "/")
    assert models.value.status == 401  # /v1/models needs the key too: no languages without it
    page.wait_for_selector("#key-row:not([hidden])")  # /frontend/settings: keys are on
    page.wait_for_selector("#swap-reason:has-text('No languages to swap until')")
    wait_for_message(page, "This server needs an API key: “missing API key")
    page.fill("#input", "red dog")  # typing does not hide why nothing is translated
    page.wait_for_timeout(500)
    assert "valid API key" in page.inner_text("#message") and shows_nothing_translated(page)
    page.fill("#api-key", "wrong")
    with page.expect_response("**/v1/models") as models:
        page.press("#api-key", "Enter")
    # a wrong key: 403, as DeepL's and LibreTranslate's clients expect, and the page says so
    assert models.value.status == 403
    wait_for_message(page, "This server refused the API key: “invalid API key”")
    page.wait_for_timeout(500)
    assert "invalid API key" in page.inner_text("#message")
    page.screenshot(path=str(artifacts / "page-key-error.png"), full_page=True)
    page.fill("#api-key", KEY)
    with page.expect_response("**/v1/translate") as translated:
        page.dispatch_event("#api-key", "change")
    assert translated.value.status == 200
    assert page.locator("#target option").all_inner_texts() == ["German (de)"]
    payload = {"texts": ["red dog"], "source": "en", "target": "de", "beam_size": 4, "nbest": 3}
    keyed = keyed_server.request("POST", "/v1/translate", payload, headers={"x-api-key": KEY})
    wait_for_output(page, [keyed.body["translations"][0]["text"]])
    assert page.inner_text("#message") == ""
    # a file: its download needs the key too, which a plain link would not send
    page.set_input_files(
        "#file", files=[{"name": "note.txt", "mimeType": "text/plain", "buffer": b"red dog\n"}]
    )
    page.click("#file-submit")
    page.wait_for_selector("#file-result:not([hidden])")
    with page.expect_download() as download:
        page.click("#file-link")
    got = Path(download.value.path()).read_text(encoding="utf-8")
    assert got == keyed.body["translations"][0]["text"] + "\n"
    # en→de only: swap is disabled, and the page says why
    assert page.is_disabled("#swap")
    reason = "No model translates de→en, so the languages cannot be swapped."
    assert page.inner_text("#swap-reason") == reason and page.is_visible("#swap-reason")
    assert page.get_attribute("#swap", "title") == reason
    # a busy server (429 with Retry-After) and a failing one (500) read as such
    busy = {"error": "queue full", "error_type": "queue_full"}
    for status, words in ((429, "busy right now; try again in 2 s"), (500, "server failed (500)")):
        page.route("**/v1/translate", answer(status, busy, {"Retry-After": "2"}))
        page.fill("#input", f"a dog {status}")
        wait_for_message(page, words)
        assert shows_nothing_translated(page)
        page.unroute("**/v1/translate")


def test_phone_width_no_stale_state_and_accessibility(
    new_page, page_server: Server, artifacts: Path, axe_source: str
) -> None:
    page = new_page(phone=True)
    open_page(page, page_server)
    page.select_option("#source", "en")
    page.fill("#input", "two dogs play")
    wait_for_output(page, [native(page_server, ["two dogs play"])["translations"][0]["text"]])
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
    page.screenshot(path=str(artifacts / "page-phone.png"), full_page=True)
    assert run_axe(page, axe_source) == []
    # an error while the output is below the fold: scrolled into view, the old output gone
    page.evaluate("window.scrollTo(0, 0)")
    page.route("**/v1/translate", answer(413, {"error": "body too large", "error_type": "x"}))
    page.fill("#input", "two dogs play in the snow " * 6)
    wait_for_message(page, "too large for this server")
    assert shows_nothing_translated(page)
    box = page.locator("#message").bounding_box()
    height = page.evaluate("window.innerHeight")
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height, (box, height)
    page.screenshot(path=str(artifacts / "page-phone-error.png"))  # what the user sees
    assert run_axe(page, axe_source) == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_accessibility_violation(
    new_page, page_server: Server, artifacts: Path, axe_source: str, scheme: str
) -> None:
    """Every part of the page shown at once (translation, alternatives, a warning, the detected
    language, the model's description, an error), in the system's light and dark modes."""
    page = new_page(color_scheme=scheme)
    open_page(page, page_server)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == {"light": "rgb(250, 250, 250)", "dark": "rgb(18, 19, 23)"}[scheme]
    page.select_option("#source", "auto")
    page.select_option("#target", "de")
    page.route("**/v1/translate", answer(200, WARNED))
    page.fill("#input", "red dog")
    page.wait_for_selector("#notes li")
    page.wait_for_selector("#alternatives-box:not([hidden])")
    page.click("#file-submit")  # no file: its error shows too
    wait_for_message(page, "Choose a", "#file-message")
    page.screenshot(path=str(artifacts / f"page-{scheme}.png"), full_page=True)
    assert run_axe(page, axe_source) == []
    page.unroute("**/v1/translate")
    page.route("**/v1/translate", answer(500, {"error": "engine failed", "error_type": "x"}))
    page.fill("#input", "red dog runs")
    wait_for_message(page, "server failed (500)")
    assert page.is_visible("#swap-reason")  # auto, nothing detected: swap says why it is off
    page.screenshot(path=str(artifacts / f"page-{scheme}-error.png"), full_page=True)
    assert run_axe(page, axe_source) == []


def test_a_glossary_is_offered_for_its_pair_and_its_terms_are_used(
    page, page_server: Server
) -> None:
    """Issue 36: where the server has glossaries for the key, the page offers them for the pair
    they are made for, and a translation with one chosen holds its terms."""
    made = page_server.request(
        "POST",
        "/v2/glossaries",
        {
            "name": "animals",
            "source_lang": "en",
            "target_lang": "de",
            "entries": "dog\tKöter",
            "entries_format": "tsv",
        },
    )
    assert made.status == 201, made.body
    try:
        open_page(page, page_server)
        page.select_option("#source", "en")
        page.select_option("#target", "de")
        page.wait_for_selector("#glossary-row", state="visible")
        assert page.locator("#glossary option").all_text_contents() == ["None", "animals"]
        page.fill("#input", "red dog")
        without = native(page_server, ["red dog"])["translations"][0]["text"]
        wait_for_output(page, [without])
        page.select_option("#glossary", made.body["glossary_id"])
        page.wait_for_function("document.querySelector('#output').textContent.includes('Köter')")
        page.select_option("#source", "de")  # no glossary for de→en: no choice shown
        page.wait_for_selector("#glossary-row", state="hidden")
    finally:
        page_server.request("DELETE", f"/v2/glossaries/{made.body['glossary_id']}")
