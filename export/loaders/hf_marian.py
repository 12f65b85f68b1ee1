"""``tongyeok import``: Hugging Face MarianMTModel directories (OPUS-MT), via export/marian.py."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from export.loaders import Loader, register_loader

if TYPE_CHECKING:
    from export.source import ModelSource


@register_loader
class MarianDirectoryLoader(Loader):
    command = "import"
    help = "import a Hugging Face MarianMTModel directory (OPUS-MT) as a model package"
    description = (
        "Read a local MarianMTModel directory (config.json, model.safetensors or "
        "pytorch_model.bin, source.spm, target.spm, vocab.json, optional target_vocab.json and "
        "tokenizer_config.json; nothing is downloaded), check every setting, and write a model "
        "package through the same export pipeline and PyTorch-vs-ONNX parity check as "
        "'tongyeok export'. Settings Tongyeok cannot represent are refused with their name."
    )
    epilog = "example: tongyeok import ~/models/opus-mt-ko-en --out models/ko-en"
    example_name = "ko-en"

    def declare_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("directory", help="the MarianMTModel directory")
        parser.add_argument("--source", help="source language (default: tokenizer_config.json's)")
        parser.add_argument(
            "--target",
            action="append",
            help="target language (default: tokenizer_config.json's, or every >>xxx<< token of "
            "a multilingual model); repeat to keep several",
        )

    def loading(self, args: argparse.Namespace) -> str:
        return f"reading {args.directory} and checking its settings"

    def load(self, args: argparse.Namespace) -> ModelSource:
        from export.hub import card_description
        from export.marian import load_marian

        source = load_marian(args.directory, args.source, args.target)
        directory = Path(args.directory)
        source.description = card_description(directory, f"imported from {directory.name}")
        return source

    def wrote(self, source: ModelSource, out: Path) -> str:
        pairs = [f"{s}->{t}" for s in source.source_langs for t in source.target_langs]
        return f"wrote {out}: {', '.join(pairs)}"
