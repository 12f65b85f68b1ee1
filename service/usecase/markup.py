"""Translate the text of HTML or XML while every tag, attribute, comment, entity and CDATA section
stays byte for byte where it was (DeepL ``tag_handling=html|xml``, LibreTranslate
``format=html``).

The document is cut, by the standard library's HTML tokenizer, into raw tokens that tile the input
exactly; only text tokens ever change. Text is translated by *segment*: a run of text and inline
(non-splitting) tags, so that "Press <b>Continue</b> now." is translated as one sentence. The
inline tags are put back where the words they wrapped went, by the model's own attention
(service/decoding/alignment.py): the sentence translates exactly as it does without its tags. For a
package without an aligner (fp16), each tagged piece is translated alone and looked for in the
translation; where that fails too the pieces are translated one by one (every tag kept, the
sentence cut). Nothing of the input is ever dropped: what is not translated is copied.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from service.decoding.alignment import WordAlignment, strongest_run, words
from service.errors import InvalidRequest
from service.usecase.markup_scan import Token, scan
from service.usecase.translate import OFF_LOOP_CHARS

Translate = Callable[[list[str]], Awaitable[list[str]]]
# (source, its translation) pairs -> where each translated word came from (None: unknown).
Align = Callable[[list[tuple[str, str]]], Awaitable[list[WordAlignment | None]]]

# HTML phrasing content that sits inside a sentence (DeepL's non-splitting tags for HTML).
HTML_INLINE = frozenset(
    {
        *("a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "font", "i"),
        *("img", "kbd", "mark", "q", "s", "samp", "small", "span", "strong", "sub", "sup"),
        *("time", "tt", "u", "var", "wbr"),
    }
)
HTML_VOID = frozenset(
    {
        *("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"),
        *("param", "source", "track", "wbr"),
    }
)
# Never translated, whatever the options say.
UNTRANSLATABLE = frozenset({"script", "style"})


class MarkupError(InvalidRequest):
    """XML that is not well formed (HTML is always taken as a best effort)."""

    status, error_type = 400, "invalid_markup"


@dataclass(frozen=True)
class TagOptions:
    """DeepL's tag options. ``outline_detection=False``: only ``splitting_tags`` split (XML)."""

    mode: str = "html"  # "html" or "xml"
    ignore_tags: frozenset[str] = frozenset()
    non_splitting_tags: frozenset[str] = frozenset()
    splitting_tags: frozenset[str] = frozenset()
    outline_detection: bool = True

    @classmethod
    def parse(
        cls,
        mode: str,
        ignore_tags: object = None,
        non_splitting_tags: object = None,
        splitting_tags: object = None,
        outline_detection: object = None,
    ) -> TagOptions:
        """From request fields: comma-separated strings or lists of names."""
        if mode not in ("html", "xml"):
            raise InvalidRequest(f"tag_handling must be 'html' or 'xml', got {mode!r}")
        return cls(
            mode,
            tag_set(ignore_tags, mode),
            tag_set(non_splitting_tags, mode),
            tag_set(splitting_tags, mode),
            str(outline_detection) not in ("0", "False", "false"),
        )


def tag_set(value: object, mode: str) -> frozenset[str]:
    if value is None or value == "":
        return frozenset()
    items: Iterable[object] = value.split(",") if isinstance(value, str) else value  # type: ignore[assignment]
    if not isinstance(items, list | tuple | set | frozenset) and not isinstance(value, str):
        raise InvalidRequest("tag lists must be comma-separated strings or lists of strings")
    names = {str(v).strip() for v in items if str(v).strip()}
    return frozenset(n.lower() for n in names) if mode == "html" else frozenset(names)


# -- tokens -------------------------------------------------------------------------------------

# Elements open at once, at most: what a browser's parser builds (Blink's limit); deeper markup is
# refused rather than walked (issue 35).
MAX_DEPTH = 512


