"""XLIFF 1.2 and 2.0 through the markup module, every byte but the targets kept: each unit's
``source`` is translated as XML into its ``target`` (created after the source if missing, or
filled if empty), inline codes (1.2 ``g``, ``x``, ``bx``/``ex``, ``ph``, ``bpt``/``ept``, ``it``;
2.0 ``pc``, ``ph``, ``sc``/``ec``, ``mrk``) placed by the model's alignment, the native code
inside ``ph``/``bpt``/``ept``/``it`` never translated. The new target is marked as translators'
tools expect: 1.2 ``<target state="translated">``, 2.0 ``<segment state="translated">``. A unit
with ``translate="no"`` or a target that already holds text is left as it is. The language asked
for is written where the file has none (1.2 ``<file target-language>``, 2.0 ``<xliff trgLang>``);
a file that names another language is refused (docs/decisions.md #54)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from service.usecase.documents.safety import DocumentError, check_xml, decode_text
from service.usecase.documents.translator import Translator
from service.usecase.markup import MarkupError, TagOptions, tokenize
from service.usecase.markup_scan import Token

UNITS = ("trans-unit", "segment")  # what holds a source and its target, 1.2 and 2.0
STRUCTURE = TagOptions(mode="xml", outline_detection=False)
CODES = ("ph", "bpt", "ept", "it")  # 1.2's inline codes holding native code, not text
HERE = "\0"  # never in XML text


def attribute_pattern(name: str) -> re.Pattern[str]:
    """An attribute ``name`` with its quoted value, and the space before it, in a start tag."""
    return re.compile(rf"""\s{re.escape(name)}\s*=\s*("[^"]*"|'[^']*')""")


STATE = attribute_pattern("state")
# Where each version names its languages: the element, its target's and its source's attribute.
LANGUAGES = {1: ("file", "target-language", "source-language"), 2: ("xliff", "trgLang", "srcLang")}
TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")  # a BCP 47 language tag, loosely


def local(name: str) -> str:
    return name.rsplit(":", 1)[-1]


@dataclass
class Unit:
    source: str  # the source's inner markup
    version: int  # 1 or 2
    prefix: str  # the source's namespace prefix with its colon ("" mostly)
    edits: list[tuple[int, int, str]]  # (start, end, text): HERE is where the translation goes


@dataclass
class Holder:
    """An element that names the target language (1.2's ``file``, 2.0's ``xliff``)."""

    start: int  # its start tag's offset in the text
    tag: str  # the start tag as written
    attribute: str  # target-language or trgLang
    source: str  # source-language or srcLang: the target's attribute goes after it
    language: str  # what it names now ("" for none)


@dataclass
class Xliff:
    text: str
    units: list[Unit]
    holders: list[Holder]


def read(data: bytes) -> Xliff:
    check_xml("the XLIFF file", data)
    text = decode_text(data, "the XLIFF file")
    try:
        tokens = tokenize(text, STRUCTURE)
    except MarkupError as exc:
        raise DocumentError(f"not a readable XLIFF file ({exc})") from None
    root = next((t for t in tokens if t.kind in ("start", "empty")), None)
    if root is None or local(root.name) != "xliff":
        raise DocumentError("not an XLIFF file: its root element is not <xliff>")
    version = str(root.attrs.get("version") or "")
    if not (version == "1.2" or version.startswith("2.")):
        raise DocumentError(f"XLIFF version {version[:20]!r} is not served (1.2 and 2.x are)")
    number = 1 if version == "1.2" else 2
    return Xliff(text, units(tokens, number), holders(tokens, number))


def check_xliff(data: bytes) -> object:
    return read(data)


def check_target(data: bytes, target_lang: str) -> object:
    """``check_xliff``, and a 400 naming both languages when the file names a target language
    other than ``target_lang``."""
    found = read(data)
    language_edits(found.holders, target_lang)
    return found


def holders(tokens: list[Token], version: int) -> list[Holder]:
    element, attribute, source = LANGUAGES[version]
    offset, found = 0, []
    for token in tokens:
        if token.kind in ("start", "empty") and local(token.name) == element:
            language = (token.attrs.get(attribute) or "").strip()
            found.append(Holder(offset, token.raw, attribute, source, language))
        offset += len(token.raw)
    return found


def language_tag(lang: str) -> str:
    """A requested language as BCP 47 writes it (DeepL's ``EN-US`` is ``en-US``, ``ZH-HANS`` is
    ``zh-Hans``); a 400 for what is no language tag (it goes into an attribute)."""
    if not TAG.fullmatch(lang):
        raise DocumentError(f"the target language {lang[:40]!r} is not a language tag")
    first, *rest = lang.split("-")
    cased = [s.upper() if len(s) == 2 else s.title() if len(s) == 4 else s.lower() for s in rest]
    return "-".join([first.lower(), *cased])


