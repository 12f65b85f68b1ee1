"""The documents the document tests translate, each built with its own library (ODF and XLIFF
by hand), and LibreTranslate's file round trip: shared by DeepL's document API tests
(test_documents.py) and LibreTranslate's file tests (test_files.py)."""

from __future__ import annotations

import io
import urllib.request
import uuid
import zipfile

from tests.service.conftest import Server

SENTENCE = "two dogs play"
TAGGED = ("red dog ", "runs", " in the park.")

TEXT = f"{SENTENCE}\n\nred dog\n"
PAGE = f'<html><body><h1 class="t">{SENTENCE}</h1><p>red dog <b>runs</b></p></body></html>'


def docx_document() -> bytes:
    import docx
    from docx.oxml.ns import qn
    from docx.oxml.parser import OxmlElement

    document = docx.Document()
    document.add_heading(SENTENCE, level=1)
    paragraph = document.add_paragraph(TAGGED[0])
    paragraph.add_run(TAGGED[1]).bold = True
    paragraph.add_run(TAGGED[2]).italic = True
    linked = document.add_paragraph("see ")
    link = OxmlElement("w:hyperlink")
    link.set(
        qn("r:id"),
        linked.part.relate_to(
            "https://example.org/", docx.opc.constants.RELATIONSHIP_TYPE.HYPERLINK, is_external=True
        ),
    )
    run = OxmlElement("w:r")
    text = OxmlElement("w:t")
    text.text = "the park"
    run.append(text)
    link.append(run)
    linked._p.append(link)
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = SENTENCE
    table.cell(1, 1).text = "red dog"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_document() -> bytes:
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = SENTENCE
    box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(4), Inches(1))
    paragraph = box.text_frame.paragraphs[0]
    for text, bold in zip(TAGGED, (False, True, False), strict=True):
        run = paragraph.add_run()
        run.text, run.font.bold = text, bold
    table = slide.shapes.add_table(2, 2, Inches(1), Inches(4), Inches(4), Inches(1)).table
    table.cell(0, 1).text = "red dog"
    data = io.BytesIO()
    deck.save(data)
    return data.getvalue()


def xlsx_document() -> bytes:
    import openpyxl
    from openpyxl.styles import Font

    book = openpyxl.Workbook()
    sheet = book.active
    sheet["A1"], sheet["B1"], sheet["A2"] = SENTENCE, 42, "=B1*2"
    sheet["A1"].font = Font(bold=True)
    sheet.merge_cells("A3:B3")
    sheet["A3"] = "red dog"
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


def po_document() -> bytes:
    import polib

    catalog = polib.POFile()
    catalog.metadata = {"Content-Type": "text/plain; charset=UTF-8"}
    catalog.append(polib.POEntry(msgid=SENTENCE, occurrences=[("app.py", "3")], flags=["c-format"]))
    catalog.append(
        polib.POEntry(msgid="red dog", msgid_plural="red dogs", msgstr_plural={0: "", 1: ""})
    )
    return str(catalog).encode()


SRT = f"""1
00:00:01,000 --> 00:00:02,500
{SENTENCE}
<i>red dog</i>

2
00:01:03,250 --> 00:01:04,000
red dog runs
"""


VTT = "WEBVTT\n\n" + SRT.replace(",", ".")


# -- OpenDocument (built by hand: odfpy publishes no wheel) ---------------------------------------

ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:number="urn:oasis:names:tc:opendocument:xmlns:datastyle:1.0" '
    'xmlns:fo="urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink"'
)
ODF_STYLES = (
    '<office:automatic-styles><style:style style:name="T1" style:family="text">'
    '<style:text-properties fo:font-weight="bold"/></style:style>'
    '<number:date-style style:name="N1"><number:day/><number:text>-</number:text>'
    "</number:date-style></office:automatic-styles>"
)
ODF_BODIES = {
    "odt": '<office:text><text:h text:outline-level="1">{0}</text:h>'
    '<text:p text:style-name="P1">{1}<text:span text:style-name="T1">{2}</text:span>{3}'
    '<text:note text:id="n1" text:note-class="footnote"><text:note-citation>1'
    "</text:note-citation><text:note-body><text:p>red dog</text:p></text:note-body></text:note>"
    '</text:p><text:p>see <text:a xlink:href="https://example.org/">the park</text:a></text:p>'
    "</office:text>",
    "odp": '<office:presentation><draw:page draw:name="p1"><draw:frame svg:x="1cm">'
    '<draw:text-box><text:p>{0}</text:p><text:p>{1}<text:span text:style-name="T1">{2}'
    "</text:span>{3}</text:p></draw:text-box></draw:frame></draw:page></office:presentation>",
    "ods": '<office:spreadsheet><table:table table:name="Sheet1"><table:table-row>'
    '<table:table-cell office:value-type="string"><text:p>{0}</text:p></table:table-cell>'
    '<table:table-cell office:value-type="float" office:value="42"><text:p>42</text:p>'
    "</table:table-cell></table:table-row><table:table-row><table:table-cell "
    'office:value-type="string"><text:p>{1}<text:span text:style-name="T1">{2}</text:span>{3}'
    "</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet>",
}


