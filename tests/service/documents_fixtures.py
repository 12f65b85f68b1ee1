"""The documents the document tests translate, each built with its own library (ODF and XLIFF
by hand), and LibreTranslate's file round trip: shared by DeepL's document API tests
(test_documents.py) and LibreTranslate's file tests (test_files.py)."""

from __future__ import annotations

import functools
import io
import urllib.request
import uuid
import zipfile
from collections.abc import Callable

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


@functools.cache  # openpyxl stamps docProps/core.xml with the save's second: one workbook a run
def xlsx_document() -> bytes:
    """A workbook with a chart with a title, an image, a comment, a rich-text cell with a bold run
    (openpyxl's load flattened it), a text box and a custom XML part (its save drops them);
    beside a shared string used by two cells, an inline string, a number, a number stored as
    text and a formula. openpyxl writes every string inline and models no text box, so
    ``as_excel_writes`` moves the strings but one to a shared string table, as Excel keeps
    them, and adds the last two."""
    import openpyxl
    from openpyxl.cell.rich_text import CellRichText, TextBlock
    from openpyxl.cell.text import InlineFont
    from openpyxl.chart import BarChart, Reference
    from openpyxl.comments import Comment
    from openpyxl.drawing.image import Image
    from openpyxl.styles import Font
    from PIL import Image as Picture

    book = openpyxl.Workbook()
    sheet = book.active
    sheet["A1"], sheet["B1"], sheet["A2"] = SENTENCE, 42, "=B1*2"
    sheet["A1"].font = Font(bold=True)
    sheet["A1"].comment = Comment("red dog", "me")
    sheet.merge_cells("A3:B3")
    sheet["A3"] = "red dog"
    sheet["A4"] = CellRichText(TAGGED[0], TextBlock(InlineFont(b=True), TAGGED[1]), TAGGED[2])
    sheet["C1"] = sheet["C2"] = "dogs play"
    sheet["D1"], sheet["E1"] = "12345", "red dog runs"
    chart = BarChart()
    chart.title = SENTENCE
    chart.add_data(Reference(sheet, min_col=2, min_row=1, max_row=1))
    sheet.add_chart(chart, "G2")
    png = io.BytesIO()
    Picture.new("RGB", (2, 2), "red").save(png, "PNG")
    sheet.add_image(Image(png), "G20")
    data = io.BytesIO()
    book.save(data)
    return as_excel_writes(data.getvalue(), inline={"E1"})


XLSX_TRANSLATED = frozenset(
    {"xl/sharedStrings.xml", "xl/worksheets/sheet1.xml", "xl/comments/comment1.xml"}
    | {"xl/charts/chart1.xml", "xl/drawings/drawing1.xml"}
)  # the parts of ``xlsx_document`` with text; every other one must come back byte for byte
SST_HEAD = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\r\n'


A = 'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"'
TEXT_BOX = (
    "<oneCellAnchor><from><col>1</col><colOff>0</colOff><row>30</row><rowOff>0</rowOff></from>"
    '<ext cx="900000" cy="300000"/><sp macro="" textlink=""><nvSpPr><cNvPr id="3" name="Box"/>'
    f'<cNvSpPr txBox="1"/></nvSpPr><spPr><a:prstGeom {A} prst="rect"><a:avLst/></a:prstGeom>'
    f"</spPr><txBody><a:bodyPr {A}/><a:p {A}><a:r><a:t>red dog</a:t></a:r></a:p></txBody></sp>"
    "<clientData/></oneCellAnchor></wsDr>"
)
CUSTOM_XML = b'<?xml version="1.0" encoding="UTF-8"?><b:Sources xmlns:b="urn:x-tongyeok"/>'


