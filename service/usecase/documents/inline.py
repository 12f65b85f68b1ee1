"""A paragraph of formatted runs (docx's ``w:r``, pptx's ``a:r``, and the links and fields that
hold them) as a small inline markup, ``<c0>Hello </c0><c1>world</c1><v2/>``, and its
translation put back: every run keeps its formatting and takes the words the model's alignment
(markup.translate_markup) put inside its tag; what cannot hold text (a footnote mark, a tab, a
picture) is a void tag, kept whole and placed by the alignment too."""

from __future__ import annotations

import copy
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.usecase.markup import TagOptions

# XML, every tag inline: one paragraph is one segment, translated whole and its tags aligned.
OPTIONS = TagOptions(mode="xml", outline_detection=False)
TAG = re.compile(r"<(/?)([cv])(\d+)(/?)>")

Element = Any  # an lxml element (python-docx's and python-pptx's trees)


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def pieces(markup: str) -> list[tuple[str, int | str]]:
    """("open"|"close"|"void", index) and ("text", text) in order, from markup made here."""
    out: list[tuple[str, int | str]] = []
    at = 0
    for match in TAG.finditer(markup):
        if match.start() > at:
            out.append(("text", html.unescape(markup[at : match.start()])))
        kind = "close" if match[1] else "void" if match[4] else "open"
        out.append((kind, int(match[3])))
        at = match.end()
    if at < len(markup):
        out.append(("text", html.unescape(markup[at:])))
    return out


@dataclass(frozen=True)
class RunSpec:
    """A format's names (Clark notation ``{ns}local``) for runs and what surrounds them."""

    run: str  # a run: its properties and its text
    text: str  # the run's text element
    props: str  # the run's properties, kept
    containers: frozenset[str]  # elements that hold runs (links, smart tags, insertions)
    kept: frozenset[str]  # children that stay where they are (paragraph or link properties)
    preserve_space: bool = False  # xml:space="preserve" on the text element (docx)


XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"


@dataclass
class Paragraph:
    """One paragraph element, its markup and the elements its tags number."""

    element: Element
    spec: RunSpec
    table: list[Element] = field(default_factory=list)
    markup: str = ""

    @classmethod
    def read(cls, element: Element, spec: RunSpec) -> Paragraph:
        paragraph = cls(element, spec)
        paragraph.markup = paragraph.describe(element)
        return paragraph

    def is_text_run(self, element: Element) -> bool:
        spec = self.spec
        return element.tag == spec.run and all(c.tag in (spec.props, spec.text) for c in element)

    def describe(self, parent: Element) -> str:
        out: list[str] = []
        for child in parent:
            if not isinstance(child.tag, str) or child.tag in self.spec.kept:
                continue  # comments and processing instructions stay; so do properties
            n = len(self.table)
            self.table.append(child)
            if self.is_text_run(child):
                text = "".join(t.text or "" for t in child if t.tag == self.spec.text)
                out.append(f"<c{n}>{escape(text)}</c{n}>")
            elif child.tag in self.spec.containers:
                out.append(f"<c{n}>{self.describe(child)}</c{n}>")
            else:
                out.append(f"<v{n}/>")
        return "".join(out)

    def has_text(self) -> bool:
        return any(kind == "text" and str(v).strip() for kind, v in pieces(self.markup))

    def write(self, translated: str) -> None:
        """Replace the paragraph's runs by those of ``translated`` (markup made from this one)."""
        root = Node(None)
        stack = [root]
        last_run: Node | None = None
        pending = ""  # words placed before any run: they go to the next one
        for kind, value in pieces(translated):
            if kind == "text":
                text = str(value)
                if stack[-1].run:
                    stack[-1].text += text
                elif last_run is not None:
                    last_run.text += text
                else:
                    pending += text
                continue
            n = int(value)
            if not 0 <= n < len(self.table):
                continue
            element = self.table[n]
            if kind == "open":
                while stack[-1].run:  # a run holds no element: it ends here
                    stack.pop()
                node = Node(element, run=self.is_text_run(element))
                if node.run:
                    node.text, pending, last_run = pending, "", node
                stack[-1].children.append(node)
                stack.append(node)
            elif kind == "close":
                if any(s.element is element for s in stack):
                    while stack.pop().element is not element:
                        pass
            else:
                while stack[-1].run:
                    stack.pop()
                stack[-1].children.append(Node(element, void=True))
        if pending and last_run is None:
            return  # no run to hold the words (never made here): keep the source
        if pending and last_run is not None:
            last_run.text += pending
        replace_children(self.element, root.children, self.spec, self.make)

    def make(self, node: Node) -> Element:
        """The element for ``node``: a void one as it was, a run or container copied with its
        properties and its new content."""
        if node.void:
            return node.element
        made = copy.deepcopy(node.element)
        if node.run:
            for child in list(made):
                if child.tag != self.spec.props:
                    made.remove(child)
            if node.text:
                text = made.makeelement(self.spec.text, {})
                text.text = node.text
                if self.spec.preserve_space:
                    text.set(XML_SPACE, "preserve")
                made.append(text)
            return made
        replace_children(made, node.children, self.spec, self.make)
        return made


@dataclass
class Node:
    element: Element
    run: bool = False
    void: bool = False
    text: str = ""
    children: list[Node] = field(default_factory=list)


def replace_children(
    parent: Element, nodes: list[Node], spec: RunSpec, make: Callable[[Node], Element]
) -> None:
    """``parent``'s items (all but its kept children) replaced by ``nodes``, where they were."""
    items = [c for c in parent if isinstance(c.tag, str) and c.tag not in spec.kept]
    at = parent.index(items[0]) if items else len(parent)
    built = [make(node) for node in nodes]  # void nodes are moved: build before removing
    for item in items:
        if item.getparent() is parent:
            parent.remove(item)
    trailing = [c for c in parent[at:]]  # kept children after the items (pptx's endParaRPr)
    for element in trailing:
        parent.remove(element)
    for element in built:
        parent.append(element)
    for element in trailing:
        parent.append(element)