def odf_document(kind: str, content: str | None = None) -> bytes:
    from service.usecase.documents.odf import MIMETYPES

    mimetype = MIMETYPES[kind]
    body = ODF_BODIES[kind].format(SENTENCE, *TAGGED)
    ns = ODF_NS + ' xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0"'
    content = content or (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<office:document-content {ns} '
        f'office:version="1.2">{ODF_STYLES}<office:body>{body}</office:body>'
        "</office:document-content>"
    )
    styles = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<office:document-styles {ns}>{ODF_STYLES}'
        '<office:master-styles><style:master-page style:name="Standard"><style:header>'
        f"<text:p>{SENTENCE}</text:p></style:header></style:master-page></office:master-styles>"
        "</office:document-styles>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<manifest:manifest xmlns:manifest='
        '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry '
        f'manifest:full-path="/" manifest:media-type="{mimetype}"/></manifest:manifest>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("mimetype", mimetype, zipfile.ZIP_STORED)
        archive.writestr("content.xml", content)
        archive.writestr("styles.xml", styles)
        archive.writestr("META-INF/manifest.xml", manifest)
    return out.getvalue()


MARKDOWN = f"""---
title: {SENTENCE}
---
# {SENTENCE}

- {TAGGED[0]}**{TAGGED[1]}**{TAGGED[2]}
- see [the park](https://example.org/a_b "park")
  and *red dog*

```python
print("{SENTENCE}")
```

| a | b |
|---|---|
| red dog | `x = 1` |
"""


def xml_shape(data: bytes) -> list[tuple[str, dict[str, str]]]:
    """Every element's name and attributes, in document order: the structure without its text."""
    from lxml import etree

    return [(e.tag, dict(e.attrib)) for e in etree.fromstring(data).iter()]


def xml_texts(data: bytes, tag: str) -> list[str]:
    from lxml import etree

    found = etree.fromstring(data).iter(f"{{urn:oasis:names:tc:opendocument:xmlns:text:1.0}}{tag}")
    return ["".join(e.itertext()) for e in found]


XLIFF_12 = f"""<?xml version="1.0" encoding="UTF-8"?>
<xliff version="1.2" xmlns="urn:oasis:names:tc:xliff:document:1.2">
  <file source-language="en" target-language="de" datatype="plaintext" original="a.txt">
    <header><note>kept</note></header>
    <body>
      <trans-unit id="1">
        <source>{SENTENCE}</source>
      </trans-unit>
      <trans-unit id="2">
        <source>{TAGGED[0]}<g id="b">{TAGGED[1]}</g>{TAGGED[2]}<ph id="p">%s</ph></source>
        <target/>
      </trans-unit>
      <trans-unit id="3" translate="no"><source>red dog</source></trans-unit>
    </body>
  </file>
</xliff>
"""
XLIFF_20 = f"""<?xml version="1.0" encoding="UTF-8"?>
<xliff xmlns="urn:oasis:names:tc:xliff:document:2.0" version="2.0" srcLang="en" trgLang="de">
  <file id="f1">
    <unit id="1">
      <segment>
        <source>{TAGGED[0]}<pc id="1">{TAGGED[1]}</pc>{TAGGED[2]}<ph id="2"/></source>
      </segment>
    </unit>
  </file>
</xliff>
"""


def translate_file(
    server: Server, name: str, content: bytes, headers: dict[str, str] | None = None, **fields: str
) -> bytes:
    """LibreTranslate's /translate_file, then /download_file: a plain multipart upload, as
    LibreTranslate's own page sends it (a FormData POST); libretranslatepy, its official client,
    has no method for files."""

    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in {"source": "en", "target": "de", **fields}.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    reply = server.request(
        "POST",
        "/translate_file",
        raw=b"".join(parts) + f"--{boundary}--\r\n".encode(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}", **(headers or {})},
    )
    assert reply.status == 200, reply.body
    url = reply.body["translatedFileUrl"].removeprefix(server.url)
    download = urllib.request.Request(server.url + url, headers=headers or {})
    with urllib.request.urlopen(download, timeout=60) as answer:
        return answer.read()
