"""What an uploaded document must pass before any library parses it: a zip's entry count, the
sizes it declares and their ratio to what it stores, its names, and XML parts without a DTD
(no entity can expand). Each refusal is a 400 that names the limit."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException

from service.errors import ServiceError

MAX_ENTRIES = 2_000  # members of one zip (a large deck has a few hundred)
MAX_UNPACKED_BYTES = 64 * 1024 * 1024  # what all members of one zip declare, together
MAX_RATIO = 200  # declared size / stored size of one member; XML reaches 10-30, bombs 1000+
RATIO_FLOOR = 1024 * 1024  # members smaller than this are not held to the ratio
MAX_CHARACTERS = 2_000_000  # text one document may send to the model


class DocumentError(ServiceError):
    """A document that cannot or may not be read: malformed, hostile or beyond a limit."""

    status, error_type = 400, "invalid_document"


def open_zip(data: bytes) -> zipfile.ZipFile:
    """The zip in ``data`` once its central directory passes the limits. Reading a member
    stops at its declared size (zipfile), so the declared sizes bound what is unpacked."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DocumentError(f"the document is not a readable zip archive ({exc})") from None
    members = archive.infolist()
    if len(members) > MAX_ENTRIES:
        raise DocumentError(f"the archive has {len(members)} entries, more than {MAX_ENTRIES}")
    total = 0
    for member in members:
        name = member.filename
        if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/"):
            raise DocumentError(f"the archive names a path outside itself: {name!r}")
        total += member.file_size
        stored = max(member.compress_size, 1)
        if member.file_size > RATIO_FLOOR and member.file_size / stored > MAX_RATIO:
            raise DocumentError(
                f"the archive's entry {name!r} unpacks {member.file_size / stored:.0f} times "
                f"its size, more than {MAX_RATIO} (a zip bomb?)"
            )
    if total > MAX_UNPACKED_BYTES:
        raise DocumentError(f"the archive unpacks to {total} bytes, more than {MAX_UNPACKED_BYTES}")
    return archive


def check_xml(name: str, data: bytes) -> None:
    """``data`` parses as XML with no DTD, entity or external reference (defusedxml)."""
    try:
        safe_xml.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise DocumentError(f"{name}: XML with a DTD or entities is refused ({exc})") from None
    except safe_xml.ParseError as exc:
        raise DocumentError(f"{name}: not well-formed XML ({exc})") from None


def check_zip_xml(archive: zipfile.ZipFile, suffixes: Iterable[str] = (".xml", ".rels")) -> None:
    """Every XML part of ``archive`` through ``check_xml``, before a library reads it."""
    ends = tuple(suffixes)
    for member in archive.infolist():
        if member.filename.lower().endswith(ends):
            try:
                data = archive.read(member)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise DocumentError(f"{member.filename}: cannot be unpacked ({exc})") from None
            check_xml(member.filename, data)


def checked_zip(data: bytes) -> zipfile.ZipFile:
    """``open_zip`` and ``check_zip_xml`` together: an OOXML or ODF package fit to parse."""
    archive = open_zip(data)
    check_zip_xml(archive)
    return archive


def decode_text(data: bytes, name: str = "the document") -> str:
    """UTF-8 text (a byte-order mark dropped), or a 400."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DocumentError(f"{name} is not UTF-8 text") from None
