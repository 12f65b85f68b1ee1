"""Whole documents through DeepL's document API with the official client, each built here with
its own library, translated, reopened with that library and its structure compared; and the
hostile uploads each a clear 4xx."""

from __future__ import annotations

import io
import socket
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import deepl
import pytest

from tests.service.conftest import Server, running_server
from tests.service.documents_fixtures import (
    MARKDOWN,
    PAGE,
    SENTENCE,
    SRT,
    TAGGED,
    TEXT,
    VTT,
    XLIFF_12,
    XLIFF_20,
    as_excel_writes,
    check_workbook,
    docx_document,
    odf_document,
    po_document,
    pptx_document,
    translate_file,
    xlsx_document,
    xml_shape,
    xml_texts,
)


@pytest.fixture(scope="module")
def server(toy_repository: Path) -> Iterator[Server]:
    with running_server(toy_repository, max_body_bytes=4_000_000) as s:
        yield s


def plain(server: Server, text: str) -> str:
    return server.translate([text]).body["translations"][0]["text"]


def through_deepl(server: Server, tmp_path: Path, name: str, data: bytes) -> bytes:
    source, output = tmp_path / name, tmp_path / f"translated-{name}"
    source.write_bytes(data)
    translator = deepl.Translator("any-key", server_url=server.url)
    status = translator.translate_document_from_filepath(
        source, output, source_lang="EN", target_lang="DE"
    )
    assert status.done and status.billed_characters and status.billed_characters > 0
    return output.read_bytes()


def test_docx_keeps_styles_runs_links_and_tables(server: Server, tmp_path: Path) -> None:
    import docx

    source = docx.Document(io.BytesIO(docx_document()))
    result = docx.Document(io.BytesIO(through_deepl(server, tmp_path, "a.docx", docx_document())))
    assert [p.style.name for p in result.paragraphs] == [p.style.name for p in source.paragraphs]
    assert result.paragraphs[0].text == plain(server, SENTENCE)
    runs = result.paragraphs[1].runs
    assert any(r.bold for r in runs) and any(r.italic for r in runs)  # each run kept its format
    assert "".join(r.text for r in runs).split() == plain(server, "".join(TAGGED)).split()
    links = result.paragraphs[2]._p.findall(
        "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}hyperlink"
    )
    assert len(links) == 1 and links[0].get(
        "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
    ) == source.paragraphs[2]._p[-1].get(
        "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
    )
    table = result.tables[0]
    assert (len(table.rows), len(table.columns)) == (2, 2)
    assert table.cell(0, 0).text == plain(server, SENTENCE)
    assert table.cell(1, 1).text == plain(server, "red dog")


def test_txt_and_html(server: Server, tmp_path: Path) -> None:
    out = through_deepl(server, tmp_path, "a.txt", TEXT.encode()).decode()
    assert out == f"{plain(server, SENTENCE)}\n\n{plain(server, 'red dog')}\n"
    html = through_deepl(server, tmp_path, "a.html", PAGE.encode()).decode()
    assert f'<h1 class="t">{plain(server, SENTENCE)}</h1>' in html and "<b>" in html


def test_subtitles_keep_their_timings(server: Server, tmp_path: Path) -> None:
    import pysubs2

    for kind, data in (("srt", SRT), ("vtt", VTT)):
        source = pysubs2.SSAFile.from_string(data, format_=kind, keep_html_tags=True)
        out = through_deepl(server, tmp_path, f"a.{kind}", data.encode()).decode()
        result = pysubs2.SSAFile.from_string(out, format_=kind, keep_html_tags=True)
        assert [(e.start, e.end) for e in result] == [(e.start, e.end) for e in source]
        assert result[0].text.count("\\N") == 1  # still two lines
        assert result[1].text == plain(server, "red dog runs")


def test_pptx_keeps_runs_and_tables(server: Server, tmp_path: Path) -> None:
    import pptx

    result = pptx.Presentation(
        io.BytesIO(through_deepl(server, tmp_path, "a.pptx", pptx_document()))
    )
    shapes = result.slides[0].shapes
    assert shapes.title.text == plain(server, SENTENCE)
    runs = shapes[1].text_frame.paragraphs[0].runs
    assert any(r.font.bold for r in runs)
    assert "".join(r.text for r in runs).split() == plain(server, "".join(TAGGED)).split()
    assert shapes[2].table.cell(0, 1).text == plain(server, "red dog")


