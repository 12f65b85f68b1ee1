"""HTML/XML text translated in place: every tag, attribute, comment, entity and CDATA kept."""

from __future__ import annotations

import asyncio
import html
from html.parser import HTMLParser

import numpy as np
import pytest

from service.decoding.alignment import WordAlignment, words
from service.usecase.markup import MarkupError, TagOptions, translate_markup

CORPUS_HTML = [
    # a Wikipedia-like paragraph: links with titles, a reference, bold, entities
    '<p><b>Seoul</b> (<span lang="ko">서울</span>) is the capital of '
    '<a href="/wiki/South_Korea" title="South Korea">South Korea</a>.<sup id="cite-1">'
    '<a href="#note-1">[1]</a></sup> It has 9.4&nbsp;million people &amp; many parks.</p>',
    # an e-mail template: table, inline styles, attributes with text, a comment, an image
    '<table role="presentation" style="width:100%"><tr><td align="center">\n'
    "  <!-- header -->\n"
    '  <img src="logo.png" alt="Our logo" width="120">\n'
    '  <h1 style="font-family:Arial,sans-serif">Welcome, <em>friend</em>!</h1>\n'
    '  <p>Click <a href="https://example.org/?a=1&amp;b=2">here</a> to confirm your '
    "address.<br>\n  Thanks &mdash; the team</p>\n"
    "</td></tr></table>",
    # rendered Markdown: code that must not change, a list, a blockquote
    "<h2>Install</h2>\n<p>Run <code>pip install tongyeok</code> and then <kbd>Enter</kbd>.</p>\n"
    "<ul>\n<li>Fast &lt;1 ms</li>\n<li>Small</li>\n</ul>\n<blockquote><p>A quote.</p></blockquote>",
    # a full document: doctype, head, script and style untouched, translate="no"
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>My page</title>'
    '<style>p::before { content: "Do not translate"; }</style>'
    '<script>if (a < b && c > d) { alert("Hello"); }</script></head>\n'
    '<body><h1>My First Heading</h1><p translate="no">My first paragraph.</p>'
    '<p class="intro notranslate">Tongyeok</p><p>Visit <span translate="no">Tongyeok</span> '
    "today.</p></body></html>",
    # nested inline tags, a button, a form label, numeric character references
    '<div class="card"><p>This is <strong>very <em>important</em></strong> news &#8212; '
    'read it <a href="/n"><i>now</i></a>.</p><label for="q">Search</label>'
    '<input id="q" placeholder="Type here"><button type="submit">Go</button></div>',
]

CORPUS_XML = [
    '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
    "<title>News</title><item><title>A dog in the park</title>"
    "<description><![CDATA[<p>Raw <b>HTML</b> inside CDATA</p>]]></description>"
    "<link>https://example.org/1</link></item></channel></rss>",
    "<document>\n  <meta>\n    <title>A document's title</title>\n  </meta>\n  <content>\n"
    "    <par>This is the first sentence. Followed by a second one.</par>\n"
    "    <par>Press <i>Continue</i> to advance &amp; <x>Settings</x> to stay.</par>\n"
    "  </content>\n</document>",
    '<svg xmlns="http://www.w3.org/2000/svg" width="100"><!-- a label -->'
    '<text x="10" y="20">Two children</text><g><text x="10" y="40">A ball</text></g></svg>',
    '<xliff version="1.2"><file source-language="en"><body><trans-unit id="1">'
    '<source>Open the <g id="1">file</g> menu.</source></trans-unit></body></file></xliff>',
]


