"""``tongyeok pull``: a MarianMTModel (OPUS-MT) from the Hugging Face Hub, imported in one step."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from export.loaders import Loader, register_loader

if TYPE_CHECKING:
    from export.source import ModelSource


@register_loader
class HubLoader(Loader):
    command = "pull"
    help = "download a MarianMTModel (OPUS-MT) from the Hugging Face Hub into the model repository"
    description = (
        "Download REPO_ID's files with huggingface_hub (its cache, resumable, HF_ENDPOINT and "
        "HF_TOKEN honoured), then import it as 'tongyeok import' does: every setting checked, the "
        "package written into the model repository (int8 by default, for CPUs) and checked "
        "against PyTorch. A running 'tongyeok serve' on that repository picks it up by itself."
    )
    epilog = (
        "examples:\n  tongyeok pull Helsinki-NLP/opus-mt-ko-en\n"
        "  tongyeok pull Helsinki-NLP/opus-mt-en-de --precision fp16   # for a GPU"
    )
    example_name = "ko-en"
    out_in_repository = True
    default_precision = "int8"

    def declare_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("repo_id", help="the model on the hub, e.g. Helsinki-NLP/opus-mt-ko-en")
        parser.add_argument("--revision", help="branch, tag or commit (default: main)")
        parser.add_argument("--source", help="source language (default: the model's own)")
        parser.add_argument(
            "--target",
            action="append",
            help="target language (default: the model's own, or every target of a "
            "multilingual model); repeat to keep several",
        )

    def loading(self, args: argparse.Namespace) -> str:
        return f"downloading {args.repo_id} (huggingface_hub's bars) and checking its settings"

    def load(self, args: argparse.Namespace) -> ModelSource:
        from export.hub import card_description, download
        from export.marian import load_marian

        snapshot = download(args.repo_id, args.revision)
        source = load_marian(snapshot, args.source, args.target)
        source.description = card_description(snapshot, f"{args.repo_id} from the Hugging Face Hub")
        source.origin["hub"] = {"repo_id": args.repo_id, "revision": Path(snapshot).name}
        return source

    def wrote(self, source: ModelSource, out: Path) -> str:
        pairs = [f"{s}->{t}" for s in source.source_langs for t in source.target_langs]
        return f"wrote {out}: {', '.join(pairs)}"