def test_xlsx_comes_back_with_every_part_it_had(server: Server, tmp_path: Path) -> None:
    """Issue 36: openpyxl's save dropped charts and images and flattened rich text. Through
    DeepL's client and LibreTranslate's /translate_file alike, only the parts with text change."""
    check_workbook(
        through_deepl(server, tmp_path, "a.xlsx", xlsx_document()), partial(plain, server)
    )
    check_workbook(translate_file(server, "a.xlsx", xlsx_document()), partial(plain, server))


def test_xlsx_rich_text_keeps_its_line_breaks(server: Server, tmp_path: Path) -> None:
    """A rich-text cell's lines came back joined by a space: each line is translated on its
    own, with its runs, and the break kept between them; in a shared string and an inline
    one alike (``B1`` stays inline)."""
    import openpyxl
    from openpyxl.cell.rich_text import CellRichText, TextBlock
    from openpyxl.cell.text import InlineFont
    from openpyxl.drawing.image import Image
    from PIL import Image as Picture

    book = openpyxl.Workbook()
    for cell in ("A1", "B1"):
        book.active[cell] = CellRichText(
            TAGGED[0],
            TextBlock(InlineFont(b=True), TAGGED[1]),
            "\ntwo dogs ",
            TextBlock(InlineFont(b=True), "play"),
        )
    png = io.BytesIO()
    Picture.new("RGB", (2, 2), "red").save(png, "PNG")
    book.active.add_image(Image(png), "D4")  # a drawing, which ``as_excel_writes`` adds to
    data = io.BytesIO()
    book.save(data)
    source = as_excel_writes(data.getvalue(), inline={"B1"})
    parts = zipfile.ZipFile(io.BytesIO(source))
    assert b"<si><r>" in parts.read("xl/sharedStrings.xml")
    assert b"<is><r>" in parts.read("xl/worksheets/sheet1.xml")
    out = through_deepl(server, tmp_path, "lines.xlsx", source)
    sheet = openpyxl.load_workbook(io.BytesIO(out), rich_text=True).active
    for cell in ("A1", "B1"):
        rich = sheet[cell].value
        assert isinstance(rich, CellRichText), cell
        assert str(rich).count("\n") == 1, str(rich)
        first, second = str(rich).split("\n")
        assert first.split() == plain(server, "red dog runs").split()
        assert second.split() == plain(server, SENTENCE).split()
        line, bold = 0, set()  # the lines with words in a bold run
        for block in rich:
            for n, text in enumerate(str(block).split("\n")):
                line += n > 0
                if isinstance(block, TextBlock) and block.font.b and text.strip():
                    bold.add(line)
        assert bold == {0, 1}, cell


def test_hostile_xlsx_is_refused_by_name(server: Server) -> None:
    """The package's checks still run at upload; a malformed shared string table is a 400 by
    name."""
    source = zipfile.ZipFile(io.BytesIO(xlsx_document()))

    def workbook(**parts: bytes) -> bytes:
        return zipped({n: parts.get(n, source.read(n)) for n in source.namelist()})

    cases = {
        "bomb.xlsx": (zipped({"xl/sharedStrings.xml": b"\0" * 200_000_000}), "zip bomb"),
        "broken.xlsx": (
            workbook(**{"xl/sharedStrings.xml": b"<sst><si><t>red dog</si></sst>"}),
            "xl/sharedStrings.xml: not well-formed",
        ),
        "laughs.xlsx": (
            workbook(
                **{
                    "xl/sharedStrings.xml": b'<!DOCTYPE t [<!ENTITY a "aaaa">]><sst><si><t>&a;'
                    b"</t></si></sst>"
                }
            ),
            "xl/sharedStrings.xml: XML with a DTD or entities",
        ),
        "other.xlsx": (
            workbook(**{"xl/sharedStrings.xml": b"<html><p>red dog</p></html>"}),
            "xl/sharedStrings.xml: not a shared string table",
        ),
        "deck.xlsx": (pptx_document(), "no workbook part"),
        "escape.xlsx": (zipped({"../xl/workbook.xml": b"<x/>"}), "outside itself"),
    }
    for name, (data, message) in cases.items():
        with pytest.raises(deepl.DeepLException, match=message):
            upload(server, name, data)


