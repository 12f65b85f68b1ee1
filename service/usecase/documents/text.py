"""Text formats: .txt line by line, .html through the markup module, subtitles (.srt, .vtt)
through pysubs2 with their timings, styles and inline tags kept."""

from __future__ import annotations

import asyncio
from typing import Any

from service.usecase.documents.safety import DocumentError, decode_text
from service.usecase.documents.translator import Translator
from service.usecase.markup import TagOptions


async def translate_txt(data: bytes, translator: Translator) -> bytes:
    lines = decode_text(data).split("\n")
    wanted = [i for i, line in enumerate(lines) if line.strip()]
    for i, line in zip(wanted, await translator.plain([lines[i] for i in wanted]), strict=True):
        lines[i] = line
    return "\n".join(lines).encode("utf-8")


async def translate_html(data: bytes, translator: Translator) -> bytes:
    text = decode_text(data)
    return (await translator.markup([text], TagOptions(mode="html")))[0].encode("utf-8")


def rebreak(text: str, lines: int) -> list[str]:
    """``text`` cut at spaces into ``lines`` lines of about equal length (a subtitle's shape)."""
    words = text.split(" ")
    if lines <= 1 or len(words) < lines:
        return [text]
    out: list[str] = []
    rest = words
    for k in range(lines, 1, -1):
        goal = len(" ".join(rest)) / k
        taken, size = 1, len(rest[0])
        while taken < len(rest) - (k - 1) and abs(size + 1 + len(rest[taken]) - goal) < abs(
            size - goal
        ):
            size += 1 + len(rest[taken])
            taken += 1
        out.append(" ".join(rest[:taken]))
        rest = rest[taken:]
    out.append(" ".join(rest))
    return out


def subtitles_read(data: bytes, kind: str) -> Any:
    import pysubs2

    text = decode_text(data)
    try:
        subtitles = pysubs2.SSAFile.from_string(text, format_=kind, keep_html_tags=True)
    except Exception as exc:  # pysubs2 raises its own and plain errors for a malformed file
        raise DocumentError(
            f"not readable .{kind} subtitles ({type(exc).__name__}: {exc})"
        ) from None
    if not subtitles.events and text.strip():
        raise DocumentError(f"no subtitles found in the .{kind} file")
    return subtitles


def check_srt(data: bytes) -> object:
    return subtitles_read(data, "srt")


def check_vtt(data: bytes) -> object:
    return subtitles_read(data, "vtt")


async def translate_subtitles(data: bytes, translator: Translator, kind: str) -> bytes:
    """Each cue translated whole (its lines joined), its inline tags placed by the alignment,
    then cut into as many lines as it had; start and end times untouched."""
    subtitles = await asyncio.to_thread(subtitles_read, data, kind)
    events = [e for e in subtitles.events if not e.is_comment and e.text.strip()]
    joined = [" ".join(part.strip() for part in e.text.split("\\N")) for e in events]
    translated = await translator.markup(joined, TagOptions(mode="html"))
    for event, text in zip(events, translated, strict=True):
        event.text = "\\N".join(rebreak(text, event.text.count("\\N") + 1))
    return str(subtitles.to_string(kind)).encode("utf-8")


async def translate_srt(data: bytes, translator: Translator) -> bytes:
    return await translate_subtitles(data, translator, "srt")


async def translate_vtt(data: bytes, translator: Translator) -> bytes:
    return await translate_subtitles(data, translator, "vtt")


def po_read(data: bytes) -> Any:
    import polib

    text = decode_text(data)
    try:
        return polib.pofile(text)
    except Exception as exc:  # polib raises OSError and ValueError for a malformed catalog
        problem = f"{type(exc).__name__}: {exc}"
        raise DocumentError(f"not a readable .po catalog ({problem})") from None


def check_po(data: bytes) -> object:
    return po_read(data)


async def translate_po(data: bytes, translator: Translator) -> bytes:
    """A gettext catalog (polib): each entry's ``msgid`` translated into its ``msgstr`` (and
    ``msgid_plural`` into every plural form); comments, flags, references and the header kept."""
    catalog = await asyncio.to_thread(po_read, data)
    entries = [e for e in catalog if not e.obsolete and e.msgid.strip()]
    singular = await translator.plain([e.msgid for e in entries])
    plural = [e for e in entries if e.msgid_plural]
    plurals = await translator.plain([e.msgid_plural for e in plural])
    for entry, text in zip(entries, singular, strict=True):
        if entry.msgid_plural:
            entry.msgstr_plural = {0: text}
        else:
            entry.msgstr = text
    for entry, text in zip(plural, plurals, strict=True):
        forms = max(2, len(entry.msgstr_plural))
        entry.msgstr_plural = {0: entry.msgstr_plural[0], **{k: text for k in range(1, forms)}}
    return str(catalog).encode("utf-8")
