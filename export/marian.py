"""Loader for Hugging Face MarianMTModel directories (OPUS-MT): validate, map, hand to the pipeline.

Reads only local files (nothing is downloaded): ``config.json``, ``model.safetensors`` or
``pytorch_model.bin``, ``source.spm``, ``target.spm``, ``vocab.json``, optional
``target_vocab.json`` and ``tokenizer_config.json``. Every setting real OPUS-MT models vary in is
mapped onto ``ModelConfig`` or refused with a message naming it; every weight must find its place
in our layout, so a variant Transformers' MarianMTModel cannot represent (pre-norm layers, a final
or embedding layer norm, learned positions) is refused with the tensors that have no place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from contract.marian import PAD_PIECE, MarianTokenizer
from contract.package import sha256_file
from contract.variants import ACTIVATIONS
from export.hf import rename
from export.source import ModelSource
from model.transformer import ModelConfig, Transformer, sinusoidal_table

REQUIRED = ("config.json", "source.spm", "target.spm", "vocab.json")
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
# MarianConfig's defaults, used where config.json leaves a setting out (as Transformers does).
DEFAULTS: dict[str, Any] = {
    "activation_function": "gelu",
    "scale_embedding": False,
    "share_encoder_decoder_embeddings": True,
    "tie_word_embeddings": True,
    "max_position_embeddings": 1024,
    "pad_token_id": 58100,
    "eos_token_id": 0,
    "decoder_start_token_id": 58100,
}
# Settings of other BART-family configs that MarianMTModel ignores: a directory that sets them
# was made for a different architecture (pre-norm, normalized embeddings) and is refused.
UNREPRESENTABLE = ("normalize_before", "normalize_embedding", "add_final_layer_norm")
# OPUS-MT names languages by ISO 639-3 (kor, eng) or 639-1 (ko, en); the API speaks 639-1.
ISO_639_1 = {
    "ara": "ar", "bul": "bg", "ces": "cs", "cmn": "zh", "dan": "da", "deu": "de", "ell": "el",
    "eng": "en", "est": "et", "fin": "fi", "fra": "fr", "heb": "he", "hin": "hi", "hun": "hu",
    "ind": "id", "ita": "it", "jpn": "ja", "kor": "ko", "lit": "lt", "lav": "lv", "nld": "nl",
    "nob": "nb", "pol": "pl", "por": "pt", "ron": "ro", "rus": "ru", "slk": "sk", "spa": "es",
    "swe": "sv", "tha": "th", "tur": "tr", "ukr": "uk", "vie": "vi", "zho": "zh",
}  # fmt: skip
SAMPLE_TEXTS = {
    "ko": [
        "안녕하세요, 만나서 반갑습니다.",
        "오늘 날씨가 정말 좋네요.",
        "개 두 마리가 공원에서 뛰고 있다.",
    ],
    "de": ["Ein Hund läuft über die Wiese.", "Zwei Kinder spielen im Park."],
}


class MarianImportError(ValueError):
    """A Marian directory that is incomplete, or uses a setting Tongyeok cannot represent."""


def iso_code(code: str) -> str:
    return ISO_639_1.get(code.lower(), code)


def read_config(directory: Path) -> dict[str, Any]:
    for name in REQUIRED:
        if not (directory / name).is_file():
            raise MarianImportError(f"{directory / name}: missing (a MarianMTModel directory has "
                                    f"{', '.join(REQUIRED)} and the weights)")  # fmt: skip
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "marian":
        raise MarianImportError(
            f"{directory / 'config.json'}: model_type {config.get('model_type')!r}, expected "
            "'marian' (MarianMTModel)"
        )
    for key in UNREPRESENTABLE:
        if config.get(key):
            raise MarianImportError(
                f"{key}=true: a pre-norm or embedding-normalized Marian variant, which "
                "Transformers' MarianMTModel (post-norm only) cannot represent: refused"
            )
    return {**DEFAULTS, **config}


def model_config(config: dict[str, Any], unk_id: int, share: bool) -> ModelConfig:
    """Map MarianConfig onto ours, refusing what one shared shape cannot express."""
    for enc, dec in (
        ("encoder_attention_heads", "decoder_attention_heads"),
        ("encoder_ffn_dim", "decoder_ffn_dim"),
    ):
        if config[enc] != config[dec]:
            raise MarianImportError(f"{enc}={config[enc]} differs from {dec}={config[dec]}")
    if config["activation_function"] not in ACTIVATIONS:
        raise MarianImportError(
            f"activation_function={config['activation_function']!r} is not supported "
            f"(one of {sorted(ACTIVATIONS)})"
        )
    if config["decoder_start_token_id"] != config["pad_token_id"]:
        raise MarianImportError(
            f"decoder_start_token_id={config['decoder_start_token_id']} differs from "
            f"pad_token_id={config['pad_token_id']}: Marian decoders start from pad"
        )
    if not isinstance(config["eos_token_id"], int):
        raise MarianImportError(f"eos_token_id={config['eos_token_id']!r}: expected one id")
    shared = bool(config["share_encoder_decoder_embeddings"])
    target_size = config["vocab_size"] if shared else config.get("decoder_vocab_size")
    try:
        return ModelConfig(
            vocab_size=config["vocab_size"],
            target_vocab_size=None if shared else (target_size or config["vocab_size"]),
            d_model=config["d_model"],
            n_heads=config["encoder_attention_heads"],
            d_ff=config["encoder_ffn_dim"],
            encoder_layers=config["encoder_layers"],
            decoder_layers=config["decoder_layers"],
            dropout=0.0,
            max_positions=config["max_position_embeddings"],
            pad_id=config["pad_token_id"],
            unk_id=unk_id,
            eos_id=config["eos_token_id"],
            share_embeddings=share,
            tie_output=bool(config["tie_word_embeddings"]),
            activation=config["activation_function"],
            scale_embedding=bool(config["scale_embedding"]),
            suppress_pad=True,
        )
    except (KeyError, ValueError) as exc:
        raise MarianImportError(f"config.json: {exc}") from exc


class WeightMap:
    """Transformers' tensors, each taken once into our layout; what is left over is refused."""

    def __init__(self, weights: dict[str, torch.Tensor]) -> None:
        self.hf = {k: v.float() for k, v in weights.items()}
        self.taken: set[str] = set()

    def take(self, *names: str) -> torch.Tensor | None:
        """The first of ``names`` present; all of them count as read (tied copies)."""
        self.taken.update(n for n in names if n in self.hf)
        return next((self.hf[n] for n in names if n in self.hf), None)

    def embeddings(self, config: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder and decoder token embeddings as MarianMTModel ties them: all three are
        ``model.shared`` only with share_encoder_decoder_embeddings and tie_word_embeddings both
        true; otherwise encoder and decoder read their own ``embed_tokens``."""
        if config["share_encoder_decoder_embeddings"] and config["tie_word_embeddings"]:
            names = ("model.shared.weight", "model.encoder.embed_tokens.weight")
            encoder = decoder = self.take(*names, "model.decoder.embed_tokens.weight")
        else:
            encoder = self.take("model.encoder.embed_tokens.weight", "model.shared.weight")
            decoder = self.take("model.decoder.embed_tokens.weight", "model.shared.weight")
        if encoder is None or decoder is None:
            raise MarianImportError("weights: token embeddings are missing")
        return encoder, decoder

    def rest(self) -> list[str]:
        return sorted(set(self.hf) - self.taken)


def map_weights(
    weights: WeightMap, model: Transformer, embeddings: tuple[torch.Tensor, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Our state dict from Transformers' tensors; a tensor with no place in ours is refused."""
    cfg = model.cfg
    ours: dict[str, torch.Tensor] = {}
    for name in model.state_dict():
        if name.startswith(("shared.", "decoder_embed.", "lm_head", "final_logits_bias")):
            continue
        tensor = weights.take(rename(name))
        if tensor is None:
            raise MarianImportError(f"weights: {rename(name)} is missing")
        ours[name] = tensor
    ours["shared.weight"] = embeddings[0]
    if not cfg.share_embeddings:
        ours["decoder_embed.weight"] = embeddings[1]
    head = weights.take("lm_head.weight")
    if not cfg.tie_output:
        if head is None:
            raise MarianImportError("tie_word_embeddings=false but lm_head.weight is missing")
        ours["lm_head"] = head
    bias = weights.take("final_logits_bias")
    ours["final_logits_bias"] = (
        bias.reshape(-1) if bias is not None else torch.zeros(cfg.output_vocab_size)
    )
    table = sinusoidal_table(cfg.max_positions, cfg.d_model)
    for side in ("encoder", "decoder"):
        positions = weights.take(f"model.{side}.embed_positions.weight")
        if positions is not None and not torch.allclose(positions, table, atol=1e-4):
            raise MarianImportError(
                f"model.{side}.embed_positions.weight is not Marian's sinusoid table (learned "
                "positions): Transformers' MarianMTModel cannot represent it: refused"
            )
    rest = weights.rest()
    if rest:
        raise MarianImportError(
            f"weights with no place in a post-norm Marian model: {', '.join(rest[:5])}"
            + (f" (+{len(rest) - 5} more)" if len(rest) > 5 else "")
            + " (pre-norm, layernorm_embedding or final layer-norm variants are refused)"
        )
    return ours


def read_weights(directory: Path) -> tuple[dict[str, torch.Tensor], Path]:
    for name in WEIGHTS:
        path = directory / name
        if path.is_file():
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(str(path)), path
            return torch.load(path, map_location="cpu", weights_only=True), path
    raise MarianImportError(f"{directory}: no weights ({' or '.join(WEIGHTS)})")


def check_vocabularies(tokenizer: MarianTokenizer, cfg: ModelConfig) -> None:
    """Ids of vocab.json / target_vocab.json must be the ids the config's special tokens use."""
    target = {piece: i for i, piece in tokenizer.decoder.items()}
    checks = (
        ("vocab.json", tokenizer.encoder, cfg.vocab_size),
        ("target vocabulary", target, cfg.output_vocab_size),
    )
    for name, mapping, size in checks:
        if mapping[PAD_PIECE] != cfg.pad_id:
            raise MarianImportError(
                f"{name}: <pad> is id {mapping[PAD_PIECE]} but pad_token_id={cfg.pad_id}"
            )
        if mapping["</s>"] != cfg.eos_id:
            raise MarianImportError(
                f"{name}: </s> is id {mapping['</s>']} but eos_token_id={cfg.eos_id}"
            )
        if max(mapping.values()) >= size:
            raise MarianImportError(
                f"{name}: ids up to {max(mapping.values())} exceed the model's vocabulary of {size}"
            )


def languages(
    tok_config: dict[str, Any],
    tokenizer: MarianTokenizer,
    source: str | None,
    targets: list[str] | None,
) -> tuple[list[str], list[str], dict[str, str]]:
    """Source, targets and the >>xxx<< token per target: from tokenizer_config.json and the
    vocabulary's language tokens, unless given."""
    source = source or tok_config.get("source_lang")
    if not source:
        raise MarianImportError("no source language: tokenizer_config.json has no source_lang "
                                "(give --source)")  # fmt: skip
    tokens: dict[str, str] = {}
    for piece in tokenizer.language_tokens():  # first token per code wins (id order)
        tokens.setdefault(iso_code(piece[2:-2]), piece)
    if tokens:
        chosen = [iso_code(t) for t in targets] if targets else sorted(tokens)
        unknown = [t for t in chosen if t not in tokens]
        if unknown:
            raise MarianImportError(f"no >>xxx<< token in vocab.json for target(s) {unknown}")
        return [iso_code(source)], chosen, {t: tokens[t] for t in chosen}
    target = targets[0] if targets else tok_config.get("target_lang")
    if not target or (targets and len(targets) > 1):
        raise MarianImportError("give one target language (--target): the vocabulary has no "
                                ">>xxx<< tokens and tokenizer_config.json names none")  # fmt: skip
    return [iso_code(source)], [iso_code(target)], {}


def load_marian(
    directory: str | Path, source: str | None = None, targets: list[str] | None = None
) -> ModelSource:
    """A ``ModelSource`` for the MarianMTModel in ``directory`` (local files only)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise MarianImportError(f"{directory}: not a directory")
    config = read_config(directory)
    tok_config: dict[str, Any] = {}
    if (directory / "tokenizer_config.json").is_file():
        tok_config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    # As MarianTokenizer: target_vocab.json is read only when separate_vocabs says so.
    has_target_vocab = bool(tok_config.get("separate_vocabs"))
    if has_target_vocab and not (directory / "target_vocab.json").is_file():
        raise MarianImportError(f"separate_vocabs=true but {directory / 'target_vocab.json'} is "
                                "missing")  # fmt: skip
    try:
        tokenizer = MarianTokenizer(
            directory / "source.spm",
            directory / "target.spm",
            directory / "vocab.json",
            directory / "target_vocab.json" if has_target_vocab else None,
        )
    except ValueError as exc:
        raise MarianImportError(str(exc)) from exc
    tensors, weights_path = read_weights(directory)
    weights = WeightMap(tensors)
    embeddings = weights.embeddings(config)
    # One matrix in our model when both sides read the same one (untied copies included).
    share = embeddings[0].shape == embeddings[1].shape and torch.equal(*embeddings)
    cfg = model_config(config, tokenizer.unk_id, share)
    model = Transformer(cfg)
    model.load_state_dict(map_weights(weights, model, embeddings))
    model.eval()
    check_vocabularies(tokenizer, cfg)
    sources, target_langs, target_tokens = languages(tok_config, tokenizer, source, targets)
    entry = {"kind": "marian", "source_spm": "source.spm", "target_spm": "target.spm",
             "vocab": "vocab.json"}  # fmt: skip
    files = [*REQUIRED[1:]]
    if has_target_vocab:
        entry["target_vocab"] = "target_vocab.json"
        files.append("target_vocab.json")
    return ModelSource(
        model=model,
        source_langs=sources,
        target_langs=target_langs,
        target_tokens=target_tokens,
        tokenizer=entry,
        files={name: (directory / name).read_bytes() for name in files},
        origin={
            "kind": "marian",
            "directory": directory.name,
            "sha256": {p.name: sha256_file(p) for p in (directory / "config.json", weights_path)},
        },
        sample_texts=SAMPLE_TEXTS.get(sources[0], SAMPLE_TEXTS["ko"] + SAMPLE_TEXTS["de"])
        + ["A man in an orange hat.", "Two dogs run."],
    )