def tokenize(source: str, options: TagOptions) -> list[Token]:
    """Raw tokens with their element structure resolved: names, parents, frozen and inline."""
    xml = options.mode == "xml"
    tokens = scan(source, xml)
    stack: list[int] = []  # indices of open start tokens
    open_by_name: dict[str, list[int]] = {}  # name -> its open start tokens, innermost last
    frozen_depth = 0  # how many open elements freeze their content
    freezes: dict[int, bool] = {}
    for i, token in enumerate(tokens):
        if token.kind in ("start", "empty"):
            name = token.text if xml else token.name
            token.name = name
            attrs = token.attrs
            freezing = (
                name.lower() in UNTRANSLATABLE
                or name in options.ignore_tags
                or attrs.get("translate") == "no"
                or "notranslate" in (attrs.get("class") or "").split()
            )
            token.parent = stack[-1] if stack else -1
            token.frozen = frozen_depth > 0 or freezing
            void = token.kind == "empty" or (not xml and name in HTML_VOID)
            if not void:
                if len(stack) >= MAX_DEPTH:
                    raise MarkupError(
                        f"markup nests more than {MAX_DEPTH} elements at line {token.line}, "
                        f"column {token.column + 1}"
                    )
                stack.append(i)
                open_by_name.setdefault(name, []).append(i)
                freezes[i] = freezing
                frozen_depth += freezing
            elif token.kind == "start":
                token.kind = "empty"
        elif token.kind == "end":
            name = token.raw[2:].strip().rstrip(">").strip() if xml else token.name
            token.name = name
            opened = open_by_name.get(name)
            closing = opened[-1] if opened else None  # the start tag this end tag closes
            if xml and (not stack or tokens[stack[-1]].name != name):
                expected = f"</{tokens[stack[-1]].name}>" if stack else "no end tag"
                raise MarkupError(
                    f"markup is not well-formed XML at line {token.line}, column "
                    f"{token.column + 1}: found </{name}>, expected {expected}"
                )
            if closing is not None:  # HTML: an end tag closes everything opened after its start
                while stack:
                    j = stack.pop()
                    open_by_name[tokens[j].name].pop()
                    frozen_depth -= freezes[j]
                    if j == closing:
                        break
                token.parent = tokens[closing].parent
                token.opener = closing
            else:
                token.parent = stack[-1] if stack else -1
            token.frozen = frozen_depth > 0 or (closing is not None and freezes[closing])
        else:
            token.parent = stack[-1] if stack else -1
            token.frozen = frozen_depth > 0
    if xml and stack:
        first = tokens[stack[0]]
        raise MarkupError(
            f"markup is not well-formed XML: <{first.name}> at line {first.line}, column "
            f"{first.column + 1} is never closed"
        )
    mark_inline(tokens, options)
    return tokens


def mark_inline(tokens: list[Token], options: TagOptions) -> None:
    """Which tags split sentences: DeepL's lists first, then HTML phrasing elements, or for XML
    (outline detection) the elements that sit in mixed content: their parent has text of its own."""
    mixed: set[int] = set()
    if options.mode == "xml" and options.outline_detection:
        for token in tokens:
            if token.kind in ("text", "entity") and token.text.strip():
                mixed.add(token.parent)
    starts: dict[int, bool] = {}
    for i, token in enumerate(tokens):
        if token.kind not in ("start", "empty", "end"):
            continue
        if token.kind == "end":
            token.inline = starts.get(token.opener, False)
            continue
        name = token.name
        if name in options.splitting_tags:
            inline = False
        elif name in options.non_splitting_tags:
            inline = True
        elif options.mode == "html":
            inline = name in HTML_INLINE
        else:
            inline = token.parent in mixed if options.outline_detection else True
        token.inline = inline
        starts[i] = inline


# -- segments -----------------------------------------------------------------------------------


@dataclass
class Segment:
    """A run of text and inline tags translated as one: ``pieces`` are the texts between tags."""

    tokens: list[Token] = field(default_factory=list)

    def pieces(self) -> list[list[Token]]:
        """The token runs between tags (a piece may be empty)."""
        out: list[list[Token]] = [[]]
        for token in self.tokens:
            if token.kind in ("text", "entity") and not token.frozen:
                out[-1].append(token)
            else:
                out.append([])
        return out

    def has_text(self) -> bool:
        return any(
            t.kind in ("text", "entity") and not t.frozen and t.text.strip() for t in self.tokens
        )


