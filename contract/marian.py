"""Marian's tokenization, as Transformers' ``MarianTokenizer`` does it, without Transformers.

An OPUS-MT model's token ids are not SentencePiece ids: ``source.spm`` and ``target.spm`` cut text
into pieces, and ``vocab.json`` (with separate vocabularies, ``target_vocab.json`` for the output)
maps pieces to the ids the model was trained with; a piece the map lacks is ``<unk>``. The source
side follows ``MarianTokenizer`` step by step (tests hold the ids identical on mixed text, Korean
included):

- the text is first split around the special pieces ``</s>``, ``<unk>``, ``<pad>`` written in it
  (each becomes its own id, as Transformers' added tokens do);
- a segment that starts with ``>>`` and contains ``<<`` keeps everything up to that ``<<`` as one
  piece (a language token such as ``>>kor<<``) and hands the rest to SentencePiece;
- the source SentencePiece model cuts the rest into pieces; EOS is appended.

Decoding drops the special ids (pad, eos, unk), joins the pieces with the target model (the source
model when the vocabulary is shared, as ``MarianTokenizer.decode`` does), turns ``▁`` into spaces
and strips the ends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import sentencepiece as spm

PAD_PIECE, UNK_PIECE, EOS_PIECE = "<pad>", "<unk>", "</s>"
SPIECE_UNDERLINE = "\u2581"
SPECIAL_SPLIT = re.compile("(</s>|<unk>|<pad>)")


def language_token(piece: str) -> bool:
    """Whether a vocabulary piece is a target-language token such as ``>>kor<<``."""
    return piece.startswith(">>") and piece.endswith("<<") and len(piece) > 4


def load_vocab(path: Path) -> dict[str, int]:
    """A ``vocab.json`` as a piece -> id map, refused with its file name when malformed."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable vocabulary: {exc}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, int) for k, v in data.items()
    ):
        raise ValueError(f"{path}: expected a JSON object mapping pieces to integer ids")
    return data


def load_processor(path: Path) -> spm.SentencePieceProcessor:
    processor = spm.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(path.read_bytes())
    except RuntimeError as exc:
        raise ValueError(f"{path}: not a SentencePiece model: {exc}") from exc
    return processor


class MarianTokenizer:
    """Source text -> model ids and model ids -> target text for a Marian vocabulary."""

    def __init__(
        self,
        source_spm: Path,
        target_spm: Path,
        vocab: Path,
        target_vocab: Path | None = None,
    ) -> None:
        self.source = load_processor(source_spm)
        self.target = load_processor(target_spm)
        self.encoder = load_vocab(vocab)
        self.separate_vocabs = target_vocab is not None
        target_map = load_vocab(target_vocab) if target_vocab is not None else self.encoder
        self.decoder = {i: piece for piece, i in target_map.items()}
        for name, mapping in (("vocab", self.encoder), ("target vocab", target_map)):
            for piece in (PAD_PIECE, UNK_PIECE, EOS_PIECE):
                if piece not in mapping:
                    raise ValueError(f"{name} has no {piece!r} piece")
        self.unk_id = self.encoder[UNK_PIECE]
        self.eos_id = self.encoder[EOS_PIECE]
        # Transformers' decode skips its special tokens (as ids of the output vocabulary).
        self.skipped = {target_map[p] for p in (PAD_PIECE, UNK_PIECE, EOS_PIECE)}
        # MarianTokenizer joins output pieces with the source model unless vocabularies differ.
        self.joiner = self.target if self.separate_vocabs else self.source
        self._target_ids: dict[str, int] | None = None  # piece -> output id, built on first use

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def language_tokens(self) -> list[str]:
        """Every ``>>xxx<<`` piece of the source vocabulary, in id order."""
        return sorted((p for p in self.encoder if language_token(p)), key=self.encoder.__getitem__)

    def pieces(self, text: str) -> list[str]:
        """Pieces of ``text``: special pieces and a leading ``>>...<<`` kept whole, the rest cut
        by SentencePiece."""
        out: list[str] = []
        for segment in SPECIAL_SPLIT.split(text):
            if segment in (PAD_PIECE, UNK_PIECE, EOS_PIECE):
                out.append(segment)
            elif segment:
                out += self.segment_pieces(segment)
        return out

    def segment_pieces(self, text: str) -> list[str]:
        code: list[str] = []
        if text.startswith(">>") and (end := text.find("<<")) != -1:
            code, text = [text[: end + 2]], text[end + 2 :]
        return code + self.source.encode(text, out_type=str)

    def encode(self, text: str) -> list[int]:
        """Model ids of ``text``, without EOS (the engine appends it)."""
        return [self.encoder.get(p, self.unk_id) for p in self.pieces(text)]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        """Target text of output ids (pad, eos and unk dropped, as ``skip_special_tokens``)."""
        pieces = [self.piece(int(i)) for i in ids if int(i) not in self.skipped]
        return self.joiner.decode_pieces(pieces).replace(SPIECE_UNDERLINE, " ").strip()

    def encode_target(self, text: str) -> list[int]:
        """Output ids of a target ``text`` (what the decoder would have written for it): the
        target model's pieces through the target vocabulary. The aligner reads them."""
        if self._target_ids is None:
            self._target_ids = {piece: i for i, piece in self.decoder.items()}
        unk = self._target_ids.get(UNK_PIECE, self.unk_id)
        return [self._target_ids.get(p, unk) for p in self.target.encode(text, out_type=str)]

    def piece(self, token_id: int) -> str:
        """The output piece of ``token_id``; ids the map lacks are read from the joining model."""
        piece = self.decoder.get(token_id)
        if piece is None:
            piece = self.joiner.IdToPiece(token_id) or UNK_PIECE
        return piece