# -- hostile uploads ------------------------------------------------------------------------------


def upload(server: Server, name: str, data: bytes, key: str = "any-key") -> deepl.DocumentHandle:
    return deepl.Translator(key, server_url=server.url).translate_document_upload(
        data, target_lang="DE", source_lang="EN", filename=name
    )


def zipped(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_hostile_documents_are_refused_by_name(server: Server) -> None:
    bomb = zipped({"word/document.xml": b"\0" * 200_000_000})
    assert len(bomb) < 400_000
    cases = {
        "bomb.docx": (bomb, "zip bomb"),
        "broken.docx": (b"PK\x03\x04 not really a zip", "not a readable zip"),
        "empty.docx": (zipped({"hello.txt": b"hi"}), "not a readable .docx"),
        "laughs.docx": (
            zipped(
                {
                    "[Content_Types].xml": b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaa">'
                    b'<!ENTITY b "&a;&a;&a;&a;">]><t>&b;</t>'
                }
            ),
            "DTD or entities",
        ),
        "escape.docx": (zipped({"../../etc/passwd": b"x"}), "outside itself"),
        "a.exe": (b"MZ", "not supported"),
    }
    for name, (data, message) in cases.items():
        with pytest.raises(deepl.DeepLException, match=message):
            upload(server, name, data)
    for name in ("../../a.docx", "a/b.txt", "a\0.txt"):
        with pytest.raises(deepl.DeepLException, match="plain name"):
            upload(server, name, b"two dogs play")


def test_a_200_mb_upload_is_413_before_it_is_read(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(
            b"POST /v2/document HTTP/1.1\r\nHost: x\r\nAuthorization: DeepL-Auth-Key k\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 200000000\r\n\r\n--x\r\n"
        )
        answer = ""
        while (chunk := conn.recv(65536).decode()) and not answer.endswith("}"):
            answer += chunk
    assert answer.startswith("HTTP/1.1 413") and "max_body_bytes" in answer


def test_one_key_has_a_bounded_number_of_documents(toy_repository: Path) -> None:
    with running_server(toy_repository, api_keys="k1,k2") as keyed:
        handles = [upload(keyed, "a.txt", b"two dogs play", "k1") for _ in range(16)]
        with pytest.raises(deepl.DeepLException, match="16 documents"):
            upload(keyed, "a.txt", b"two dogs play", "k1")
        upload(keyed, "a.txt", b"two dogs play", "k2")  # another key is not held back
        other = deepl.Translator("k2", server_url=keyed.url)
        with pytest.raises(deepl.DeepLException, match="no document"):
            other.translate_document_get_status(handles[0])  # not k2's
        mine = deepl.Translator("k1", server_url=keyed.url)
        status = mine.translate_document_wait_until_done(handles[0])
        assert status.done
        mine.translate_document_download(handles[0], io.BytesIO())
        with pytest.raises(deepl.DeepLException, match="no document"):
            mine.translate_document_get_status(handles[0])  # deleted once downloaded
        upload(keyed, "a.txt", b"two dogs play", "k1")  # room again


def test_po_catalog_gets_its_msgstrs(server: Server, tmp_path: Path) -> None:
    import polib

    out = through_deepl(server, tmp_path, "a.po", po_document())
    result = polib.pofile(out.decode())
    first, second = result[0], result[1]
    assert (first.msgstr, first.occurrences, first.flags) == (
        plain(server, SENTENCE),
        [("app.py", "3")],
        ["c-format"],
    )
    assert second.msgstr_plural == {0: plain(server, "red dog"), 1: plain(server, "red dogs")}
    assert result.metadata["Content-Type"] == "text/plain; charset=UTF-8"


def test_libretranslate_translate_file_takes_the_document_formats(server: Server) -> None:
    """Issue 36: /translate_file took only .txt and .html (.srt, .md and .docx got 422)."""
    import docx
    import pysubs2

    result = docx.Document(io.BytesIO(translate_file(server, "a.docx", docx_document())))
    assert result.paragraphs[0].text == plain(server, SENTENCE)
    assert any(r.bold for r in result.paragraphs[1].runs)
    source = pysubs2.SSAFile.from_string(SRT, format_="srt", keep_html_tags=True)
    out = translate_file(server, "a.srt", SRT.encode(), source="auto").decode()
    subtitles = pysubs2.SSAFile.from_string(out, format_="srt", keep_html_tags=True)
    assert [(e.start, e.end) for e in subtitles] == [(e.start, e.end) for e in source]
    assert subtitles[1].text == plain(server, "red dog runs")


# -- OpenDocument (built by hand: odfpy publishes no wheel) ---------------------------------------


@pytest.mark.parametrize("kind", ["odt", "odp", "ods"])
def test_odf_keeps_its_structure_and_spans(server: Server, tmp_path: Path, kind: str) -> None:
    source = zipfile.ZipFile(io.BytesIO(odf_document(kind)))
    result = zipfile.ZipFile(
        io.BytesIO(through_deepl(server, tmp_path, f"a.{kind}", odf_document(kind)))
    )
    first = result.infolist()[0]
    assert (first.filename, first.compress_type) == ("mimetype", zipfile.ZIP_STORED)
    assert result.namelist() == source.namelist()
    for name in ("mimetype", "META-INF/manifest.xml"):
        assert result.read(name) == source.read(name)
    content, before = result.read("content.xml"), source.read("content.xml")
    assert xml_shape(content) == xml_shape(before)  # every element and attribute, in order
    assert content.split(b"<office:body>")[0] == before.split(b"<office:body>")[0]  # styles
    paragraphs = xml_texts(content, "p") + xml_texts(content, "h")
    assert plain(server, SENTENCE) in paragraphs
    spans = xml_texts(content, "span")
    assert len(spans) == 1 and spans[0].strip()  # the bold span kept, holding words
    whole = " ".join(plain(server, "".join(TAGGED)).split())
    assert any(whole in " ".join(p.split()) for p in paragraphs)  # odt's holds its note too
    assert xml_texts(result.read("styles.xml"), "p") == [plain(server, SENTENCE)]  # the header
    if kind == "odt":
        assert plain(server, "red dog") in paragraphs  # the footnote, translated on its own
        assert b"<text:note-citation>1</text:note-citation>" in content
        assert b'xlink:href="https://example.org/"' in content
    if kind == "ods":
        assert b'office:value="42"><text:p>42</text:p>' in content


def test_hostile_odf_and_xliff_are_refused_by_name(server: Server) -> None:
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        "<office:document-content>&b;</office:document-content>"
    )
    cases = {
        "bomb.odt": (zipped({"mimetype": b"x", "content.xml": b"\0" * 200_000_000}), "zip bomb"),
        "laughs.odt": (odf_document("odt", laughs), "DTD or entities"),
        "sheet.odt": (odf_document("ods"), "not a .odt document"),
        "empty.ods": (zipped({"hello.txt": b"hi"}), "not a readable .ods"),
        "broken.odp": (b"PK\x03\x04 not really a zip", "not a readable zip"),
        "laughs.xlf": (laughs.replace("office:document-content", "xliff").encode(), "DTD"),
        "other.xliff": (b'<html version="1.2"><p>hi</p></html>', "not an XLIFF file"),
        "old.xlf": (b'<xliff version="1.1"/>', "version '1.1' is not served"),
        "broken.xlf": (b'<xliff version="1.2"><file>', "not well-formed"),
    }
    for name, (data, message) in cases.items():
        with pytest.raises(deepl.DeepLException, match=message):
            upload(server, name, data)
    upload(server, "odd.md", b"# [unclosed *markdown `\n\n|a|\n|-")  # any text is Markdown


def test_markdown_keeps_code_links_and_lines(server: Server, tmp_path: Path) -> None:
    out = through_deepl(server, tmp_path, "a.md", MARKDOWN.encode()).decode()
    lines, before = out.split("\n"), MARKDOWN.split("\n")
    assert len(lines) == len(before)
    assert lines[:3] == before[:3]  # front matter
    assert lines[3] == f"# {plain(server, SENTENCE)}"
    assert lines[5].startswith("- ") and "**" in lines[5]  # the strong run kept
    assert " ".join(lines[5][2:].replace("**", "").split()) == " ".join(
        plain(server, "".join(TAGGED)).split()
    )
    assert lines[6].startswith("- ") and lines[7].startswith("  ")  # two lines still
    assert '](https://example.org/a_b "park")' in lines[6] + lines[7]  # the URL kept
    assert lines[9:12] == before[9:12]  # the code block, byte for byte
    assert lines[14] == before[14] and [ln.count("|") for ln in lines[13:16]] == [3, 3, 3]
    assert lines[15].endswith(" | `x = 1` |") and plain(server, "red dog") in lines[15]
    again = translate_file(server, "a.markdown", MARKDOWN.encode()).decode()
    assert again == out  # LibreTranslate's /translate_file serves it too


def test_xliff_targets_are_filled_with_their_codes(server: Server, tmp_path: Path) -> None:
    from lxml import etree

    tagged = " ".join(plain(server, "".join(TAGGED)).split())
    for version, data in (("1.2", XLIFF_12), ("2.0", XLIFF_20)):
        out = through_deepl(server, tmp_path, "a.xlf", data.encode()).decode()
        root = etree.fromstring(out.encode())
        ns = {"x": f"urn:oasis:names:tc:xliff:document:{version}"}
        targets = root.findall(".//x:target", ns)
        sources = root.findall(".//x:source", ns)
        texts = [" ".join("".join(t.itertext()).split()) for t in targets]
        if version == "1.2":
            assert len(sources) == 3 and len(targets) == 2  # translate="no" left alone
            assert texts[0] == plain(server, SENTENCE)
            assert [t.get("state") for t in targets] == ["translated", "translated"]
            codes = [(c.tag.split("}")[1], c.get("id"), c.text) for c in targets[1]]
            assert codes == [("g", "b", codes[0][2]), ("ph", "p", "%s")] and codes[0][2]
            assert texts[1].replace("%s", " ").split() == tagged.split()
            assert "<header><note>kept</note></header>" in out
        else:
            assert len(targets) == 1 and root.find(".//x:segment", ns).get("state") == "translated"
            ids = [(c.tag.split("}")[1], c.get("id")) for c in targets[0]]
            assert ids == [("pc", "1"), ("ph", "2")]
            assert texts[0] == tagged
        # every line but the targets' and the segment's, byte for byte
        kept = [ln for ln in out.split("\n") if "<target" not in ln and "<segment" not in ln]
        assert kept == [
            ln for ln in data.split("\n") if "<target" not in ln and "<segment" not in ln
        ]


@pytest.mark.parametrize("version", ["1.2", "2.0"])
def test_xliff_names_the_target_language_asked_for(
    server: Server, tmp_path: Path, version: str
) -> None:
    """Decision 54 wrote no target language: a 2.0 file without ``trgLang`` came back holding
    targets (invalid 2.0), a 1.2 ``<file>`` without ``target-language`` named none. Absent, it
    is written (after the source language); the same language is kept as the file writes it;
    another is a 400 naming both, before any work."""
    from lxml import etree

    data, attribute = (XLIFF_12, "target-language") if version == "1.2" else (XLIFF_20, "trgLang")
    holder = ".//x:file" if version == "1.2" else "."
    ns = {"x": f"urn:oasis:names:tc:xliff:document:{version}"}
    named = f' {attribute}="de"'
    assert named in data
    absent = through_deepl(server, tmp_path, "a.xlf", data.replace(named, "").encode())
    assert etree.fromstring(absent).find(holder, ns).get(attribute) == "de"
    assert absent == through_deepl(server, tmp_path, "b.xlf", data.encode())  # byte for byte
    region = data.replace(named, named[:-1] + '-CH"').encode()
    region = through_deepl(server, tmp_path, "c.xliff", region)
    assert etree.fromstring(region).find(holder, ns).get(attribute) == "de-CH"
    with pytest.raises(deepl.DeepLException, match=f"{attribute} is 'fr', but 'DE' was asked"):
        upload(server, "d.xlf", data.replace(named, f' {attribute}="fr"').encode())
