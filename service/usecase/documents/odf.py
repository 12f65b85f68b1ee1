"""OpenDocument (.odt, .odp, .ods) through its XML and the markup module, not odfpy (which
publishes no wheel): the text of ``content.xml`` and of the headers and footers in
``styles.xml`` is translated as XML, paragraphs and headings splitting, spans, links, spaces,
tabs, breaks and notes inline (placed by the model's alignment); every other byte of the
package is kept, and it is zipped again with ``mimetype`` first and stored, as ODF requires."""

from __future__ import annotations

import asyncio
import io
import re
import zipfile

from service.usecase.documents.safety import DocumentError, checked_zip
from service.usecase.documents.translator import Translator
from service.usecase.markup import MarkupError, TagOptions, translate_markup

MIMETYPES = {
    "odt": "application/vnd.oasis.opendocument.text",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
}
TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
# Parts whose text is translated: the body; headers and footers (styles.xml's master pages).
PARTS = ("content.xml", "styles.xml")
OPTIONS = TagOptions(
    mode="xml",
    # styles (number formats hold literal text such as "-" or "$"), fonts, scripts, forms: kept;
    # a note is kept whole inside its paragraph, placed by the alignment, its body translated
    # as its own unit below; a note's citation (its number) is never text to translate.
    ignore_tags=frozenset(
        {
            *("office:styles", "office:automatic-styles", "office:font-face-decls"),
            *("office:scripts", "office:forms", "office:settings", "text:note"),
            *("text:note-citation", "text:sequence-decls", "text:tracked-changes"),
        }
    ),
    non_splitting_tags=frozenset(
        {
            *("text:span", "text:a", "text:s", "text:tab", "text:line-break", "text:note"),
            *("text:soft-page-break", "text:bookmark", "text:bookmark-start"),
            *("text:bookmark-end", "text:reference-mark", "text:reference-mark-start"),
            *("text:reference-mark-end", "text:ruby", "text:ruby-base", "office:annotation"),
        }
    ),
    splitting_tags=frozenset({"text:p", "text:h", "text:note-body", "text:note-citation"}),
    outline_detection=True,
)
NOTE_BODY = re.compile(r"<text:note-body\b[^>]*>.*?</text:note-body>", re.DOTALL)
LETTERS = re.compile(r"[^\W\d_]")


def read(kind: str, data: bytes) -> zipfile.ZipFile:
    """The package once it passes safety.py, is the ``kind`` its mimetype says, and uses the
    standard ``text:`` prefix (notes are found by it)."""
    archive = checked_zip(data)
    names = archive.namelist()
    if "mimetype" not in names or "content.xml" not in names:
        raise DocumentError(f"not a readable .{kind} document (no mimetype or content.xml)")
    mimetype = archive.read("mimetype").decode("ascii", "replace").strip()
    if mimetype != MIMETYPES[kind]:
        raise DocumentError(f"not a .{kind} document: its mimetype is {mimetype[:80]!r}")
    for part in PARTS:
        if part in names:
            head = archive.read(part)[:4096].decode("utf-8", "replace")
            if "xmlns:text=" in head and f'xmlns:text="{TEXT_NS}"' not in head:
                raise DocumentError(f"{part}: the text namespace has an unusual prefix")
    return archive


def check_odt(data: bytes) -> object:
    return read("odt", data)


def check_odp(data: bytes) -> object:
    return read("odp", data)


def check_ods(data: bytes) -> object:
    return read("ods", data)


def rezip(archive: zipfile.ZipFile, replaced: dict[str, bytes]) -> bytes:
    """The package again, members in their order with their compression, ``mimetype`` first
    and stored (ODF 1.2 part 3, 3.3)."""
    out = io.BytesIO()
    members = sorted(archive.infolist(), key=lambda m: m.filename != "mimetype")
    with zipfile.ZipFile(out, "w") as result:
        for member in members:
            data = replaced.get(member.filename, archive.read(member))
            info = zipfile.ZipInfo(member.filename, member.date_time)
            info.external_attr = member.external_attr
            info.compress_type = (
                zipfile.ZIP_STORED if member.filename == "mimetype" else member.compress_type
            )
            result.writestr(info, data)
    return out.getvalue()


async def translate_odf(kind: str, data: bytes, translator: Translator) -> bytes:
    archive = await asyncio.to_thread(read, kind, data)
    names = [p for p in PARTS if p in archive.namelist()]
    try:
        texts = [archive.read(p).decode("utf-8") for p in names]
    except UnicodeDecodeError:
        raise DocumentError(f"not a readable .{kind} document (XML not UTF-8)") from None
    notes = list(dict.fromkeys(m[0] for t in texts for m in NOTE_BODY.finditer(t)))

    async def words_only(strings: list[str]) -> list[str]:
        """Strings with letters translated; numbers, dates and symbols (a sheet's values) kept."""
        wanted = [s for s in strings if LETTERS.search(s)]
        table = dict(zip(wanted, await translator.plain(wanted), strict=True))
        return [table.get(s, s) for s in strings]

    try:
        translated = await translate_markup(texts + notes, OPTIONS, words_only, translator.align)
    except MarkupError as exc:
        raise DocumentError(f"not a readable .{kind} document ({exc})") from None
    parts = translated[: len(texts)]
    bodies = dict(zip(notes, translated[len(texts) :], strict=True))
    for i, part in enumerate(parts):  # notes were kept whole: their bodies are put in now
        parts[i] = NOTE_BODY.sub(lambda m: bodies.get(m[0], m[0]), part)
    replaced = {name: part.encode("utf-8") for name, part in zip(names, parts, strict=True)}
    return await asyncio.to_thread(rezip, archive, replaced)


async def translate_odt(data: bytes, translator: Translator) -> bytes:
    return await translate_odf("odt", data, translator)


async def translate_odp(data: bytes, translator: Translator) -> bytes:
    return await translate_odf("odp", data, translator)


async def translate_ods(data: bytes, translator: Translator) -> bytes:
    return await translate_odf("ods", data, translator)
