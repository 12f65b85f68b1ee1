"""HTML and XML cut into raw tokens that tile the input exactly, in linear time.

Why not ``html.parser`` (decision #50): a client controls the markup, and CPython's parser
backtracks on unfinished tags (``'<a <a <a ...'``: a third of a second per 5,000 characters, on the
event loop), raises on ``'<![ '``, stops reading entities at ``&#;`` and reads an XML internal DTD
subset as text. This scanner looks at each character a bounded number of times: every search
jumps to the next special character with ``str.find`` or a compiled character class, and a tag
that cannot be closed is remembered so that no later attempt walks the same text again.

What it recognizes, and what it does with what it cannot: start, end and self-closing tags
(attributes quoted, unquoted or bare; a ``<`` that opens no tag is text), comments, CDATA
sections, declarations (an internal subset in brackets included), processing instructions (each
unclosed one runs to the end, copied, never translated), character and named references (one
that names nothing is copied as it is), and the raw text of ``script`` and ``style``.
"""

from __future__ import annotations

import bisect
import html
import re
from dataclasses import dataclass, field

NAME_START = re.compile(r"[A-Za-z_:]")
NAME = re.compile(r"[^\s/>\x00]*")
SPECIAL_CHARS = ">\"'"  # what ends or quotes inside a tag
SPECIAL = re.compile(f"[{SPECIAL_CHARS}]")
ATTRIBUTE = re.compile(r"""([^\s=/>"'][^\s=/>"']*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>"']+))?""")
REFERENCE = re.compile(r"&(?:#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z][A-Za-z0-9]{0,31};)")
TEXT_END = re.compile(r"[<&]")
RAW_TEXT = ("script", "style")  # HTML elements whose content is text up to their end tag


@dataclass
class Token:
    """One raw span of the input. ``kind``: text, entity, start, end, empty, other."""

    kind: str
    raw: str
    name: str = ""
    text: str = ""  # decoded text (text and entity tokens); the name as written (tags)
    frozen: bool = False  # inside script/style/ignored/translate="no": copied as it is
    inline: bool = False  # a tag that does not split a sentence
    parent: int = -1  # index of the start token of the enclosing element
    opener: int = -1  # an end tag's start token
    attrs: dict[str, str | None] = field(default_factory=dict)
    line: int = 0
    column: int = 0


