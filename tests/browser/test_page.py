"""The translation page in a real browser: type, read the translation, switch pairs, see errors,
and no serious accessibility violation (axe-core)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.service.conftest import Server

TIMEOUT_MS = 20_000


@pytest.fixture
def page(browser, artifacts: Path, request: pytest.FixtureRequest):
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.requests = []  # every URL the page asks for: this server's, nothing else
    page.on("request", lambda r: page.requests.append(r.url))
    yield page
    page.screenshot(path=str(artifacts / f"{request.node.name}-end.png"), full_page=True)
    context.close()


def output_lines(page) -> list[str]:
    return page.locator("#output p").all_text_contents()


def test_type_and_read_the_translation(page, page_server: Server, artifacts: Path) -> None:
    page.goto(page_server.url + "/")
    assert page.title().startswith("Tongyeok")
    page.wait_for_function("document.querySelectorAll('#source option').length == 2")
    page.select_option("#source", "en")
    assert page.locator("#target option").all_inner_texts() == ["German (de)"]
    assert not page.is_visible("#api-key")  # no keys on this server: no key field
    text = "red dog runs\n\na cat sits"
    page.fill("#input", text)
    page.wait_for_function("document.querySelectorAll('#output p').length == 3")
    page.wait_for_function("document.querySelector('#output').getAttribute('aria-busy') == 'false'")
    expected = page_server.translate(["red dog runs", "a cat sits"], beam_size=4, nbest=3).body
    want = [t["text"] for t in expected["translations"]]
    assert output_lines(page) == [want[0], "", want[1]]  # paragraphs kept as paragraphs
    assert page.locator("#count").inner_text() == f"{len(text)} / 5000 characters"
    assert not page.locator("#copy").is_disabled()
    page.screenshot(path=str(artifacts / "page-desktop.png"), full_page=True)
    # one paragraph of one sentence: its alternatives (nbest) are listed
    page.fill("#input", "red dog runs")
    page.wait_for_function("document.querySelectorAll('#output p').length == 1")
    page.wait_for_selector("#alternatives-box:not([hidden])")
    single = page_server.translate(["red dog runs"], beam_size=4, nbest=3).body["translations"][0]
    page.wait_for_function(
        f"document.querySelector('#output p').textContent == {json.dumps(single['text'])}"
    )
    assert page.locator("#alternatives li").all_text_contents() == single["alternatives"]
    assert all(url.startswith(page_server.url) for url in page.requests), page.requests


def test_typing_fast_shows_the_last_text_only(page, page_server: Server) -> None:
    page.goto(page_server.url + "/")
    page.wait_for_function("document.querySelectorAll('#target option').length >= 1")
    page.select_option("#source", "en")
    page.locator("#input").press_sequentially("a cat", delay=5)
    page.wait_for_timeout(450)  # the first request is on its way
    page.locator("#input").press_sequentially(" sits on a red mat", delay=5)
    want = page_server.translate(["a cat sits on a red mat"], beam_size=4, nbest=3).body
    page.wait_for_function(
        "document.querySelector('#output p') && document.querySelector('#output p').textContent"
        f" == {json.dumps(want['translations'][0]['text'])}"
    )
    page.wait_for_timeout(300)  # an earlier answer arriving late must not replace it
    assert output_lines(page) == [want["translations"][0]["text"]]


def test_swap_switches_the_pair_and_the_texts(page, page_server: Server) -> None:
    page.goto(page_server.url + "/")
    page.wait_for_function("!document.querySelector('#swap').disabled")  # de→en exists
    page.select_option("#source", "en")
    page.fill("#input", "red dog")
    page.wait_for_function("document.querySelectorAll('#output p').length == 1")
    translated = page_server.translate(["red dog"], beam_size=4, nbest=3).body
    first = translated["translations"][0]["text"]
    page.wait_for_function(
        f"document.querySelector('#output p').textContent == {json.dumps(first)}"
    )
    page.focus("#swap")
    page.keyboard.press("Enter")  # keyboard, not only the mouse
    assert page.input_value("#source") == "de" and page.input_value("#target") == "en"
    assert page.input_value("#input") == first
    back = page_server.request(
        "POST",
        "/v1/translate",
        {"texts": [first], "source": "de", "target": "en", "beam_size": 4, "nbest": 3},
    ).body["translations"][0]["text"]
    page.wait_for_function(f"document.querySelector('#output p').textContent == {json.dumps(back)}")


def answer_with(status: int):
    """A route handler standing in for a busy or failing server."""

    def fulfill(route, request) -> None:
        body = {"error": "queue full", "error_type": "queue_full"}
        route.fulfill(status=status, headers={"Retry-After": "2"}, json=body)

    return fulfill


def test_errors_are_explained(page, keyed_server: Server, artifacts: Path) -> None:
    with page.expect_response("**/v1/models") as answer:
        page.goto(keyed_server.url + "/")
    assert answer.value.status == 401  # /v1/models needs the key too: no languages without it
    page.wait_for_selector("#key-row:not([hidden])")  # /frontend/settings: keys are on
    page.wait_for_function("document.querySelector('#message').textContent.includes('valid API')")
    page.fill("#input", "red dog")
    page.fill("#api-key", "wrong")
    with page.expect_response("**/v1/models") as answer:
        page.dispatch_event("#api-key", "change")
    # a wrong key: 403, as DeepL's and LibreTranslate's clients expect
    assert answer.value.status == 403
    page.wait_for_function("document.querySelector('#message').textContent.includes('valid API')")
    page.screenshot(path=str(artifacts / "page-key-error.png"), full_page=True)
    page.fill("#api-key", "s3cret")
    with page.expect_response("**/v1/translate") as answer:
        page.dispatch_event("#api-key", "change")
    assert answer.value.status == 200
    assert page.eval_on_selector_all("#target option", "options => options.length") == 1
    page.wait_for_function("document.querySelectorAll('#output p').length == 1")
    assert page.inner_text("#message") == ""
    # a busy server (429 with Retry-After) and a failing one (500) read as such
    for status, words in ((429, "busy right now; try again in 2 s"), (500, "server failed (500)")):
        page.route("**/v1/translate", answer_with(status))
        page.fill("#input", f"a dog {status}")
        page.wait_for_function(
            f"document.querySelector('#message').textContent.includes({json.dumps(words)})"
        )
        page.unroute("**/v1/translate")
    page.fill("#input", "x" * 5001)  # over the server's character limit: said before sending
    page.wait_for_function("document.querySelector('#message').textContent.includes('limit')")
    assert "over" in page.get_attribute("#count", "class")


def test_phone_width_and_accessibility(browser, page_server: Server, artifacts, axe_source) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(page_server.url + "/")
    page.wait_for_function("document.querySelectorAll('#target option').length >= 1")
    page.fill("#input", "two dogs play")
    page.wait_for_function("document.querySelectorAll('#output p').length == 1")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone: no sideways scrolling
    page.screenshot(path=str(artifacts / "page-phone.png"), full_page=True)
    page.add_script_tag(content=axe_source)
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    serious = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert serious == []
    context.close()