def language_edits(found: list[Holder], target_lang: str) -> list[tuple[int, int, str]]:
    """Edits naming ``target_lang`` where the file names no target language; where it names
    the same language (its region or script may differ: the model translates a language) it
    is kept as written; another language is a 400 naming both."""
    wanted = language_tag(target_lang)
    edits = []
    for holder in found:
        if holder.language:
            if holder.language.split("-")[0].lower() != wanted.split("-")[0]:
                raise DocumentError(
                    f"the XLIFF file's {holder.attribute} is {holder.language[:40]!r}, but "
                    f"{target_lang!r} was asked for: ask for its language, or change the file"
                )
            continue
        tag, named = holder.tag, f' {holder.attribute}="{wanted}"'
        empty = attribute_pattern(holder.attribute).search(tag)
        if empty:  # present but empty: filled in place
            made = tag[: empty.start()] + named + tag[empty.end() :]
        else:  # after the source language if the tag names it, else before the tag's end
            after = attribute_pattern(holder.source).search(tag)
            at = after.end() if after else len(tag.rstrip("/>").rstrip())
            made = tag[:at] + named + tag[at:]
        edits.append((holder.start, holder.start + len(tag), made))
    return edits


def units(tokens: list[Token], version: int) -> list[Unit]:
    offsets = [0]
    for token in tokens:
        offsets.append(offsets[-1] + len(token.raw))
    ends = {t.opener: j for j, t in enumerate(tokens) if t.kind == "end"}

    def no(i: int) -> bool:  # the element or one around it says translate="no"
        while i >= 0:
            if tokens[i].attrs.get("translate") == "no":
                return True
            i = tokens[i].parent
        return False

    def inner(i: int) -> str:
        return "".join(t.raw for t in tokens[i + 1 : ends.get(i, i + 1)])

    found: list[Unit] = []
    for i, token in enumerate(tokens):
        if token.kind != "start" or local(token.name) != "source" or i not in ends:
            continue
        unit = token.parent
        if unit < 0 or local(tokens[unit].name) not in UNITS or no(i):
            continue
        close = ends[i]
        target = next(
            (
                j
                for j in range(close + 1, ends.get(unit, len(tokens)))
                if tokens[j].kind in ("start", "empty")
                and tokens[j].parent == unit
                and local(tokens[j].name) == "target"
            ),
            None,
        )
        if target is not None and re.sub(r"<[^>]*>", "", inner(target)).strip():
            continue  # already translated
        prefix = token.name[: -len("source")]
        edits: list[tuple[int, int, str]] = []
        if version == 2:  # the segment's state
            start = tokens[unit]
            edits.append((offsets[unit], offsets[unit + 1], with_state(start.raw)))
        if target is None:
            before = tokens[i - 1]
            space = before.raw if before.kind == "text" and not before.raw.strip() else ""
            state = ' state="translated"' if version == 1 else ""
            made = f"{space}<{prefix}target{state}>{HERE}</{prefix}target>"
            edits.append((offsets[close + 1], offsets[close + 1], made))
        else:
            opened = tokens[target]
            tag = with_state(opened.raw) if version == 1 else opened.raw
            if opened.kind == "empty":
                tag = re.sub(r"\s*/>$", ">", tag) + f"{HERE}</{opened.name}>"
                edits.append((offsets[target], offsets[target + 1], tag))
            else:
                edits.append((offsets[target], offsets[ends[target]], tag + HERE))
        found.append(Unit(inner(i), version, prefix, edits))
    return found


def with_state(tag: str) -> str:
    """A start tag with ``state="translated"``, in place of any state it had."""
    if STATE.search(tag):
        return STATE.sub(' state="translated"', tag, count=1)
    end = len(tag) - (2 if tag.endswith("/>") else 1)
    return tag[:end].rstrip() + ' state="translated"' + tag[end:]


async def translate_xliff(data: bytes, translator: Translator) -> bytes:
    xliff = await asyncio.to_thread(read, data)
    text, found = xliff.text, xliff.units
    languages = language_edits(xliff.holders, translator.target_lang)
    prefixes = {u.prefix for u in found} or {""}
    options = TagOptions(
        mode="xml",
        ignore_tags=frozenset(p + c for p in prefixes for c in CODES),
        outline_detection=False,  # every tag of a source is inline: one source, one sentence
    )
    try:
        translated = await translator.markup([u.source for u in found], options)
    except MarkupError as exc:
        raise DocumentError(f"not a readable XLIFF file ({exc})") from None
    edits = sorted(
        [
            *(
                (start, end, made.replace(HERE, target))
                for u, target in zip(found, translated, strict=True)
                for start, end, made in u.edits
            ),
            *languages,
        ],
        key=lambda e: (e[0], e[1]),
        reverse=True,
    )
    for start, end, made in edits:
        text = text[:start] + made + text[end:]
    return text.encode("utf-8")