class Outline(HTMLParser):
    """Everything but text, as written, and the text decoded: an oracle independent of markup.py."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.structure: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.structure.append(("start", self.get_starttag_text() or ""))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        self.structure.append(("end", tag))

    def handle_data(self, data):
        self.text.append(data)

    def handle_comment(self, data):
        self.structure.append(("comment", data))

    def handle_decl(self, decl):
        self.structure.append(("decl", decl))

    def handle_pi(self, data):
        self.structure.append(("pi", data))

    def unknown_decl(self, data):
        self.structure.append(("cdata", data))


def outline(document: str) -> tuple[list[tuple[str, str]], str]:
    parser = Outline()
    parser.feed(document)
    parser.close()
    return parser.structure, " ".join("".join(parser.text).split())


def run(documents: list[str], options: TagOptions, fn) -> tuple[list[str], list[list[str]]]:
    calls: list[list[str]] = []

    async def translate(texts: list[str]) -> list[str]:
        calls.append(list(texts))
        return [fn(t) for t in texts]

    return asyncio.run(translate_markup(documents, options, translate)), calls


def reverse_words(text: str) -> str:
    """A translation that moves words around, as real ones do."""
    return " ".join(reversed(text.split(" ")))


@pytest.mark.parametrize(
    ("document", "mode"),
    [(d, "html") for d in CORPUS_HTML] + [(d, "xml") for d in CORPUS_XML],
)
def test_round_trip_keeps_everything_but_the_text(document, mode):
    options = TagOptions(mode=mode)
    same, calls = run([document], options, lambda t: t)
    assert same == [document]  # an identity translation gives back the input, byte for byte
    assert len(calls) == 1

    upper, _ = run([document], options, str.upper)
    structure, text = outline(document)
    upper_structure, upper_text = outline(upper[0])
    assert upper_structure == structure  # every tag, attribute, comment, CDATA, declaration
    assert upper_text.upper() == text.upper() and upper_text != text
    # script, style and translate="no" are copied as they are
    for kept in ('alert("Hello")', "Do not translate", "My first paragraph.", ">Tongyeok<"):
        assert (kept in upper[0]) == (kept in document)

    moved, _ = run([document], options, reverse_words)
    moved_structure, moved_text = outline(moved[0])
    assert moved_structure == structure
    assert sorted(moved_text.replace(" ", "")) == sorted(text.replace(" ", ""))  # none lost


def test_sentences_with_inline_tags_are_translated_whole():
    out, calls = run(["Press <i>Continue</i> to advance."], TagOptions(), str.upper)
    assert "Press Continue to advance." in calls[0]
    assert out == ["PRESS <i>CONTINUE</i> TO ADVANCE."]


def test_inline_tags_follow_their_words_when_the_order_changes():
    out, _ = run(["Press <b>Continue</b> now"], TagOptions(), reverse_words)
    assert out == ["now <b>Continue</b> Press"]


def test_block_tags_split_sentences():
    _, calls = run(["<h1>Title</h1><p>One <b>two</b></p>"], TagOptions(), str.upper)
    assert "Title" in calls[0] and "One two" in calls[0]
    assert "Title One two" not in calls[0]


def test_splitting_and_non_splitting_tags_override_the_defaults():
    doc = "Press <i>Continue</i> to <x>advance</x>."
    _, calls = run([doc], TagOptions.parse("html", splitting_tags="i"), str.upper)
    assert "Press" in calls[0] and "Press Continue to advance." not in calls[0]
    _, calls = run([doc], TagOptions.parse("html", non_splitting_tags=["x"]), str.upper)
    assert "Press Continue to advance." in calls[0]


def test_xml_outline_detection_and_its_switch():
    doc = "<doc><par>First <b>bold</b> one.</par>\n<par>Second.</par></doc>"
    out, calls = run([doc], TagOptions(mode="xml"), str.upper)
    assert set(calls[0]) >= {"First bold one.", "Second."}
    assert out == ["<doc><par>FIRST <b>BOLD</b> ONE.</par>\n<par>SECOND.</par></doc>"]
    # outline_detection=0: only splitting_tags split; everything else is inside one sentence
    _, calls = run([doc], TagOptions.parse("xml", outline_detection="0"), str.upper)
    assert "First bold one. Second." in calls[0]
    _, calls = run(
        [doc], TagOptions.parse("xml", splitting_tags="par", outline_detection=0), str.upper
    )
    assert "First bold one." in calls[0] and "First bold one. Second." not in calls[0]


def test_ignore_tags_and_untranslatable_content_are_copied():
    doc = (
        "<p>Open <x>Settings</x> now.</p><script>var s = 'text';</script>"
        '<div translate="no">Brand</div><p class="notranslate">Name</p>'
    )
    out, calls = run([doc], TagOptions.parse("html", ignore_tags="x"), str.upper)
    assert out == [
        "<p>OPEN <x>Settings</x> NOW.</p><script>var s = 'text';</script>"
        '<div translate="no">Brand</div><p class="notranslate">Name</p>'
    ]
    assert not any(word in text for text in calls[0] for word in ("Settings", "Brand", "var"))


def test_entities_are_spelled_as_in_the_source():
    out, _ = run(["Tom &amp; Jerry&nbsp;&copy; 2024 &lt;3 caf&eacute;"], TagOptions(), str.upper)
    assert out == ["TOM &amp; JERRY&nbsp;&copy; 2024 &lt;3 CAFÉ"]
    # characters the translation brings are escaped whatever the source did
    out, _ = run(["<b>x</b> y"], TagOptions(), lambda t: t.replace("y", "<y> & z"))
    assert out == ["<b>x</b> &lt;y&gt; &amp; z"]


def test_malformed_xml_is_refused_and_malformed_html_keeps_every_word():
    with pytest.raises(MarkupError, match="line 1, column 7"):
        run(["<a><b></a>"], TagOptions(mode="xml"), str.upper)
    with pytest.raises(MarkupError, match="never closed"):
        run(["<a>text"], TagOptions(mode="xml"), str.upper)
    broken = "<p>One<li>two</b> three <i>four <div>five</p> six <b"
    out, _ = run([broken], TagOptions(), str.upper)
    _, text = outline(out[0])
    for word in ("ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX"):
        assert word in out[0]
    assert html.unescape(out[0]).count("<") >= broken.count("<") - 1, text


def test_many_documents_one_call_and_repeated_strings_once():
    docs = ["<p>A dog.</p>", "<p>A dog.</p><p>A cat.</p>", "plain text"]
    out, calls = run(docs, TagOptions(), str.upper)
    assert out == ["<p>A DOG.</p>", "<p>A DOG.</p><p>A CAT.</p>", "PLAIN TEXT"]
    assert len(calls) == 1 and sorted(calls[0]) == ["A cat.", "A dog.", "plain text"]


def test_options_from_request_fields():
    options = TagOptions.parse("html", ignore_tags="X, y", splitting_tags=["P"])
    assert options.ignore_tags == {"x", "y"} and options.splitting_tags == {"p"}
    assert TagOptions.parse("xml", ignore_tags="X").ignore_tags == {"X"}  # XML keeps case
    with pytest.raises(Exception, match="tag_handling"):
        TagOptions.parse("markdown")


# -- tags placed by a word alignment (service/decoding/alignment.py) ----------------------------


def lexicon_run(document: str, translation: str, lexicon: dict[str, str]):
    """``document`` translated whole into ``translation``; the alignment links each target word
    to the source word ``lexicon`` names for it (a word it does not know looks everywhere)."""
    calls: list[list[str]] = []

    async def translate(texts: list[str]) -> list[str]:
        calls.append(list(texts))
        return [translation if i == 0 else t.upper() for i, t in enumerate(texts)]

    async def align(pairs: list[tuple[str, str]]) -> list[WordAlignment | None]:
        out: list[WordAlignment | None] = []
        for source, target in pairs:
            src = [source[a:b] for a, b in words(source)]
            weights = np.full((len(words(target)), len(src)), 1.0 / len(src))
            for t, (a, b) in enumerate(words(target)):
                if target[a:b] in lexicon:
                    weights[t] = [float(w == lexicon[target[a:b]]) for w in src]
            out.append(WordAlignment(weights))
        return out

    result = asyncio.run(translate_markup([document], TagOptions(), translate, align))
    return result[0], calls


def test_a_tagged_sentence_is_translated_once_whole_and_its_tags_wrap_the_aligned_words():
    out, calls = lexicon_run(
        "<p>A <b>dog</b> runs on the beach.</p>",
        "Ein Hund rennt am Strand.",
        {"Ein": "A", "Hund": "dog", "rennt": "runs", "am": "on", "Strand.": "beach."},
    )
    assert out == "<p>Ein <b>Hund</b> rennt am Strand.</p>"
    assert calls == [["A dog runs on the beach."]]  # no piece translated alone


def test_a_tag_moves_with_its_word_and_leaves_punctuation_outside():
    out, _ = lexicon_run(
        "Two men are playing <b>soccer</b> in a park.",
        "Zwei Männer spielen in einem Park Fußball.",
        {"Zwei": "Two", "spielen": "playing", "Park": "park.", "Fußball.": "soccer"},
    )
    assert out == "Zwei Männer spielen in einem Park <b>Fußball</b>."


def test_nested_and_sibling_tags_follow_their_words_and_stay_well_formed():
    out, _ = lexicon_run(
        "This is <strong>very <em>important</em></strong> news, <i>read</i> <u>it</u>.",
        "Lies es, das sind sehr wichtige Nachrichten.",
        {"Lies": "read", "es,": "it.", "sehr": "very", "wichtige": "important", "das": "This"},
    )
    assert out == (
        "<i>Lies</i> <u>es</u>, das sind <strong>sehr <em>wichtige</em></strong> Nachrichten."
    )


def test_a_tagged_word_the_alignment_loses_still_gets_its_tag_in_order():
    # "red" is linked nowhere: the tags keep their order, each around at least one word
    out, _ = lexicon_run("A <b>red</b> car.", "Ein rotes Auto.", {"Ein": "A", "Auto.": "car."})
    structure, text = outline(out)
    assert structure == outline("A <b>red</b> car.")[0] and text.split() == [
        "Ein",
        "rotes",
        "Auto.",
    ]
    inside = out.split("<b>")[1].split("</b>")[0]
    assert inside.strip()  # the tag wraps a word, not nothing


@pytest.mark.parametrize("blank", ["&nbsp;", "\u3000", "\u2003", "\v"])
@pytest.mark.parametrize("aligned", [True, False])
def test_a_tag_around_only_a_space_is_copied_as_it_is(blank: str, aligned: bool):
    document = f"Price: <b>{blank}</b> 10 EUR"
    if aligned:
        out, _ = lexicon_run(document, "Preis: 10 EUR", {"Preis:": "Price:"})
    else:
        out = run([document], TagOptions(), str.upper)[0][0]
    assert f"<b>{blank}</b>" in out
    assert outline(out)[0] == outline(document)[0]