def segments(tokens: Sequence[Token]) -> list[Segment | Token]:
    """Tokens grouped: translatable segments, and the tokens between them copied as they are."""
    out: list[Segment | Token] = []
    current = Segment()

    def flush() -> None:
        nonlocal current
        if current.tokens:
            if current.has_text():
                out.append(current)
            else:
                out.extend(current.tokens)
        current = Segment()

    inside = 0  # depth within an inline element that is not translated (a product name)
    for token in tokens:
        if inside:
            current.tokens.append(token)
            inside += {"start": 1, "end": -1}.get(token.kind, 0)
        elif (token.kind in ("text", "entity") and not token.frozen) or token.inline:
            current.tokens.append(token)
            inside = int(token.kind == "start" and token.frozen)
        else:
            flush()
            out.append(token)
    flush()
    return out


def plain(tokens: Iterable[Token]) -> str:
    return "".join(t.text for t in tokens)


SPACE = " \t\n\r\f"  # markup's whitespace; a no-break space (&nbsp;) is text


def normalize(text: str) -> str:
    """Whitespace in markup is layout: one space between words for the model."""
    for ch in SPACE[1:]:
        text = text.replace(ch, " ")
    return " ".join(word for word in text.split(" ") if word)


def escape(text: str, entities: dict[str, str]) -> str:
    """Markup-escape translated text, writing characters the source spelled as an entity
    (``&nbsp;``, ``&copy;``) the same way again."""
    out = []
    for ch in text:
        if ch in entities:
            out.append(entities[ch])
        elif ch in "&<>":
            out.append({"&": "&amp;", "<": "&lt;", ">": "&gt;"}[ch])
        else:
            out.append(ch)
    return "".join(out)


def with_space(original: str, translated: str, entities: dict[str, str]) -> str:
    """The translation with the source's leading and trailing whitespace (``&nbsp;`` included)."""
    lead = original[: len(original) - len(original.lstrip(SPACE))]
    trail = original[len(original.rstrip(SPACE)) :]
    return escape(lead, entities) + translated + escape(trail, entities)


# -- translation --------------------------------------------------------------------------------


async def translate_markup(
    documents: list[str], options: TagOptions, translate: Translate, align: Align | None = None
) -> list[str]:
    """Translate each document's text: one call to ``translate`` for every segment whole, one to
    ``align`` for those with inline tags, and only if some cannot be aligned, one more for their
    pieces."""
    large = sum(len(doc) for doc in documents) > OFF_LOOP_CHARS  # keep the event loop answering
    if large:
        parsed = await asyncio.to_thread(parse, documents, options)
    else:
        parsed = parse(documents, options)
    found = [item for items in parsed for item in items if isinstance(item, Segment)]
    sources = list(dict.fromkeys(whole_text(segment) for segment in found))
    table = dict(zip(sources, await translate(sources) if sources else [], strict=True))
    tagged = [s for s in found if len(s.pieces()) > 1 and table[whole_text(s)] != whole_text(s)]
    pairs = list(dict.fromkeys((whole_text(s), table[whole_text(s)]) for s in tagged))
    alignments = await align(pairs) if align is not None and pairs else [None] * len(pairs)
    aligned = dict(zip(pairs, alignments, strict=True))
    placed: dict[int, str] = {}  # id(segment) -> its translation with its tags
    unplaced: list[Segment] = []
    for segment in tagged:
        key = whole_text(segment)
        alignment = aligned[key, table[key]]
        result = place_by_alignment(segment, table[key], alignment) if alignment else None
        if result is None:
            unplaced.append(segment)
        else:
            placed[id(segment)] = result
    wanted = {
        normalize(plain(piece)): None
        for segment in unplaced
        for piece in segment.pieces()
        if has_words(plain(piece)) and normalize(plain(piece)) not in table
    }
    more = list(wanted)
    table.update(zip(more, await translate(more) if more else [], strict=True))
    if large:
        return await asyncio.to_thread(render_all, parsed, table, placed)
    return render_all(parsed, table, placed)


def parse(documents: list[str], options: TagOptions) -> list[list[Segment | Token]]:
    return [segments(tokenize(doc, options)) for doc in documents]


def render_all(
    parsed: list[list[Segment | Token]], table: dict[str, str], placed: dict[int, str]
) -> list[str]:
    return [render(items, table, placed) for items in parsed]


def whole_text(segment: Segment) -> str:
    """What is translated for a segment: its text without its tags, whitespace as layout."""
    return normalize(plain(t for p in segment.pieces() for t in p))


def has_words(text: str) -> bool:
    """Whether a piece has anything to translate (``&nbsp;`` and U+3000 alone have not)."""
    return bool(text.strip())


