"""Whole documents translated with their formatting kept, one module per family of formats, each
through its well-kept library: bytes in, translated bytes out through a ``Translator``
(translator.py). ``FORMATS`` is the registry the routes dispatch on, by file suffix."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import PurePath

from service.usecase.documents import markdown, odf, office, safety, text, xliff, xlsx
from service.usecase.documents.safety import DocumentError
from service.usecase.documents.translator import Translator

Handler = Callable[[bytes, Translator], Awaitable[bytes]]
Check = Callable[[bytes], object]  # raises DocumentError for what the handler could not read
TargetCheck = Callable[[bytes, str], object]  # ``Check``, and the language asked for agrees


@dataclass(frozen=True)
class Format:
    media_type: str
    translate: Handler
    text: bool  # plain text inside (its language can be detected from the upload itself)
    # run at upload, so that a malformed or hostile document is a 4xx there, not a failed job
    check: Check = safety.decode_text
    # a format that names its target language: its check with the language asked for
    check_target: TargetCheck | None = None

    def verify(self, data: bytes, target_lang: str | None) -> None:
        """The upload's check at upload: a 400 for a malformed or hostile document, or for one
        that names another target language than ``target_lang`` (when given)."""
        if self.check_target is not None and target_lang:
            self.check_target(data, target_lang)
        else:
            self.check(data)


OOXML = "application/vnd.openxmlformats-officedocument"
XLIFF = "application/xliff+xml"
FORMATS: dict[str, Format] = {
    ".txt": Format("text/plain; charset=utf-8", text.translate_txt, True),
    ".html": Format("text/html; charset=utf-8", text.translate_html, True),
    ".htm": Format("text/html; charset=utf-8", text.translate_html, True),
    ".srt": Format("application/x-subrip; charset=utf-8", text.translate_srt, True, text.check_srt),
    ".vtt": Format("text/vtt; charset=utf-8", text.translate_vtt, True, text.check_vtt),
    ".po": Format(
        "text/x-gettext-translation; charset=utf-8", text.translate_po, True, text.check_po
    ),
    ".md": Format("text/markdown; charset=utf-8", markdown.translate_md, True, markdown.check_md),
    ".markdown": Format(
        "text/markdown; charset=utf-8", markdown.translate_md, True, markdown.check_md
    ),
    ".xlf": Format(XLIFF, xliff.translate_xliff, True, xliff.check_xliff, xliff.check_target),
    ".xliff": Format(XLIFF, xliff.translate_xliff, True, xliff.check_xliff, xliff.check_target),
    ".docx": Format(
        f"{OOXML}.wordprocessingml.document", office.translate_docx, False, office.check_docx
    ),
    ".pptx": Format(
        f"{OOXML}.presentationml.presentation", office.translate_pptx, False, office.check_pptx
    ),
    ".xlsx": Format(f"{OOXML}.spreadsheetml.sheet", xlsx.translate_xlsx, False, xlsx.check_xlsx),
    ".odt": Format(odf.MIMETYPES["odt"], odf.translate_odt, False, odf.check_odt),
    ".odp": Format(odf.MIMETYPES["odp"], odf.translate_odp, False, odf.check_odp),
    ".ods": Format(odf.MIMETYPES["ods"], odf.translate_ods, False, odf.check_ods),
}

MAX_NAME_CHARS = 255


def format_of(filename: str | None) -> tuple[str, Format]:
    """The suffix and format of an uploaded file's name; 400 for a name that is a path, holds
    control characters, or names no format served."""
    name = filename or ""
    if (
        len(name) > MAX_NAME_CHARS
        or any(c in name for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
        or name in ("", ".", "..")
    ):
        raise DocumentError(
            f"the file name must be a plain name of at most {MAX_NAME_CHARS} characters, with "
            f"no path or control characters: {name[:80]!r}"
        )
    suffix = PurePath(name).suffix.lower()
    if suffix not in FORMATS:
        raise UnsupportedFormat(
            f"file type {suffix or '(none)'!r} is not supported: {', '.join(sorted(FORMATS))}"
        )
    return suffix, FORMATS[suffix]


class UnsupportedFormat(DocumentError):
    status, error_type = 400, "unsupported_format"


__all__ = ["FORMATS", "DocumentError", "Format", "Translator", "UnsupportedFormat", "format_of"]
