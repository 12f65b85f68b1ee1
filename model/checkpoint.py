"""Checkpoints that carry everything needed to use them: config, tokenizer, weights, languages.

One ``.pt`` file, loaded with ``weights_only=True`` (no arbitrary pickles). Training state
(optimizer, step, RNG states) is optional: present in the checkpoints ``train`` writes for resuming,
stripped from the released ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from contract.tokenizer import Tokenizer
from model.config import DEFAULT_CHECKPOINT
from model.transformer import ModelConfig, Transformer

FORMAT_VERSION = 1
# A matrix stored in int8 has its per-row scales under its name plus this suffix (no parameter
# name ends so); loading multiplies them back, so the rest of the code only ever sees floats.
INT8_SCALE = ".int8_row_scale"
INT8_MIN_COLUMNS = 64  # narrower matrices (and vectors) are stored in fp16: too small to matter


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or not a Tongyeok checkpoint."""


@dataclass
class Checkpoint:
    config: ModelConfig
    tokenizer: Tokenizer
    state_dict: dict[str, torch.Tensor]
    source_lang: str
    target_lang: str
    train_state: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def build_model(self, device: str | torch.device = "cpu") -> Transformer:
        """An eval-mode fp32 model with these weights."""
        model = Transformer(self.config)
        weights = {k: v.float() for k, v in self.state_dict.items()}
        model.load_state_dict(weights)
        return model.to(device).eval()

    def save(self, path: str | Path, half: bool = False, int8: bool = False) -> None:
        """Write atomically (temp file + rename) so a crash never leaves half a checkpoint.

        ``half``: floats in fp16 (half the size). ``int8``: matrices in int8 with one fp32 scale
        per row, everything else in fp16 (about a quarter of fp32's size): how a release stays
        small once the model is d=512. Both are storage only; loading gives fp32 back."""
        weights: dict[str, torch.Tensor] = {}
        for name, tensor in self.state_dict.items():
            tensor = tensor.detach().cpu()
            if (
                int8
                and tensor.is_floating_point()
                and tensor.dim() == 2
                and (tensor.shape[1] >= INT8_MIN_COLUMNS)
            ):
                weights[name], weights[name + INT8_SCALE] = quantize_rows(tensor)
            elif (half or int8) and tensor.is_floating_point():
                weights[name] = tensor.half()
            else:
                weights[name] = tensor
        payload = {
            "format_version": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "tokenizer": self.tokenizer.model_proto,
            "model": weights,
            "source_lang": self.source_lang,
            "target_lang": self.target_lang,
            "metadata": self.metadata,
        }
        if self.train_state is not None:
            payload["train_state"] = self.train_state
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)


def load_checkpoint(path: str | Path | None = None) -> Checkpoint:
    """Load ``path`` (the shipped English→German model when None) with clear errors."""
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file: {exc}") from exc
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"{path} is not a Tongyeok checkpoint (no format_version)")
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {payload['format_version']}, "
            f"this version reads {FORMAT_VERSION}"
        )
    try:
        config = ModelConfig.from_dict(payload["config"])
        tokenizer = Tokenizer(payload["tokenizer"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{path}: tokenizer has {tokenizer.vocab_size} pieces "
            f"but the model's vocabulary is {config.vocab_size}"
        )
    try:
        state_dict = dequantized(payload["model"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: int8 weights without matching scales: {exc}") from exc
    return Checkpoint(
        config=config,
        tokenizer=tokenizer,
        state_dict=state_dict,
        source_lang=payload["source_lang"],
        target_lang=payload["target_lang"],
        train_state=payload.get("train_state"),
        metadata=payload.get("metadata", {}),
    )


def quantize_rows(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row: ``matrix ≈ q * scale[:, None]``, |q| <= 127."""
    weights = matrix.float()
    scale = weights.abs().amax(dim=1).clamp(min=1e-12) / 127.0
    q = torch.round(weights / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantized(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weights`` with every int8 matrix and its row scales turned back into one fp32 matrix."""
    scales = {k[: -len(INT8_SCALE)]: v for k, v in weights.items() if k.endswith(INT8_SCALE)}
    out = {}
    for name, tensor in weights.items():
        if name.endswith(INT8_SCALE):
            continue
        if name in scales:
            if tensor.dtype != torch.int8 or scales[name].shape != tensor.shape[:1]:
                raise ValueError(f"{name}: {tensor.dtype} {tuple(tensor.shape)}")
            tensor = tensor.float() * scales[name].float()[:, None]
        elif tensor.dtype == torch.int8:
            raise KeyError(f"{name} has no {INT8_SCALE}")
        out[name] = tensor
    orphans = set(scales) - set(out)
    if orphans:
        raise KeyError(f"scales without weights: {sorted(orphans)}")
    return out


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the weights of ``paths`` (computed in fp32)."""
    if not paths:
        raise CheckpointError("no checkpoints to average")
    total: dict[str, torch.Tensor] = {}
    for path in paths:
        for name, tensor in load_checkpoint(path).state_dict.items():
            total[name] = total.get(name, 0) + tensor.float()
    return {name: tensor / len(paths) for name, tensor in total.items()}
