"""Excel workbooks (.xlsx) through their XML, not openpyxl (whose save keeps only what it
models: text boxes and custom XML parts were lost, rich text flattened; docs/decisions.md #51):
the text of the shared strings, the sheets' inline strings, comments, chart titles and drawings'
text boxes is translated in place, and every other member of the package is copied byte for
byte, in its order, with its compression. Parts are found by their content type
([Content_Types].xml), as Office finds them."""

from __future__ import annotations

import asyncio
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from service.usecase.documents.inline import OPTIONS, Paragraph, RunSpec, escape, pieces
from service.usecase.documents.odf import rezip
from service.usecase.documents.office import PARSER, PPTX, A
from service.usecase.documents.safety import DocumentError, checked_zip
from service.usecase.documents.translator import Translator

CT = "{http://schemas.openxmlformats.org/package/2006/content-types}"
SML = "application/vnd.openxmlformats-officedocument.spreadsheetml."
WORKBOOKS = frozenset(
    {
        f"{SML}sheet.main+xml",
        f"{SML}template.main+xml",
        "application/vnd.ms-excel.sheet.macroEnabled.main+xml",
    }
)
# Content type -> the local name of its rich-string items (CT_Rst: a ``t``, or runs ``r``).
ITEMS = {
    f"{SML}sharedStrings+xml": "si",  # one item per distinct string, however many cells use it
    f"{SML}worksheet+xml": "is",  # a cell's inline string (t="inlineStr")
    f"{SML}comments+xml": "text",  # a comment's text (Excel's notes; a copy of threaded ones)
}
# A threaded comment's ``text`` is plain text, no runs (Excel 365's comments).
THREADED = "application/vnd.ms-excel.threadedcomments+xml"
# Content types whose DrawingML paragraphs (a:p, runs a:r) are text: chart and axis titles,
# data labels written as text, and text boxes and shapes in drawings.
DRAWINGS = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.drawingml.chart+xml",
        "application/vnd.ms-office.chartex+xml",
        "application/vnd.openxmlformats-officedocument.drawing+xml",
    }
)
LETTERS = re.compile(r"[^\W\d_]")
SPACE = " \t\r"
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"


def rich_text(ns: str) -> RunSpec:
    """SpreadsheetML's rich text runs in namespace ``ns`` (transitional or strict); phonetic
    runs and properties stay out of the markup (``written`` drops a translated item's runs)."""
    return RunSpec(
        run=f"{{{ns}}}r",
        text=f"{{{ns}}}t",
        props=f"{{{ns}}}rPr",
        containers=frozenset(),
        kept=frozenset({f"{{{ns}}}rPh", f"{{{ns}}}phoneticPr"}),
        preserve_space=True,
    )


@dataclass
class Item:
    """A string item with no runs, translated line by line (a cell's line breaks are its
    layout)."""

    element: Any
    text: Any  # what holds the string: the item's ``t``, or a threaded comment's ``text``

    def lines(self) -> list[str]:
        return (self.text.text or "").split("\n")


@dataclass
class Part:
    name: str
    data: bytes
    root: Any
    items: list[Item] = field(default_factory=list)
    paragraphs: list[Paragraph] = field(default_factory=list)


def content_types(archive: zipfile.ZipFile) -> dict[str, str]:
    """Each member's content type: its Override, else the Default for its extension."""
    try:
        root = etree.fromstring(archive.read("[Content_Types].xml"), PARSER)
    except KeyError:
        raise DocumentError("not a readable .xlsx document (no [Content_Types].xml)") from None
    except etree.XMLSyntaxError as exc:
        raise DocumentError(f"[Content_Types].xml: not well-formed XML ({exc})") from None
    defaults = {
        e.get("Extension", "").lower(): e.get("ContentType", "") for e in root.iter(f"{CT}Default")
    }
    overrides = {
        e.get("PartName", "").lstrip("/"): e.get("ContentType", "")
        for e in root.iter(f"{CT}Override")
    }
    return {
        name: overrides.get(name) or defaults.get(name.rsplit(".", 1)[-1].lower(), "")
        for name in archive.namelist()
    }


def parse_part(name: str, data: bytes) -> Any:
    """The part's root, parsed without entities or network (safety.py refused any DTD)."""
    try:
        root = etree.fromstring(data, PARSER)
    except etree.XMLSyntaxError as exc:
        raise DocumentError(f"{name}: not well-formed XML ({exc})") from None
    encoding = (root.getroottree().docinfo.encoding or "UTF-8").upper().replace("_", "-")
    if encoding not in ("UTF-8", "UTF8"):
        raise DocumentError(f"{name}: XML in {encoding}, not UTF-8")
    return root