class Scanner:
    """One document's scan; ``xml``: names keep their case and processing instructions end at
    ``?>``."""

    def __init__(self, source: str, xml: bool) -> None:
        self.source, self.xml = source, xml
        self.tokens: list[Token] = []
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        # Positions (just after a tag's name or a closing quote, outside quotes) from which no
        # '>' can be reached: a tag passing one of them cannot close either.
        self.dead: set[int] = set()
        # The last answer of each search ``first``: (from, found) with none of the characters in
        # s[from:found]; a later search from inside that span has the same answer.
        self.memo: dict[str, tuple[int, int]] = {}
        self.pending: tuple[int, int] | None = None  # text not yet a token: (start, end)

    def run(self) -> list[Token]:
        s, i, n = self.source, 0, len(self.source)
        while i < n:
            ch = s[i]
            if ch == "<":
                end = self.markup(i)
                if end > i:
                    i = end
                    continue
                self.text(i, i + 1)  # a '<' that opens nothing
                i += 1
            elif ch == "&":
                m = REFERENCE.match(s, i)
                if m is None:
                    self.text(i, i + 1)
                    i += 1
                    continue
                decoded = html.unescape(m.group())
                # a reference naming nothing (an entity of an XML DTD) is copied, not translated
                kind = "other" if decoded == m.group() else "entity"
                self.add(Token(kind, m.group(), text=decoded if kind == "entity" else ""), i)
                i = m.end()
            else:
                m = TEXT_END.search(s, i)
                end = m.start() if m else n
                self.text(i, end)
                i = end
        self.flush()
        return self.tokens

    def add(self, token: Token, start: int) -> None:
        self.flush()
        line = bisect.bisect_right(self.line_starts, start)
        token.line, token.column = line, start - self.line_starts[line - 1]
        self.tokens.append(token)

    def text(self, start: int, end: int) -> None:
        """Text from ``start`` to ``end``: joined to the text just before it into one token."""
        if self.pending is not None and self.pending[1] == start:
            self.pending = (self.pending[0], end)
        else:
            self.flush()
            self.pending = (start, end)

    def flush(self) -> None:
        if self.pending is not None:
            start, end = self.pending
            self.pending = None
            piece = self.source[start:end]
            self.add(Token("text", piece, text=piece), start)

    def other(self, start: int, end: int) -> int:
        self.add(Token("other", self.source[start:end]), start)
        return end

    def through(self, start: int, needle: str) -> int:
        """The end of the first ``needle`` after ``start``, or of the input."""
        found = self.source.find(needle, start)
        return len(self.source) if found < 0 else found + len(needle)

    def markup(self, i: int) -> int:
        """The end of the construct that starts with '<' at ``i``, its token added; ``i`` if it
        opens none (then the '<' is text)."""
        s = self.source
        if s.startswith("<!--", i):
            return self.other(i, self.through(i + 4, "-->"))
        if s.startswith("<![CDATA[", i):
            return self.other(i, self.through(i + 9, "]]>"))
        if s.startswith("<!", i):
            return self.other(i, self.declaration(i))
        if s.startswith("<?", i):
            return self.other(i, self.through(i + 2, "?>" if self.xml else ">"))
        if s.startswith("</", i):
            if i + 2 < len(s) and NAME_START.match(s, i + 2):
                end = self.through(i + 2, ">")
                raw = s[i:end]
                name = NAME.match(s, i + 2).group()  # type: ignore[union-attr]
                self.add(Token("end", raw, name if self.xml else name.lower()), i)
                return end
            return self.other(i, self.through(i + 2, ">"))  # '</ x>': a bogus comment
        if i + 1 < len(s) and NAME_START.match(s, i + 1):
            return self.start_tag(i)
        return i

    def first(self, chars: str, start: int) -> int:
        """The position of the first of ``chars`` (a class: '>"\'' or one quote) at or after
        ``start``, or the input's length."""
        low, found = self.memo.get(chars, (1, 0))
        if low <= start <= found:
            return found
        if len(chars) == 1:
            at = self.source.find(chars, start)
            found = len(self.source) if at < 0 else at
        else:
            m = SPECIAL.search(self.source, start)
            found = len(self.source) if m is None else m.start()
        self.memo[chars] = (start, found)
        return found

    def declaration(self, i: int) -> int:
        """``<!DOCTYPE ...>``, with an internal subset ``[...]`` read whole."""
        s = self.source
        close = s.find(">", i)
        bracket = s.find("[", i, close if close >= 0 else len(s))
        if bracket >= 0:
            subset_end = s.find("]", bracket)
            if subset_end < 0:
                return len(s)
            close = s.find(">", subset_end)
        return len(s) if close < 0 else close + 1

    def start_tag(self, i: int) -> int:
        s = self.source
        name = NAME.match(s, i + 1).group()  # type: ignore[union-attr]
        j = i + 1 + len(name)
        visited = []
        while True:
            if j in self.dead:
                break
            visited.append(j)
            at = self.first(SPECIAL_CHARS, j)
            if at >= len(s):
                break
            if s[at] == ">":
                end = at + 1
                raw = s[i:end]
                attrs: dict[str, str | None] = {}
                for a in ATTRIBUTE.finditer(raw, 1 + len(name), len(raw) - 1):
                    key, value = a.group(1), a.group(2)
                    if value is not None and value[:1] in "\"'" and value[-1:] == value[:1]:
                        value = value[1:-1]
                    attrs[key if self.xml else key.lower()] = (
                        None if value is None else html.unescape(value)
                    )
                kind = "empty" if raw.endswith("/>") else "start"
                token = Token(kind, raw, name if self.xml else name.lower(), text=name, attrs=attrs)
                self.add(token, i)
                if not self.xml and kind == "start" and token.name in RAW_TEXT:
                    return self.raw_text(end, token.name)
                return end
            close = self.first(s[at], at + 1)
            if close >= len(s):
                break
            j = close + 1
        self.dead.update(visited)
        return i

    def raw_text(self, start: int, name: str) -> int:
        """The content of ``<script>`` or ``<style>``: text up to its end tag, as browsers do."""
        s = self.source
        lowered_end = f"</{name}"
        at = start
        while True:
            found = s.find("</", at)
            if found < 0:
                end = len(s)
                break
            if s[found : found + len(lowered_end)].lower() == lowered_end:
                end = found
                break
            at = found + 2
        if end > start:
            token = Token("text", s[start:end], text=s[start:end])
            token.name = name  # never merged with the text that follows the element
            self.add(token, start)
        return end


def scan(source: str, xml: bool) -> list[Token]:
    """Raw tokens that tile ``source`` exactly (``"".join(t.raw ...) == source``)."""
    return Scanner(source, xml).run()
