"""``tongyeok export``: our own checkpoints (``.pt``; the shipped model by default)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from export.loaders import Loader, register_loader

if TYPE_CHECKING:
    from export.source import ModelSource


@register_loader
class CheckpointLoader(Loader):
    command = "export"
    help = "export a checkpoint to an ONNX model package (encoder + KV-cached decoder)"
    description = (
        "Write a model package: encoder.onnx, decoder.onnx, weights.bin (their weights, "
        "page-aligned, each tensor once), tokenizer.model, config.json and manifest.json (SHA-256 "
        "of every file). The package is what the service loads, with ONNX Runtime alone. Then "
        "check it against PyTorch on a few sentences."
    )
    epilog = "example: tongyeok export --out models/en-de  (the shipped model, fp32)"
    example_name = "en-de"

    def declare_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "checkpoint", nargs="?", help="checkpoint (.pt); default: the shipped model"
        )

    def loading(self, args: argparse.Namespace) -> str:
        return f"loading {args.checkpoint or 'the shipped model'}"

    def load(self, args: argparse.Namespace) -> ModelSource:
        from export.source import from_checkpoint

        return from_checkpoint(args.checkpoint)
