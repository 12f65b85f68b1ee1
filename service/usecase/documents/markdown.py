"""Markdown through markdown-it-py (CommonMark with tables and strikethrough): the inline text of
paragraphs, headings, list items, blockquotes and table cells translated, each block whole with
its emphasis, links and code spans as inline tags placed by the model's alignment (inline.py's
markup); code blocks, HTML blocks, front matter and every line's layout (markers, indentation,
table pipes) kept. The document is not re-rendered: only the translated text of each block's own
lines (the tokens' ``map``) is replaced, a block of n lines is written back on n lines."""

from __future__ import annotations

import asyncio
import html
import re
from dataclasses import dataclass, field
from typing import Any

from service.usecase.documents.inline import OPTIONS, escape, pieces
from service.usecase.documents.safety import DocumentError, decode_text
from service.usecase.documents.text import rebreak
from service.usecase.documents.translator import Translator

FRONT_MATTER = re.compile(r"\A(---|\+\+\+)[ \t]*\n.*?\n\1[ \t]*(\n|\Z)", re.DOTALL)
MAX_NESTING = 100  # markdown-it's own default for nested blocks and inline markup


def parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"maxNesting": MAX_NESTING}).enable(["table", "strikethrough"])


@dataclass
class Block:
    """One inline token: the markup sent (``<c0>`` tags for formatting, ``<v1/>`` for what is
    kept whole), what each tag stands for, and where its lines are."""

    lines: list[int]  # source line of each content line
    content: list[str]  # the content lines, as in the source
    markup: str = ""
    opens: dict[int, str] = field(default_factory=dict)  # tag -> its opening markdown
    closes: dict[int, str] = field(default_factory=dict)
    voids: dict[int, str] = field(default_factory=dict)


def describe(children: list[Any], block: Block) -> None:
    out: list[str] = []
    stack: list[int] = []
    skip = 0  # inside an autolink: its text is its URL, kept whole
    for child in children:
        kind = child.type
        if skip:
            skip -= kind == "link_close"
            continue
        n = len(block.opens) + len(block.voids)
        if kind == "text":
            out.append(escape(child.content))
        elif kind == "softbreak":
            out.append("\n")
        elif kind == "link_open" and child.markup == "autolink":
            block.voids[n] = f"<{child.attrs.get('href', '')}>"
            out.append(f"<v{n}/>")
            skip = 1
        elif kind.endswith("_open"):
            if kind == "link_open":
                href, title = str(child.attrs.get("href", "")), child.attrs.get("title")
                titled = f' "{title}"' if title else ""
                block.opens[n], block.closes[n] = "[", f"]({href}{titled})"
            else:
                block.opens[n] = block.closes[n] = child.markup
            stack.append(n)
            out.append(f"<c{n}>")
        elif kind.endswith("_close") and stack:
            out.append(f"</c{stack.pop()}>")
        elif kind == "code_inline":
            fence = child.markup
            pad = " " if child.content.startswith("`") or child.content.endswith("`") else ""
            block.voids[n] = f"{fence}{pad}{child.content}{pad}{fence}"
            out.append(f"<v{n}/>")
        elif kind == "hardbreak":
            block.voids[n] = "\\\n"
            out.append(f"<v{n}/>")
        elif kind == "image":
            src, title = str(child.attrs.get("src", "")), child.attrs.get("title")
            titled = f' "{title}"' if title else ""
            block.voids[n] = f"![{child.content}]({src}{titled})"
            out.append(f"<v{n}/>")
        else:  # inline HTML, anything else: kept as written
            block.voids[n] = child.content
            out.append(f"<v{n}/>")
    block.markup = "".join(out)


KEEP = "\0"  # a space inside a link's or a code span's syntax, while lines are cut at spaces


def rebuild(block: Block, translated: str) -> str:
    """The block's Markdown from its translated markup; the spaces of its syntax are ``KEEP``."""
    out: list[str] = []
    for kind, value in pieces(translated):
        if kind == "text":
            out.append(str(value).replace("\n", " "))
        elif kind == "open":
            out.append(block.opens.get(int(value), "").replace(" ", KEEP))
        elif kind == "close":
            out.append(block.closes.get(int(value), "").replace(" ", KEEP))
        else:
            out.append(block.voids.get(int(value), "").replace(" ", KEEP))
    return "".join(out)


def read(data: bytes) -> tuple[list[str], list[Block]]:
    text = decode_text(data)
    lines = text.split("\n")
    front = FRONT_MATTER.match(text)
    skipped = front[0].count("\n") if front else 0
    body = "\n" * skipped + "\n".join(lines[skipped:])  # front matter: blank lines to the parser
    try:
        tokens = parser().parse(body)
    except Exception as exc:  # markdown-it takes any text; a limit it hits is still a 400
        raise DocumentError(f"not readable Markdown ({type(exc).__name__}: {exc})") from None
    blocks: list[Block] = []
    for token in tokens:
        if token.type != "inline" or not token.map or not token.children:
            continue
        content = token.content.split("\n")
        first = token.map[0]
        block = Block([first + i for i in range(len(content))], content)
        describe(token.children, block)
        if re.search(r"[^\W\d_]", html.unescape(re.sub(r"<[^>]*>", "", block.markup))):
            blocks.append(block)
    return lines, blocks


def check_md(data: bytes) -> object:
    return read(data)


def write(lines: list[str], blocks: list[Block], translated: list[str]) -> bytes:
    edits: dict[int, list[tuple[int, int, str]]] = {}
    cursor: dict[int, int] = {}  # a table row holds several cells: each found after the last
    for block, text in zip(blocks, translated, strict=True):
        spots: list[tuple[int, int, int]] = []
        for line, piece in zip(block.lines, block.content, strict=True):
            if line >= len(lines):
                break
            at = lines[line].find(piece, cursor.get(line, 0)) if piece else -1
            if at < 0:
                break
            spots.append((line, at, at + len(piece)))
        if len(spots) != len(block.lines):
            continue  # its lines were not found as they are: the block is kept as written
        markdown = rebuild(block, text)
        parts = markdown.split("\\\n")  # hard breaks end lines where the source had them
        new: list[str] = []
        for k, part in enumerate(parts):
            room = len(spots) - len(new) - (len(parts) - k - 1)
            broken = rebreak(part.strip(), max(room, 1))
            if k < len(parts) - 1:
                broken[-1] += "\\"
            new.extend(broken)
        if len(new) < len(spots):  # fewer words than lines: the last lines left blank-free
            new += [""] * (len(spots) - len(new))
        if len(new) > len(spots):
            new[len(spots) - 1 :] = [" ".join(new[len(spots) - 1 :])]
        for (line, start, end), piece in zip(spots, new, strict=True):
            edits.setdefault(line, []).append((start, end, piece.replace(KEEP, " ")))
            cursor[line] = end
    for line, changes in edits.items():
        text = lines[line]
        for start, end, piece in sorted(changes, reverse=True):
            text = text[:start] + piece + text[end:]
        lines[line] = text
    return "\n".join(lines).encode("utf-8")


async def translate_md(data: bytes, translator: Translator) -> bytes:
    lines, blocks = await asyncio.to_thread(read, data)
    translated = await translator.markup([b.markup for b in blocks], OPTIONS)
    return write(lines, blocks, translated)
