"""Checkpoint -> Hugging Face MarianMTModel directory (weights, config, MarianTokenizer files).

The architecture was kept Marian's (docs/decisions.md #1), so this is a renaming plus one
permutation: Marian puts <pad> last in the vocabulary (CTranslate2's converter relies on it and
drops that last row), ours puts it first. Hugging Face id ``i`` is our id ``HF_TO_OURS[i]``: ours
1..V-1 move down by one, our pad (0) becomes V-1. Logits agree after the same permutation (tested
to 1e-5), and the directory converts with ``ct2-transformers-converter``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from model.checkpoint import Checkpoint, load_checkpoint
from model.transformer import sinusoidal_table

if TYPE_CHECKING:  # Transformers is optional (the ``hf`` extra): imported where used
    from transformers import MarianConfig, MarianMTModel


def hf_to_ours(vocab_size: int, pad_id: int) -> np.ndarray:
    """Permutation with ours[HF_TO_OURS[i]] == hf[i]: pad moved from ``pad_id`` to the end."""
    if pad_id != 0:
        raise ValueError(f"expected pad id 0, got {pad_id}")
    return np.concatenate([np.arange(1, vocab_size), [0]])


def rename(name: str) -> str:
    """Our parameter name -> MarianMTModel's."""
    if name == "shared.weight":
        return "model.shared.weight"
    name = name.replace("encoder_layers.", "model.encoder.layers.")
    name = name.replace("decoder_layers.", "model.decoder.layers.")
    return name.replace(".ffn.", ".")


def marian_config(ckpt: Checkpoint) -> MarianConfig:
    from transformers import MarianConfig

    cfg = ckpt.config
    pad = cfg.vocab_size - 1
    perm_inverse = {int(o): h for h, o in enumerate(hf_to_ours(cfg.vocab_size, cfg.pad_id))}
    eos = perm_inverse[cfg.eos_id]
    # Generation defaults: Transformers 4 keeps these config keyword arguments (and derives the
    # generation config from them); 5 accepts and drops them, and its dataclass signature does not
    # declare them, hence a dict.
    generation: dict[str, Any] = {"num_beams": 4, "max_length": cfg.max_positions}
    return MarianConfig(
        vocab_size=cfg.vocab_size,
        decoder_vocab_size=cfg.vocab_size,
        d_model=cfg.d_model,
        encoder_layers=cfg.encoder_layers,
        decoder_layers=cfg.decoder_layers,
        encoder_attention_heads=cfg.n_heads,
        decoder_attention_heads=cfg.n_heads,
        encoder_ffn_dim=cfg.d_ff,
        decoder_ffn_dim=cfg.d_ff,
        # ModelConfig holds Transformers' own names (contract/variants.py): written as they are.
        activation_function=cfg.activation,
        dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.activation_dropout,
        max_position_embeddings=cfg.max_positions,
        scale_embedding=cfg.scale_embedding,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        pad_token_id=pad,
        eos_token_id=eos,
        forced_eos_token_id=eos,
        decoder_start_token_id=pad,
        **generation,
    )


def to_marian(ckpt: Checkpoint) -> MarianMTModel:
    from transformers import MarianMTModel

    cfg = ckpt.config
    perm = torch.from_numpy(hf_to_ours(cfg.vocab_size, cfg.pad_id))
    weights: dict[str, torch.Tensor] = {}
    for name, tensor in ckpt.state_dict.items():
        tensor = tensor.float()
        if name == "shared.weight":
            tensor = tensor[perm]
        elif name == "final_logits_bias":
            tensor = tensor[perm].unsqueeze(0)
        weights[rename(name)] = tensor
    table = sinusoidal_table(cfg.max_positions, cfg.d_model)
    weights["model.encoder.embed_positions.weight"] = table
    weights["model.decoder.embed_positions.weight"] = table
    for tied in (
        "model.encoder.embed_tokens.weight",
        "model.decoder.embed_tokens.weight",
        "lm_head.weight",
    ):
        weights[tied] = weights["model.shared.weight"]
    model = MarianMTModel(marian_config(ckpt))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or missing:
        raise ValueError(f"Marian mapping mismatch: missing {missing}, unexpected {unexpected}")
    return model.eval()


def write_tokenizer(ckpt: Checkpoint, out: Path) -> None:
    """MarianTokenizer files: the SentencePiece model for both sides and the permuted vocab."""
    from transformers import MarianTokenizer

    cfg = ckpt.config
    processor = ckpt.tokenizer.processor
    vocab = {
        processor.IdToPiece(int(o)): h for h, o in enumerate(hf_to_ours(cfg.vocab_size, cfg.pad_id))
    }
    ckpt.tokenizer.save(out / "source.spm")
    ckpt.tokenizer.save(out / "target.spm")
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = MarianTokenizer(
        source_spm=str(out / "source.spm"),
        target_spm=str(out / "target.spm"),
        vocab=str(out / "vocab.json"),
        source_lang=ckpt.source_lang,
        target_lang=ckpt.target_lang,
        model_max_length=cfg.max_positions - 1,
    )
    tokenizer.save_pretrained(str(out))


def export_hf(checkpoint: str | Path | None, out_dir: str | Path) -> Path:
    """Write a MarianMTModel directory that Transformers loads and CTranslate2 converts."""
    ckpt = load_checkpoint(checkpoint)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    to_marian(ckpt).save_pretrained(str(out))
    write_tokenizer(ckpt, out)
    return out
