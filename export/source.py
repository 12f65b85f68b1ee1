"""What a loader hands the export pipeline, and the loader for our own checkpoints.

The pipeline is one: load -> validate -> trace -> convert -> package -> verify. Only the first step
depends on where the weights come from, so each source of weights (our ``.pt`` checkpoints here,
Hugging Face Marian directories in ``export/marian.py``) is a loader returning a ``ModelSource``:
the model in our layout, its languages, the tokenizer files the package carries, and where it came
from. This is the seam CTranslate2's converters have too (a loader per framework, one writer);
``export/loaders/`` registers each loader with its command and CLI arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.package import TOKENIZER, sha256_file
from model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from model.config import SHIPPED_DESCRIPTION
from model.evaluate import SAMPLE_SOURCES
from model.transformer import Transformer


@dataclass
class ModelSource:
    model: Transformer  # eval mode, fp32
    source_langs: list[str]
    target_langs: list[str]
    tokenizer: dict[str, str]  # the package config's tokenizer entry (kind + file names)
    files: dict[str, bytes]  # package file name -> bytes (the tokenizer's files)
    origin: dict[str, Any]  # kind, SHA-256 of the source, metadata: written into config.json
    # target -> ">>xxx<<" token to put in front of the source (multilingual Marian models)
    target_tokens: dict[str, str] = field(default_factory=dict)
    # texts the parity check translates (in the source language)
    sample_texts: list[str] = field(default_factory=lambda: list(SAMPLE_SOURCES))
    # What the model is for (training data, domain): config.json's ``description``.
    description: str = ""

    @property
    def pair_name(self) -> str:
        """Default package name: ``en-de``, or ``en-ko+ja`` for several targets."""
        return f"{'+'.join(self.source_langs)}-{'+'.join(self.target_langs)}"


def from_checkpoint(checkpoint: str | Path | None) -> ModelSource:
    """Our checkpoint (the shipped model if None): one joint SentencePiece vocabulary."""
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    ckpt = load_checkpoint(path)
    return ModelSource(
        model=ckpt.build_model(),
        source_langs=[ckpt.source_lang],
        target_langs=[ckpt.target_lang],
        tokenizer={"kind": "sentencepiece", "model": TOKENIZER},
        files={TOKENIZER: ckpt.tokenizer.model_proto},
        origin={"kind": "checkpoint", "sha256": sha256_file(path), "metadata": ckpt.metadata},
        description=(
            SHIPPED_DESCRIPTION
            if path.resolve() == DEFAULT_CHECKPOINT.resolve()
            else trained_on(ckpt.metadata)
        ),
    )


def trained_on(metadata: dict[str, Any]) -> str:
    """A checkpoint's description from its training files' names (all a checkpoint records)."""
    config = metadata.get("train_config", {})
    files = [Path(str(config[k])).name for k in ("train_source", "train_target") if config.get(k)]
    return f"trained with tongyeok train on {' / '.join(files)}" if files else ""