def render(items: list[Segment | Token], table: dict[str, str], placed: dict[int, str]) -> str:
    return "".join(
        render_segment(item, table, placed.get(id(item))) if isinstance(item, Segment) else item.raw
        for item in items
    )


def render_segment(segment: Segment, table: dict[str, str], aligned: str | None) -> str:
    pieces = segment.pieces()
    whole = plain(t for p in pieces for t in p)
    key = normalize(whole)
    if table[key] == key:  # nothing changed: the source, spelling and layout included
        return "".join(t.raw for t in segment.tokens)
    entities = {t.text: t.raw for t in segment.tokens if t.kind == "entity" and len(t.text) == 1}
    if aligned is not None:
        return with_space(whole, aligned, entities)
    if len(pieces) == 1:
        return with_space(whole, escape(table[key], entities), entities)
    placed = place_tags(segment, pieces, table, entities)
    if placed is not None:
        return with_space(whole, placed, entities)
    # one by one: every tag where it was, the sentence translated in parts
    out: list[str] = []
    for piece, token in zip(pieces, [*boundaries(segment), None], strict=True):
        text = plain(piece)
        if has_words(text):
            out.append(with_space(text, escape(table[normalize(text)], entities), entities))
        else:
            out.append("".join(t.raw for t in piece))
        if token is not None:
            out.append(token.raw)
    return "".join(out)


def source_words_by_piece(pieces: list[list[Token]]) -> list[int] | None:
    """For each word of the segment's normalized text (``words``), the piece most of it lies in;
    None if labelling and normalizing disagree (never expected)."""
    labels: list[int] = []
    chars: list[str] = []
    for k, piece in enumerate(pieces):
        for ch in plain(piece):
            chars.append(" " if ch in SPACE else ch)
            labels.append(k)
    text = "".join(chars)
    spans = words(text)
    if " ".join(text[a:b] for a, b in spans) != normalize(text):
        return None
    owners = []
    for a, b in spans:
        counts: dict[int, int] = {}
        for k in labels[a:b]:
            counts[k] = counts.get(k, 0) + 1
        owners.append(max(counts, key=lambda k: (counts[k], -k)))
    return owners


def place_by_alignment(segment: Segment, target: str, alignment: WordAlignment) -> str | None:
    """The segment's translation ``target`` with its inline tags put back by the word alignment:
    the target's words are cut, in order, into one run per piece of the source (a piece being
    the text between two tags) so that as much of each word's attention as possible falls on its
    own piece, every piece with words getting at least one. Tags keep their order, so they nest
    as they did. None when the alignment does not fit the text (the caller falls back)."""
    pieces = segment.pieces()
    owners = source_words_by_piece(pieces)
    spans = words(target)
    weights = alignment.weights
    if owners is None or weights.shape != (len(spans), len(owners)):
        return None
    n = len(pieces)
    score = [[0.0] * n for _ in spans]  # target word x piece: attention on that piece's words
    for t in range(len(spans)):
        for s, k in enumerate(owners):
            score[t][k] += float(weights[t, s])
    entities = {t.text: t.raw for t in segment.tokens if t.kind == "entity" and len(t.text) == 1}
    moved = tags_with_words(segment, target, spans, score, set(owners), entities)
    if moved is not None:
        return moved
    required = [k in set(owners) for k in range(n)]
    runs = monotone_runs(score, required)
    if runs is None:
        return None
    located: list[tuple[int, int]] = []
    last_end = 0
    for k in range(n):
        mine = [t for t, owner in enumerate(runs) if owner == k]
        if mine:
            start, end = trimmed(
                target, spans[mine[0]][0], spans[mine[-1]][1], normalize(plain(pieces[k]))
            )
            located.append((start, end))
            last_end = end
        else:
            located.append((last_end, last_end))
    return join_at(segment, pieces, target, located, entities, aligned=True)


def trimmed(target: str, start: int, end: int, source: str) -> tuple[int, int]:
    """The span ``target[start:end]`` without the punctuation glued to its words' edges, where
    the ``source`` text it stands for has none there ("<b>barbecue</b>." -> "<b>grillen</b>.")."""
    text = target[start:end]
    if source[:1].isalnum():
        start += len(text) - len(text.lstrip(PUNCTUATION))
    if source[-1:].isalnum():
        end = max(start, end - (len(text) - len(text.rstrip(PUNCTUATION))))
    return start, end