def as_excel_writes(data: bytes, inline: set[str]) -> bytes:
    """The workbook with its sheet's inline strings (but those of the ``inline`` cells) moved to
    ``xl/sharedStrings.xml``, one item per distinct string, with Excel's declaration; a text box
    in its drawing and a custom XML part, which openpyxl's save drops."""
    import re

    source = zipfile.ZipFile(io.BytesIO(data))
    items: dict[str, int] = {}

    def shared(match: re.Match[str]) -> str:
        if match[1] in inline:
            return match[0]
        index = items.setdefault(match[3], len(items))
        return f'<c r="{match[1]}"{match[2]} t="s"><v>{index}</v></c>'

    sheet = re.sub(
        r'<c r="([A-Z]+\d+)"([^>]*?) t="inlineStr"><is>(.*?)</is></c>',
        shared,
        source.read("xl/worksheets/sheet1.xml").decode(),
        flags=re.DOTALL,  # a string's line breaks
    )
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    table = f'<sst xmlns="{ns}" uniqueCount="{len(items)}">' + "".join(
        f"<si>{item}</si>" for item in items
    )
    parts = {
        "xl/worksheets/sheet1.xml": sheet.encode(),
        "[Content_Types].xml": source.read("[Content_Types].xml").replace(
            b"</Types>",
            b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
            b'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
        ),
        "xl/_rels/workbook.xml.rels": source.read("xl/_rels/workbook.xml.rels").replace(
            b"</Relationships>",
            b'<Relationship Id="rIdStrings" Type="http://schemas.openxmlformats.org/'
            b'officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
            b'<Relationship Id="rIdCustom" Type="http://schemas.openxmlformats.org/'
            b'officeDocument/2006/relationships/customXml" Target="../customXml/item1.xml"/>'
            b"</Relationships>",
        ),
        "xl/drawings/drawing1.xml": source.read("xl/drawings/drawing1.xml").replace(
            b"</wsDr>", TEXT_BOX.encode()
        ),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in source.namelist():
            archive.writestr(name, parts.get(name) or source.read(name))
            if name == "xl/workbook.xml":
                archive.writestr("xl/sharedStrings.xml", SST_HEAD + table.encode() + b"</sst>")
        archive.writestr("customXml/item1.xml", CUSTOM_XML)
    return out.getvalue()


def check_workbook(out: bytes, plain: Callable[[str], str]) -> None:
    """``xlsx_document`` translated: every part but those with text byte for byte (the image,
    the custom XML, styles, theme), the chart there with its title translated, the text box
    translated, the strings
    translated (a shared one once for both its cells, the inline one too), the bold run holding
    words, the comment translated, the formula, the number and the number as text kept."""
    import openpyxl
    from openpyxl.cell.rich_text import CellRichText, TextBlock

    source, result = zipfile.ZipFile(io.BytesIO(xlsx_document())), zipfile.ZipFile(io.BytesIO(out))
    assert result.namelist() == source.namelist()
    assert [m.compress_type for m in result.infolist()] == [
        m.compress_type for m in source.infolist()
    ]
    for name in set(source.namelist()) - XLSX_TRANSLATED:
        assert result.read(name) == source.read(name), name
    assert {"xl/media/image1.png", "customXml/item1.xml"} <= set(result.namelist())
    assert result.read("xl/sharedStrings.xml").startswith(SST_HEAD)
    chart = result.read("xl/charts/chart1.xml")
    assert xml_shape(chart) == xml_shape(source.read("xl/charts/chart1.xml"))
    assert plain(SENTENCE) in chart.decode()
    drawing = result.read("xl/drawings/drawing1.xml")
    assert xml_shape(drawing) == xml_shape(source.read("xl/drawings/drawing1.xml"))
    assert f"<a:t>{plain('red dog')}</a:t>" in drawing.decode()  # the text box
    book = openpyxl.load_workbook(io.BytesIO(out), rich_text=True)
    sheet = book.active
    assert (len(sheet._charts), len(sheet._images)) == (1, 1)
    assert str(sheet["A1"].value) == plain(SENTENCE) and sheet["A1"].font.bold
    assert sheet["A1"].comment.text == plain("red dog")
    assert (sheet["B1"].value, sheet["A2"].value, sheet["D1"].value) == (42, "=B1*2", "12345")
    assert [str(r) for r in sheet.merged_cells.ranges] == ["A3:B3"]
    assert str(sheet["A3"].value) == plain("red dog")
    assert str(sheet["C1"].value) == str(sheet["C2"].value) == plain("dogs play")
    assert str(sheet["E1"].value) == plain("red dog runs")  # the inline string
    rich = sheet["A4"].value
    assert isinstance(rich, CellRichText)
    bold = [b for b in rich if isinstance(b, TextBlock) and b.font.b]
    assert len(bold) == 1 and bold[0].text.strip()
    assert str(rich).split() == plain("".join(TAGGED)).split()


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
