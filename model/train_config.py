"""A training run's options, apart from the trainer so the CLI can list them without torch.

The serving image has no torch, sacrebleu or tqdm; ``tongyeok --help`` and ``tongyeok serve`` there
still build the ``train`` sub-command's flags from this dataclass. The architecture options are
inherited from ``model/config.py``'s ``Architecture``, which ``ModelConfig`` extends too: each is
declared once, with one default.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from contract.tokenizer import EOS_ID, PAD_ID, UNK_ID
from model.config import Architecture, ModelConfig


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Architecture):
    """Every knob of a run; read from a TOML file, then overridden by command-line flags."""

    train_source: str = ""
    train_target: str = ""
    valid_source: str = ""
    valid_target: str = ""
    source_lang: str = "en"
    target_lang: str = "de"
    out_dir: str = "runs/en-de"
    # tokenizer
    vocab_size: int = 8000
    tokenizer_type: str = "unigram"
    # model: the Architecture fields (d_model, n_heads, ...), inherited
    # data
    max_sentence_tokens: int = 200
    max_tokens: int = 4096  # per batch: rows x longest side
    # optimisation
    lr: float = 1e-3
    warmup_steps: int = 1000
    label_smoothing: float = 0.1
    accumulate: int = 1
    clip_norm: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 0.0
    epochs: int = 20
    max_steps: int = 0  # 0: no limit
    # Wall-clock budget of this invocation: training stops at the end of the first epoch that
    # ends past it, then averages as usual (a lent GPU for N minutes; 0: no limit).
    max_minutes: float = 0.0
    seed: int = 1
    # bookkeeping
    save_every: int = 500  # steps between last.pt rewrites
    valid_bleu: bool = True
    valid_beam: int = 1
    average_last: int = 5
    device: str = "auto"
    threads: int = 0  # 0: torch's default
    amp: bool = True  # mixed precision on CUDA
    progress: bool = True

    def __post_init__(self) -> None:
        minutes = self.max_minutes
        if not isinstance(minutes, int | float) or not math.isfinite(minutes) or minutes < 0:
            raise ValueError(
                f"max_minutes must be a finite number >= 0 (0: no limit), got {minutes!r}"
            )

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        with open(path, "rb") as f:
            data = tomllib.load(f)
        return cls().updated(data)

    def updated(self, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown training options: {sorted(unknown)}")
        merged = {**asdict(self), **{k: v for k, v in values.items() if v is not None}}
        merged["adam_betas"] = tuple(merged["adam_betas"])
        return TrainConfig(**merged)

    def model_config(self, vocab_size: int) -> ModelConfig:
        """The architecture options of this run, with the tokenizer's vocabulary and ids."""
        return ModelConfig(
            vocab_size=vocab_size,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            eos_id=EOS_ID,
            **{f.name: getattr(self, f.name) for f in fields(Architecture)},
        )
