"""The model's configuration, torch-free: each architecture option declared once.

``Architecture`` holds the options a training run chooses (its fields are TOML keys and
``tongyeok train`` flags, through ``TrainConfig``); ``ModelConfig`` adds what the tokenizer and
imported weights fix, and is what a checkpoint stores. Both extend the one declaration, so a
default cannot drift between training and the model (``tests/model/test_config.py``). No torch
here: the CLI lists the training flags in the serving image, which has none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from contract.variants import ACTIVATIONS

# The shipped model (English→German, Multi30k), found without importing torch.
DEFAULT_CHECKPOINT = Path(__file__).parent / "pretrained" / "en-de.pt"
# What the shipped model is for: users meet it first, and it knows only picture captions.
SHIPPED_DESCRIPTION = (
    "Demo model trained by Tongyeok on Multi30k (29,000 English image captions with German "
    "translations): short descriptions of pictures, not everyday text. For that: "
    "tongyeok pull Helsinki-NLP/opus-mt-en-de"
)


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """The sizes and regularisation a training run sets (Vaswani et al. §3, §5.4)."""

    d_model: int = 256
    n_heads: int = 4
    d_ff: int = 1024
    encoder_layers: int = 3
    decoder_layers: int = 3
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    max_positions: int = 512


@dataclass(frozen=True, kw_only=True)
class ModelConfig(Architecture):
    """Architecture sizes and special token ids; saved inside every checkpoint."""

    vocab_size: int
    pad_id: int = 0
    unk_id: int = 1
    eos_id: int = 2
    # The variants imported Marian models need (docs/decisions.md #1); the defaults are ours.
    target_vocab_size: int | None = None  # None: one joint vocabulary for both sides
    share_embeddings: bool = True  # encoder and decoder read one embedding matrix
    tie_output: bool = True  # the output projection is the decoder's embedding matrix
    activation: str = "relu"
    scale_embedding: bool = True  # token embeddings times sqrt(d_model)
    suppress_pad: bool = False  # never generate pad (Marian: pad is the decoder start, not a word)

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if min(self.vocab_size, self.output_vocab_size) <= max(
            self.pad_id, self.unk_id, self.eos_id
        ):
            raise ValueError(f"vocab_size={self.vocab_size} does not cover the special token ids")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation {self.activation!r} is not supported: one of {sorted(ACTIVATIONS)}"
            )
        if self.share_embeddings and self.output_vocab_size != self.vocab_size:
            raise ValueError("a separate target vocabulary needs share_embeddings=False")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def output_vocab_size(self) -> int:
        """Size of the target vocabulary: the decoder's embeddings and the output projection."""
        return self.target_vocab_size or self.vocab_size

    @property
    def decoder_start_id(self) -> int:
        """Marian convention: the decoder starts from the pad token."""
        return self.pad_id

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)
