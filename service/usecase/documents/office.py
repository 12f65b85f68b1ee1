"""Office Open XML: .docx through python-docx, .pptx through python-pptx (.xlsx through its XML:
xlsx.py). Each paragraph's runs become inline markup (inline.py) translated whole. The zip and
its XML are checked first (safety.py)."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterable
from typing import Any

from lxml import etree

from service.usecase.documents.inline import Paragraph, RunSpec
from service.usecase.documents.safety import DocumentError, checked_zip
from service.usecase.documents.translator import Translator

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"

DOCX = RunSpec(
    run=f"{W}r",
    text=f"{W}t",
    props=f"{W}rPr",
    containers=frozenset({f"{W}hyperlink", f"{W}smartTag", f"{W}ins", f"{W}customXml"}),
    kept=frozenset({f"{W}pPr", f"{W}smartTagPr", f"{W}customXmlPr"}),
    preserve_space=True,
)
PPTX = RunSpec(
    run=f"{A}r",
    text=f"{A}t",
    props=f"{A}rPr",
    containers=frozenset(),
    kept=frozenset({f"{A}pPr", f"{A}endParaRPr"}),
)
# The parts of a .docx whose paragraphs are text: the body, headers, footers, notes, comments.
DOCX_PARTS = re.compile(r"^/word/(document|header\d*|footer\d*|footnotes|endnotes|comments)\.xml$")
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def load(kind: str, data: bytes) -> Any:
    """The document, opened by its library once the package passed safety.py."""
    checked_zip(data)
    try:
        if kind == "docx":
            import docx

            return docx.Document(io.BytesIO(data))
        import pptx

        return pptx.Presentation(io.BytesIO(data))
    except DocumentError:
        raise
    except Exception as exc:  # each library raises its own types for a malformed package
        raise DocumentError(
            f"not a readable .{kind} document ({type(exc).__name__}: {exc})"
        ) from None


def check_docx(data: bytes) -> object:
    return load("docx", data)


def check_pptx(data: bytes) -> object:
    return load("pptx", data)


def saved(document: Any) -> bytes:
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


async def translate_paragraphs(paragraphs: list[Paragraph], translator: Translator) -> None:
    wanted = [p for p in paragraphs if p.has_text()]
    from service.usecase.documents.inline import OPTIONS

    translated = await translator.markup([p.markup for p in wanted], OPTIONS)
    for paragraph, markup in zip(wanted, translated, strict=True):
        paragraph.write(markup)


# -- docx -----------------------------------------------------------------------------------------


def docx_roots(document: Any) -> Iterable[tuple[Any, Any]]:
    """(part, its root element) for each part with text; parts python-docx keeps as bytes
    (footnotes, comments) are parsed here, without entities, and written back by ``docx_save``."""
    from docx.opc.part import XmlPart

    for part in document.part.package.iter_parts():
        if DOCX_PARTS.match(str(part.partname)):
            if isinstance(part, XmlPart):
                yield part, part.element
            else:
                yield part, etree.fromstring(part.blob, PARSER)


def docx_read(data: bytes) -> tuple[Any, list[Any], list[Paragraph]]:
    document = load("docx", data)
    roots = list(docx_roots(document))
    paragraphs = [Paragraph.read(p, DOCX) for _, root in roots for p in root.iter(f"{W}p")]
    return document, roots, paragraphs


def docx_write(document: Any, roots: list[Any]) -> bytes:
    from docx.opc.part import XmlPart

    for part, root in roots:
        if not isinstance(part, XmlPart):
            part._blob = etree.tostring(
                root, xml_declaration=True, encoding="UTF-8", standalone=True
            )
    return saved(document)


async def translate_docx(data: bytes, translator: Translator) -> bytes:
    document, roots, paragraphs = await asyncio.to_thread(docx_read, data)
    await translate_paragraphs(paragraphs, translator)
    return await asyncio.to_thread(docx_write, document, roots)


# -- pptx -----------------------------------------------------------------------------------------


def pptx_read(data: bytes) -> tuple[Any, list[Paragraph]]:
    presentation = load("pptx", data)
    roots = []
    for slide in presentation.slides:
        roots.append(slide._element)
        if slide.has_notes_slide:
            roots.append(slide.notes_slide._element)
    paragraphs = [Paragraph.read(p, PPTX) for root in roots for p in root.iter(f"{A}p")]
    return presentation, paragraphs


async def translate_pptx(data: bytes, translator: Translator) -> bytes:
    presentation, paragraphs = await asyncio.to_thread(pptx_read, data)
    await translate_paragraphs(paragraphs, translator)
    return await asyncio.to_thread(saved, presentation)
