"""Which tokenizer a package uses, and the seam where a target language enters the source.

``load_tokenizer`` reads the package's tokenizer entry: ours (one SentencePiece model whose ids
are the model's) or Marian's (SentencePiece pieces mapped to ids by ``vocab.json``).
``for_target`` binds a tokenizer to one target of the package: for a multilingual Marian model it
puts the target's ``>>xxx<<`` token in front of every source, exactly as a Transformers user writes
``">>kor<< " + text``. The service routes a (source, target) pair to such a bound tokenizer, so
the HTTP layer passes ``target`` through and never sees a language token.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from contract.marian import MarianTokenizer
from contract.package import PackageConfig, PackageError
from contract.tokenizer import Tokenizer


class TextTokenizer(Protocol):
    """What the service and the CLI need from a tokenizer."""

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def pieces(self, text: str) -> list[str]:
        """The pieces ``encode`` gives ids for, in order (a word's first one starts with ▁)."""
        ...

    def encode_target(self, text: str) -> list[int]:
        """Output ids of a target-language text (for alignment)."""
        ...

    def piece(self, token_id: int) -> str:
        """The output piece of an output id."""
        ...


def load_tokenizer(config: PackageConfig) -> Tokenizer | MarianTokenizer:
    """The tokenizer named by the package's config (files already checked by its manifest)."""
    entry, directory = config.tokenizer, config.directory
    if entry.get("kind") == "marian":
        target_vocab = entry.get("target_vocab")
        return MarianTokenizer(
            directory / entry["source_spm"],
            directory / entry["target_spm"],
            directory / entry["vocab"],
            directory / target_vocab if target_vocab else None,
        )
    return Tokenizer.load(Path(config.tokenizer_path))


class TargetTokenizer:
    """A Marian tokenizer that writes ``token`` (``>>kor<<``) in front of every source text."""

    def __init__(self, base: MarianTokenizer, token: str) -> None:
        self.base, self.token = base, token

    def encode(self, text: str) -> list[int]:
        # Through the same language-code handling as MarianTokenizer(f"{token} {text}").
        return self.base.encode(f"{self.token} {text}")

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        return self.base.decode(ids)

    def pieces(self, text: str) -> list[str]:
        return self.base.pieces(f"{self.token} {text}")

    def encode_target(self, text: str) -> list[int]:
        return self.base.encode_target(text)

    def piece(self, token_id: int) -> str:
        return self.base.piece(token_id)


def for_target(
    tokenizer: Tokenizer | MarianTokenizer, config: PackageConfig, target: str
) -> TextTokenizer:
    """``tokenizer`` bound to ``target``: with its language token if the package has one."""
    if target not in config.target_langs:
        raise PackageError(f"{config.name} does not translate into {target!r}")
    token = config.target_tokens.get(target)
    if token is None:
        return tokenizer
    if not isinstance(tokenizer, MarianTokenizer) or token not in tokenizer.encoder:
        raise PackageError(f"{config.name}: language token {token!r} is not in its vocabulary")
    return TargetTokenizer(tokenizer, token)