def tags_with_words(
    segment: Segment,
    target: str,
    spans: list[tuple[int, int]],
    score: list[list[float]],
    worded: set[int],
    entities: dict[str, str],
) -> str | None:
    """Each inline element around the target words whose attention falls mostly on its pieces,
    wherever the translation moved them ("playing <b>soccer</b> in a park" -> "spielen in einem
    Park <b>Fußball</b>"). Only where every tag between the pieces is one of a start/end pair,
    every element wraps source words, each finds target words, and the elements' spans nest as
    they did; otherwise None, and the tags keep their order instead (``monotone_runs``)."""
    cuts_at = boundaries(segment)
    elements: list[tuple[int, int]] = []  # (start tag's boundary, end tag's boundary)
    stack: list[int] = []
    for i, tag in enumerate(cuts_at):
        if tag.kind == "start" and not tag.frozen:
            stack.append(i)
        elif tag.kind == "end" and stack and cuts_at[stack[-1]].name == tag.name:
            elements.append((stack.pop(), i))
        else:
            return None
    if stack:
        return None
    label = [max(range(len(row)), key=lambda k: (row[k], -k)) for row in score]
    pieces = segment.pieces()
    found: dict[tuple[int, int], tuple[int, int]] = {}  # element -> (first, last) target word
    wrapped: dict[tuple[int, int], str] = {}  # element -> the source text it wraps
    for first_tag, last_tag in elements:
        inside = range(first_tag + 1, last_tag + 1)  # the pieces it wraps
        mine = [t for t, k in enumerate(label) if k in inside]
        if not mine or not any(k in worded for k in inside):
            return None
        on_element = [sum(row[k] for k in inside) for row in score]
        best = strongest_run(mine, on_element.__getitem__)
        found[first_tag, last_tag] = (best[0], best[-1])
        wrapped[first_tag, last_tag] = normalize(plain(t for k in inside for t in pieces[k]))
    for (one, one_words), (two, two_words) in itertools.combinations(found.items(), 2):
        nested = (one[0] < two[0] and two[1] < one[1]) or (two[0] < one[0] and one[1] < two[1])
        apart = one_words[1] < two_words[0] or two_words[1] < one_words[0]
        if not nested and not apart:  # siblings whose words interleave: no well-formed answer
            return None
    events: list[tuple[int, int, int, int, str]] = []
    for (first_tag, last_tag), (lo, hi) in found.items():
        depth = sum(1 for e in elements if e[0] < first_tag and last_tag < e[1])
        start, end = trimmed(target, spans[lo][0], spans[hi][1], wrapped[first_tag, last_tag])
        events.append((start, 1, -end, depth, cuts_at[first_tag].raw))
        events.append((end, 0, -start, -depth, cuts_at[last_tag].raw))
    out, last = [], 0
    for position, _, _, _, raw in sorted(events):
        out.append(escape(target[last:position], entities))
        out.append(raw)
        last = position
    out.append(escape(target[last:], entities))
    return "".join(out)


# What may be split off a word's edges when a tag wraps the word but not its punctuation.
PUNCTUATION = ".,;:!?…)(\"'«»„“”‘’¡¿。、，．！？：；「」『』"


def monotone_runs(score: list[list[float]], required: list[bool]) -> list[int] | None:
    """The non-decreasing piece of each target word maximizing the summed ``score``, each required
    piece owning at least one word (dynamic programming, O(words x pieces)); None if there are
    fewer words than required pieces."""
    words_n, pieces_n = len(score), len(required)
    if sum(required) > words_n:
        return None
    low = float("-inf")
    # best[w][k]: words 0..w-1 placed in pieces 0..k, piece k's requirement met (or waived).
    best = [[low] * pieces_n for _ in range(words_n + 1)]
    back: list[list[str]] = [[""] * pieces_n for _ in range(words_n + 1)]
    for k in range(pieces_n):
        if not required[k]:
            best[0][k] = best[0][k - 1] if k else 0.0
            back[0][k] = "skip"
    for w in range(1, words_n + 1):
        for k in range(pieces_n):
            options = [
                (best[w - 1][k] + score[w - 1][k], "extend"),  # word w-1 joins piece k's run
                (
                    (best[w - 1][k - 1] if k else (0.0 if w == 1 else low)) + score[w - 1][k],
                    "start",
                ),  # word w-1 opens piece k's run
            ]
            if not required[k] and k:
                options.append((best[w][k - 1], "skip"))  # piece k owns no word
            value, how = max(options, key=lambda o: o[0])
            best[w][k], back[w][k] = value, how
    if best[words_n][pieces_n - 1] == low:
        return None
    runs = [0] * words_n
    w, k = words_n, pieces_n - 1
    while w > 0:
        how = back[w][k]
        if how == "skip":
            k -= 1
            continue
        runs[w - 1] = k
        w -= 1
        if how == "start":
            k -= 1
    return runs


