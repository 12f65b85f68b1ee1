"""What a document format translates through: plain strings, or inline markup whose tags are
placed by the model's alignment (markup.translate_markup); and the characters it sent (DeepL's
``billed_characters``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from service.usecase.documents.safety import MAX_CHARACTERS, DocumentError
from service.usecase.markup import Align, TagOptions, translate_markup

Strings = Callable[[list[str]], Awaitable[list[str]]]


@dataclass
class Translator:
    """``plain`` for strings, ``markup`` for HTML/XML strings; both count what they send and
    refuse a document past ``max_characters`` before any of it is translated. ``target_lang``
    is the language asked for, as the client wrote it (``DE``, ``en-US``), for a format that
    names its target language in the file (XLIFF)."""

    strings: Strings
    align: Align | None = None
    max_characters: int = MAX_CHARACTERS
    target_lang: str = field(kw_only=True)
    billed: int = field(default=0, init=False)

    async def plain(self, texts: list[str]) -> list[str]:
        self.billed += sum(len(t) for t in texts)
        if self.billed > self.max_characters:
            raise DocumentError(
                f"the document has more than {self.max_characters} characters to translate"
            )
        return await self.strings(texts) if texts else []

    async def markup(self, documents: list[str], options: TagOptions) -> list[str]:
        if not documents:
            return []
        return await translate_markup(documents, options, self.plain, self.align)