def read_part(name: str, kind: str, data: bytes) -> Part | None:
    """The part's string items and paragraphs, or None when it has nothing to translate."""
    if kind == f"{SML}worksheet+xml" and b"inlineStr" not in data:
        return None  # a sheet without inline strings (most) is not even parsed
    root = parse_part(name, data)
    part = Part(name, data, root)
    if kind in DRAWINGS:
        part.paragraphs = [Paragraph.read(p, PPTX) for p in root.iter(f"{A}p")]
        return part
    ns = etree.QName(root).namespace or ""
    if kind == THREADED:
        part.items = [Item(e, e) for e in root.iter(f"{{{ns}}}text")]
        return part
    if kind == f"{SML}sharedStrings+xml" and etree.QName(root).localname != "sst":
        raise DocumentError(f"{name}: not a shared string table (its root is {root.tag!r})")
    spec = rich_text(ns)
    for element in root.iter(f"{{{ns}}}{ITEMS[kind]}"):
        text = element.find(spec.text)
        if text is not None:
            part.items.append(Item(element, text))
        elif element.find(spec.run) is not None:
            part.paragraphs.append(Paragraph.read(element, spec))
    return part


def read(data: bytes) -> tuple[zipfile.ZipFile, list[Part]]:
    """The package once it passes safety.py and holds a workbook, and its parts with text."""
    archive = checked_zip(data)
    types = content_types(archive)
    if not WORKBOOKS & set(types.values()):
        raise DocumentError("not a readable .xlsx document (no workbook part)")
    parts = []
    for name, kind in types.items():
        if kind in ITEMS or kind in DRAWINGS or kind == THREADED:
            part = read_part(name, kind, archive.read(name))
            if part is not None and (part.items or part.paragraphs):
                parts.append(part)
    return archive, parts


def check_xlsx(data: bytes) -> object:
    return read(data)


def with_space(source: str, translated: str) -> str:
    lead = source[: len(source) - len(source.lstrip(SPACE))]
    trail = source[len(source.rstrip(SPACE)) :]
    return lead + translated.strip(SPACE) + trail


async def translate_items(items: list[Item], translator: Translator) -> list[Item]:
    """Each item's lines with letters translated (numbers, dates and codes stored as text are
    not); the items whose text changed."""
    wanted = list(
        dict.fromkeys(ln.strip(SPACE) for i in items for ln in i.lines() if LETTERS.search(ln))
    )
    table = dict(zip(wanted, await translator.plain(wanted), strict=True))
    changed = []
    for item in items:
        lines = item.lines()
        out = [
            with_space(ln, table[ln.strip(SPACE)]) if ln.strip(SPACE) in table else ln
            for ln in lines
        ]
        if out != lines:
            item.text.text = "\n".join(out)
            changed.append(item)
    return changed


def written(changed: list[Any]) -> None:
    """After translation: a changed item's phonetic runs dropped (their offsets index the source
    text), ``xml:space`` kept where the text needs it, and every run holding a ``t`` (required)."""
    for element in changed:
        local = etree.QName(element).localname
        ns = etree.QName(element).namespace or ""
        if local == "p":
            continue
        spec = rich_text(ns)
        for phonetic in element.findall(f"{{{ns}}}rPh"):
            element.remove(phonetic)
        for text in [element.find(spec.text), *(r.find(spec.text) for r in element.iter(spec.run))]:
            if text is not None and (text.text or "") != (text.text or "").strip():
                text.set(XML_SPACE, "preserve")
        for run in element.iter(spec.run):
            if run.find(spec.text) is None:
                etree.SubElement(run, spec.text)


def root_span(data: bytes) -> tuple[int, int]:
    """Where the root element starts and ends in ``data``: what is around it (the declaration as
    written, comments) is copied as it is."""
    at = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    while True:
        while data[at : at + 1].isspace():
            at += 1
        if data.startswith(b"<?", at):
            at = data.index(b"?>", at) + 2
        elif data.startswith(b"<!--", at):
            at = data.index(b"-->", at) + 3
        else:
            break
    name = re.match(rb"<([^\s/>]+)", data[at:])
    end = data.rfind(b"</" + name[1]) if name else -1
    return at, data.index(b">", end) + 1 if end >= 0 else len(data)


