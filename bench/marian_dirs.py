"""Random-weight Hugging Face MarianMTModel directories shaped like real OPUS-MT ones, built here.

Nothing is downloaded: SentencePiece models are trained on a few sentences (Korean included),
``vocab.json`` is laid out as Marian's converter writes it (``</s>`` and ``<unk>`` first, language
tokens, the pieces, ``<pad>`` last), and Transformers builds and saves the model from a config with
the real flags. The output is what ``tongyeok import`` reads from a user's disk. The tests build
tiny ones; ``bench engine`` builds one at OPUS-MT's full size (``OPUS_MT``: d=512, 6+6 layers,
58,101 ids, the ids past the trained pieces filled with placeholder pieces) so that the output
projection and top-k cost what they cost a user.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sentencepiece as spm
import torch

EN = [
    "A man in an orange hat is looking at something.",
    "Two dogs are running through the green grass.",
    "The children play football in the park after school.",
    "Good morning, how are you today?",
    "Please translate this sentence into Korean.",
    "The weather is really nice today.",
    "She reads a book while the train waits at the station.",
]
KO = [
    "안녕하세요, 만나서 반갑습니다.",
    "오늘 날씨가 정말 좋네요.",
    "개 두 마리가 푸른 잔디 위를 달리고 있다.",
    "아이들은 방과 후에 공원에서 축구를 한다.",
    "이 문장을 영어로 번역해 주세요.",
    "그녀는 기차가 역에서 기다리는 동안 책을 읽는다.",
    "주황색 모자를 쓴 남자가 무언가를 보고 있다.",
]
DE = ["Ein Hund läuft über die Wiese.", "Zwei Kinder spielen im Park.", "Guten Morgen!"]
# Mixed text for tokenizer identity: scripts, digits, punctuation, odd spacing, unknown characters.
MIXED = [
    *EN[:2],
    *KO[:3],
    "서울 Seoul 2024년 3월 15일, 10:30 AM — 회의 (meeting)!",
    "  leading and trailing spaces  ",
    "tabs\tand  double  spaces",
    "Emoji 😀 and 漢字 and Ünïcödé",
    ">>kor<< 안녕하세요",
    ">>deu<<Hallo Welt",
    ">>notclosed text",
    "text with >>inner<< code",
    "",
    "a",
]


def train_spm(sentences: list[str], vocab_size: int, model_type: str = "unigram") -> bytes:
    """A SentencePiece model with the trainer's defaults (nmt_nfkc), as Marian's spm are."""
    proto = io.BytesIO()
    spm.SentencePieceTrainer.Train(
        sentence_iterator=iter(sentences * 3),
        model_writer=proto,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    return proto.getvalue()


def pieces_of(proto: bytes) -> list[str]:
    processor = spm.SentencePieceProcessor()
    processor.LoadFromSerializedProto(proto)
    return [
        processor.IdToPiece(i)
        for i in range(processor.GetPieceSize())
        if not (processor.IsControl(i) or processor.IsUnknown(i))
    ]


def marian_vocab(
    pieces: list[str],
    language_tokens: list[str],
    eos_first: bool,
    drop: int,
    size: int | None = None,
) -> dict[str, int]:
    """Marian's layout; ``drop`` pieces left out so that some text maps to <unk>; with ``size``,
    placeholder pieces (never produced by the SentencePiece models) fill the ids up to it, as a
    real vocabulary's many pieces would, ``<pad>`` still last."""
    head = ["</s>", "<unk>"] if eos_first else ["<unk>", "</s>"]
    ordered = list(dict.fromkeys([*head, *language_tokens, *pieces[: len(pieces) - drop]]))
    if size is not None:
        if size <= len(ordered):
            raise ValueError(
                f"vocabulary of {size} ids is smaller than the {len(ordered) + 1} needed"
            )
        ordered += [f"<placeholder_{i}>" for i in range(size - 1 - len(ordered))]
    return {piece: i for i, piece in enumerate([*ordered, "<pad>"])}


@dataclass(frozen=True)
class Variant:
    """The flags of one real OPUS-MT shape, at tiny sizes."""

    name: str
    source_lang: str
    target_lang: str
    activation: str = "swish"
    scale_embedding: bool = True
    separate_vocabs: bool = False
    tie_word_embeddings: bool = True
    eos_first: bool = True  # </s> id 0 (most OPUS-MT) or id 1
    language_tokens: tuple[str, ...] = ()
    safetensors: bool = True
    d_model: int = 16
    heads: int = 2
    ffn: int = 32
    layers: int = 2
    max_positions: int = 128
    spm_pieces: tuple[int, int] = (180, 150)  # source, target SentencePiece sizes (soft limits)
    # BPE on a few sentences grows to whole words (~1.1 pieces a word, as a real 32k model cuts
    # common text); unigram stays near characters (~1.9).
    spm_type: str = "unigram"
    vocab_size: int | None = None  # ids in vocab.json (placeholders fill it): OPUS-MT has 58,101
    # Added to EOS's final_logits_bias: tuned so that the random model ends some outputs early
    # and runs others to the length limit (both paths of the searches are compared).
    eos_boost: float = 4.0
    extra_config: dict[str, Any] = field(default_factory=dict)


