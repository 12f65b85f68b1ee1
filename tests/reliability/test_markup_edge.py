"""Hostile markup (issue 35, items 5 and 6) against a real server on loopback: parsed in linear
time off the event loop, copied byte for byte or refused with a 4xx, never a 500.

Each case failed on the code before: the ``<a <a`` request below blocked ``/healthz`` for
seconds (CPython's html.parser backtracks on unfinished tags, and ran on the event loop), a tag
around only a no-break space and ``<![ `` were 500s, ``&#;`` ended tokenizing (the script after
it was sent to the model), and an XML internal subset became a translated text node.
"""

from __future__ import annotations

import time

import pytest

from service.usecase.markup import MAX_DEPTH
from tests.service.conftest import Server, liveness_while


def libre(server: Server, texts: list[str], **fields: object):
    return server.request(
        "POST",
        "/translate",
        {"q": texts, "source": "en", "target": "de", "format": "html", **fields},
    )


def test_liveness_stays_fast_while_unfinished_tags_are_parsed(server: Server) -> None:
    # 640 KB, within every documented limit; short sentences, so that the toy model takes them
    documents = [("<a Dogs. Cats run. " * 263)[:4998]] * 128
    started = time.perf_counter()
    reply, slowest = liveness_while(server, lambda: libre(server, documents))
    assert reply.status == 200, reply.body
    assert len(reply.body["translatedText"]) == 128  # "<a" opens no tag: it is text
    assert slowest < 1.0, f"/healthz took {slowest:.2f} s while the markup was parsed"
    assert time.perf_counter() - started < 20


@pytest.mark.parametrize(
    ("document", "kept"),
    [
        ("Price: <b>&nbsp;</b> 10 EUR", "<b>&nbsp;</b>"),
        ("Price: <b>\u3000</b> 10 EUR", "<b>\u3000</b>"),
        ("Price: <b>\u2003</b> 10 EUR", "<b>\u2003</b>"),
        ("Price: <b>\v</b> 10 EUR", "<b>\v</b>"),
        ("a dog <![ runs", "<![ runs"),
        ("a dog &#; b &#; <script>var x = 'a dog';</script>", "<script>var x = 'a dog';</script>"),
        ("<!-- never closed <p>a dog</p>", "<!-- never closed <p>a dog</p>"),
    ],
)
def test_odd_markup_is_kept_byte_for_byte(server: Server, document: str, kept: str) -> None:
    reply = libre(server, [document])
    assert reply.status == 200, reply.body
    assert kept in reply.body["translatedText"][0]


def test_an_xml_internal_subset_and_its_entities_are_copied(server: Server) -> None:
    xml = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY b "c">]><d>a dog &b; runs</d>'
    reply = server.request(
        "POST",
        "/v2/translate",
        {"text": [xml], "target_lang": "DE", "source_lang": "EN", "tag_handling": "xml"},
    )
    assert reply.status == 200, reply.body
    out = reply.body["translations"][0]["text"]
    assert out.startswith('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY b "c">]><d>')
    assert "&b;" in out and "]>" not in out.split("<d>")[1]


def test_markup_nested_past_a_browsers_depth_is_refused_by_name(server: Server) -> None:
    deep = "<b>" * (MAX_DEPTH + 1) + "a dog" + "</b>" * (MAX_DEPTH + 1)
    reply = libre(server, [deep])
    assert reply.status == 400 and f"more than {MAX_DEPTH} elements" in reply.body["error"]
    shallow = "<b>" * MAX_DEPTH + "a dog" + "</b>" * MAX_DEPTH
    assert libre(server, [shallow]).status == 200
    assert server.request("GET", "/healthz").status == 200