def serialized(part: Part) -> bytes:
    """The part with its translated root, its prolog and epilogue byte for byte."""
    start, end = root_span(part.data)
    return part.data[:start] + etree.tostring(part.root, encoding="UTF-8") + part.data[end:]


def has_words(markup: str) -> bool:
    """Whether a markup's text has a letter (a number stored as rich text has none)."""
    return any(kind == "text" and LETTERS.search(str(v)) for kind, v in pieces(markup))


def split_lines(markup: str) -> tuple[list[str], list[int | None]]:
    """A rich string's markup cut at its line breaks: each line's markup, its run's tag closed
    at the break and opened again after it (its text split, no empty run made), and the run
    (its tag's number) that held each break."""
    lines: list[str] = []
    breaks: list[int | None] = []
    line = ""
    run: int | None = None
    empty = reopened = False  # ``run`` holds no text yet on this line; opened after a break
    for kind, value in pieces(markup):
        if kind == "text":
            first, *rest = str(value).split("\n")
            line += escape(first)
            empty = empty and not first
            for text in rest:
                if run is not None:
                    line = line[: -len(f"<c{run}>")] if empty else line + f"</c{run}>"
                lines.append(line)
                breaks.append(run)
                line = (f"<c{run}>" if run is not None else "") + escape(text)
                reopened = run is not None
                empty = reopened and not text
        elif kind == "open":
            run, empty, reopened = int(value), True, False
            line += f"<c{value}>"
        elif kind == "close":
            empty = empty and reopened  # an empty run of the source stays
            line = line[: -len(f"<c{value}>")] if empty else line + f"</c{value}>"
            run, empty, reopened = None, False, False
        else:
            line += f"<v{value}/>"
    lines.append(line)
    return lines, breaks


def joined(lines: list[str], breaks: list[int | None]) -> str:
    """Translated lines put back together: each break in the run that held it, at the end of
    that run's text before it or the start of its text after it, else in a run of its own."""
    out = lines[0]
    for run, line in zip(breaks, lines[1:], strict=True):
        if run is None:
            out += "\n" + line
            continue
        opened, close = f"<c{run}>", f"</c{run}>"
        if out.endswith(close):
            out = out[: -len(close)] + "\n" + close
        else:
            out += opened + "\n" + close
        if line.startswith(opened):
            out = out[: -len(close)] + line[len(opened) :]
        else:
            out += line
    return out


async def translate_rich(paragraphs: list[Paragraph], translator: Translator) -> None:
    """Rich strings, chart titles and text boxes translated, each one's markup whole (its tags
    placed by the alignment) and written again; but a rich string with line breaks (a cell's
    layout, as an ``Item``'s) line by line, a line with no letter kept as it is."""
    split = [
        split_lines(p.markup) if p.spec != PPTX and "\n" in p.markup else ([p.markup], [])
        for p in paragraphs
    ]
    wanted = [line for lines, _ in split for line in lines if has_words(line)]
    translated = iter(await translator.markup(wanted, OPTIONS))
    for paragraph, (lines, breaks) in zip(paragraphs, split, strict=True):
        out = [next(translated) if has_words(line) else line for line in lines]
        paragraph.write(joined(out, breaks))


def rewritten(parts: list[Part], changed: dict[str, list[Any]]) -> dict[str, bytes]:
    """The parts with a changed item or paragraph, serialized again; the others are not."""
    out = {}
    for part in parts:
        if changed[part.name]:
            written(changed[part.name])
            out[part.name] = serialized(part)
    return out


async def translate_xlsx(data: bytes, translator: Translator) -> bytes:
    """Shared strings, inline strings, comments, chart titles and text boxes translated; a rich
    string's runs placed by the alignment (inline.py), line by line where it has line breaks.
    Formulas and their cached results (``t="str"``), numbers, sheet names (formulas name them)
    and every other part are kept."""
    archive, parts = await asyncio.to_thread(read, data)
    items = [item for part in parts for item in part.items]
    done = {id(item.element) for item in await translate_items(items, translator)}
    paragraphs = [p for part in parts for p in part.paragraphs if has_words(p.markup)]
    await translate_rich(paragraphs, translator)  # each one written again
    done |= {id(p.element) for p in paragraphs}
    changed = {
        part.name: [
            e
            for e in [*(i.element for i in part.items), *(p.element for p in part.paragraphs)]
            if id(e) in done
        ]
        for part in parts
    }
    replaced = await asyncio.to_thread(rewritten, parts, changed)
    return await asyncio.to_thread(rezip, archive, replaced)