# opus-mt-ko-en: joint vocabulary, swish, scaled embeddings.
KO_EN = Variant("ko-en", "ko", "en")
# opus-mt-tc-big-en-ko-like: separate vocabularies, >>xxx<< target tokens, relu, EOS id 1,
# pytorch_model.bin.
EN_MUL = Variant(
    "en-mul",
    "eng",
    "mul",
    activation="relu",
    separate_vocabs=True,
    eos_first=False,
    language_tokens=(">>kor<<", ">>deu<<", ">>jpn<<"),
    safetensors=False,
    eos_boost=7.0,
)
# gelu, unscaled embeddings, an untied output projection.
EN_DE_GELU = Variant(
    "en-de-gelu", "en", "de", activation="gelu", scale_embedding=False, tie_word_embeddings=False
)


# OPUS-MT's common shape (opus-mt-en-de and most pairs): Transformer-base, joint vocabulary of
# 58,101 ids, swish, scaled and tied embeddings; Transformers' initialization (std 0.02).
OPUS_MT = Variant(
    "opus",
    "en",
    "de",
    d_model=512,
    heads=8,
    ffn=2048,
    layers=6,
    max_positions=512,
    spm_pieces=(8000, 8000),
    spm_type="bpe",
    vocab_size=58101,
    eos_boost=0.0,
    extra_config={"init_std": 0.02},
)


def build_marian_dir(variant: Variant, out: Path, seed: int = 0, texts: Sequence[str] = ()) -> Path:
    """Write a MarianMTModel directory for ``variant`` into ``out``; ``texts`` are extra
    sentences for both SentencePiece models (a benchmark's own, so that they cut it into
    word-sized pieces as a real model's large vocabulary would)."""
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    out.mkdir(parents=True, exist_ok=True)
    by_lang = {"ko": KO, "en": EN, "eng": EN, "de": DE, "mul": KO + DE}
    source_text = by_lang[variant.source_lang] + list(texts)
    target_text = by_lang[variant.target_lang]
    joint = source_text + target_text + MIXED
    source_size, target_size = variant.spm_pieces
    separate = variant.separate_vocabs
    source_spm = train_spm(
        source_text + MIXED if separate else joint, source_size, variant.spm_type
    )
    target_spm = train_spm(target_text if separate else joint, target_size, variant.spm_type)
    (out / "source.spm").write_bytes(source_spm)
    (out / "target.spm").write_bytes(target_spm)
    tokens = list(variant.language_tokens)
    if variant.separate_vocabs:
        # MarianConfig has one pad id for both sides, last in both: maps of the same length.
        source_pieces, target_pieces = pieces_of(source_spm), pieces_of(target_spm)
        size = min(len(source_pieces) + len(tokens) - 3, len(target_pieces))
        vocab = marian_vocab(source_pieces[: size - len(tokens) + 3], tokens, variant.eos_first, 3)
        target_vocab = marian_vocab(target_pieces[:size], [], variant.eos_first, drop=0)
        assert len(vocab) == len(target_vocab)
        (out / "target_vocab.json").write_text(json.dumps(target_vocab, ensure_ascii=False))
    else:
        pieces = list(dict.fromkeys(pieces_of(source_spm) + pieces_of(target_spm)))
        vocab = marian_vocab(pieces, tokens, variant.eos_first, 3, variant.vocab_size)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    pad, eos = vocab["<pad>"], vocab["</s>"]
    # Generation defaults: Transformers 4 keeps these config keyword arguments; 5 drops them (see
    # below), and its dataclass signature does not declare them, hence a dict.
    generation: dict[str, Any] = {
        "bad_words_ids": [[pad]],
        "num_beams": 4,
        "max_length": variant.max_positions,
    }
    config = MarianConfig(
        vocab_size=len(vocab),
        decoder_vocab_size=len(vocab),
        d_model=variant.d_model,
        encoder_layers=variant.layers,
        decoder_layers=variant.layers,
        encoder_attention_heads=variant.heads,
        decoder_attention_heads=variant.heads,
        encoder_ffn_dim=variant.ffn,
        decoder_ffn_dim=variant.ffn,
        activation_function=variant.activation,
        max_position_embeddings=variant.max_positions,
        scale_embedding=variant.scale_embedding,
        share_encoder_decoder_embeddings=not variant.separate_vocabs,
        tie_word_embeddings=variant.tie_word_embeddings,
        pad_token_id=pad,
        eos_token_id=eos,
        forced_eos_token_id=eos,
        decoder_start_token_id=pad,
        **generation,
        **{"init_std": 0.5, **variant.extra_config},
    )
    torch.manual_seed(seed)
    model = MarianMTModel(config).eval()
    with torch.no_grad():  # a real final_logits_bias, EOS favoured so that outputs end early
        bias = torch.randn(model.final_logits_bias.shape) * 0.5
        bias[0, eos] += variant.eos_boost
        model.final_logits_bias.copy_(bias)
    # OPUS-MT's generation_config.json bans pad (MarianConfig's bad_words_ids no longer reach it).
    model.generation_config.bad_words_ids = [[pad]]
    model.save_pretrained(str(out))
    if not variant.safetensors:  # the older format some hub models still have
        from safetensors.torch import load_file

        torch.save(load_file(str(out / "model.safetensors")), out / "pytorch_model.bin")
        (out / "model.safetensors").unlink()
    tokenizer = MarianTokenizer(
        source_spm=str(out / "source.spm"),
        target_spm=str(out / "target.spm"),
        vocab=str(out / "vocab.json"),
        target_vocab_file=str(out / "target_vocab.json") if variant.separate_vocabs else None,
        source_lang=variant.source_lang,
        target_lang=variant.target_lang,
        separate_vocabs=variant.separate_vocabs,
    )
    tokenizer.save_pretrained(str(out))
    return out