def boundaries(segment: Segment) -> list[Token]:
    """The tokens between pieces: inline tags, and whatever an inline frozen element holds."""
    return [t for t in segment.tokens if not (t.kind in ("text", "entity") and not t.frozen)]


def place_tags(
    segment: Segment, pieces: list[list[Token]], table: dict[str, str], entities: dict[str, str]
) -> str | None:
    """The whole segment's translation with its inline tags put back: each piece inside a tag is
    looked for (in order) in the translation; the pieces around it take what lies between. None
    when a piece is not found or two outer pieces with text touch (no way to know where to cut)."""
    target = table[normalize(plain(t for p in pieces for t in p))]
    cuts_at = boundaries(segment)
    texts = [normalize(plain(p)) for p in pieces]
    depth, depths = 0, []
    for i in range(len(pieces)):
        depths.append(depth)
        if i < len(cuts_at):
            depth += {"start": 1, "end": -1}.get(cuts_at[i].kind, 0)
    # pieces inside inline tags are found in the translation; the others fill the gaps
    spans: list[tuple[int, int] | None] = []
    cursor, lowered = 0, target.lower()
    for text, level in zip(texts, depths, strict=True):
        if level <= 0 or not has_words(text):
            spans.append(None)
            cursor += bool(text)  # an outer piece with text takes at least one character
            continue
        wanted = table[text].lower()
        found = lowered.find(wanted, cursor) if wanted else -1
        if found < 0:
            return None
        spans.append((found, found + len(wanted)))
        cursor = found + len(wanted)
    if not fill_gaps(spans, texts, len(target)):
        return None
    located = [s for s in spans if s is not None]
    return join_at(segment, pieces, target, located, entities)


def join_at(
    segment: Segment,
    pieces: list[list[Token]],
    target: str,
    located: list[tuple[int, int]],
    entities: dict[str, str],
    aligned: bool = False,
) -> str | None:
    """``target`` with the segment's tags between the pieces at their ``located`` spans: a start
    tag before its next piece's span, an end tag after its piece's. None if the cuts go back.
    A piece that gets no text keeps its own if it is only space; ``aligned``: a piece with text
    that gets none (its words were counted with a neighbour's) keeps none, not its source."""
    cuts_at = boundaries(segment)
    cuts = [
        located[i][1] if tag.kind == "end" else located[i + 1][0] for i, tag in enumerate(cuts_at)
    ]
    if any(b < a for a, b in itertools.pairwise(cuts)):
        return None
    out, last = [], 0
    for piece, tag, cut in zip(pieces, [*cuts_at, None], [*cuts, len(target)], strict=True):
        text = target[last:cut]
        # a space between two tags that the translation has nowhere else stays where it was
        if text:
            out.append(escape(text, entities))
        elif not (aligned and has_words(plain(piece))):
            out.append("".join(t.raw for t in piece))
        out.append(tag.raw if tag is not None else "")
        last = cut
    return "".join(out)


def fill_gaps(spans: list[tuple[int, int] | None], texts: list[str], length: int) -> bool:
    """Give each run of unplaced pieces the gap between its placed neighbours: the one piece with
    text takes all of it, empty ones sit at its edges. False when a run has two pieces with text."""
    i = 0
    while i < len(spans):
        if spans[i] is not None:
            i += 1
            continue
        j = i
        while j < len(spans) and spans[j] is None:
            j += 1
        left = spans[i - 1][1] if i > 0 else 0  # type: ignore[index]
        right = spans[j][0] if j < len(spans) else length  # type: ignore[index]
        with_text = [k for k in range(i, j) if texts[k]]
        if len(with_text) > 1 or right < left:
            return False
        owner = with_text[0] if with_text else j
        for k in range(i, j):
            spans[k] = (left, left) if k < owner else (right, right) if k > owner else (left, right)
        i = j
    return True
