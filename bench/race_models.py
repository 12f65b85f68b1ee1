"""The models ``bench engine`` measures, each written as every engine's copy of the same weights.

A model's work directory holds:

- ``fp32/`` (always) and ``int8/``: Tongyeok packages. ``fp32/config.json`` is the reference for
  every engine: its tokenizer (``contract.tokenizers.load_tokenizer``) cuts the benchmark's texts
  into the ids every engine is fed, and its special ids say which id is EOS;
- ``hf/``: a Hugging Face MarianMTModel directory (Transformers ``generate`` loads it);
- ``ct2/``: that directory converted by CTranslate2's Transformers converter;
- ``model.pt`` for our checkpoints (the PyTorch reference loads it; an imported Marian model is
  loaded for it through ``export.marian.load_marian`` instead).

Three models: ``shipped`` (our trained checkpoint, the shipped d=512 3+3 one unless another is
given), ``base`` (Transformer-base with random weights and the shipped vocabulary of 8k) and
``opus`` (OPUS-MT's shape: d=512, 6+6, FFN 2048, 58,101 ids, random weights), built as a real local
Marian directory and imported through the same pipeline as ``tongyeok import`` (``load_marian`` ->
``write_package``). Speed does not depend on training; at OPUS-MT's vocabulary the output
projection (512 x 58,101, more than the rest of a decoder step) and the top-k over it dominate,
which is what users of OPUS-MT run.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.contenders import REFERENCE
from bench.marian_dirs import OPUS_MT, Variant, build_marian_dir
from export.hf import export_hf
from export.marian import load_marian
from export.onnx_export import export_package, write_package
from model.checkpoint import Checkpoint, load_checkpoint
from model.transformer import ModelConfig, Transformer
from service.runtime.providers import resolve

# OPUS-MT's default cells: batch 1 (one request, 8 sentences) and 32 (throughput), greedy and beam.
OPUS_BATCHES, OPUS_SENTENCES_BATCH1 = (1, 32), 8


@dataclass(frozen=True)
class BenchModel:
    """One model of the benchmark: how its weights are made and which cells it runs."""

    name: str
    shape: str  # for the table's legend
    weights: str  # "checkpoint" (model.pt) or "marian" (hf/, imported)
    batches: tuple[int, ...] | None = None  # batch sizes it runs (None: every one asked)
    sentences_batch1: int | None = None  # sentences at batch size 1 (None: as asked)


def bench_models(
    opus_batches: Sequence[int] | None = OPUS_BATCHES,
    opus_sentences_batch1: int | None = OPUS_SENTENCES_BATCH1,
) -> dict[str, BenchModel]:
    """The registry, ``--models`` names to models; OPUS-MT's cells are cut to keep the run's
    cost down (every decoder step of it costs about twice base's)."""
    return {
        "shipped": BenchModel(
            "shipped",
            "our trained checkpoint (by default the shipped one: d=512, 3+3, FFN 2048)",
            "checkpoint",
        ),
        "base": BenchModel(
            "base", "Transformer-base, d=512, 6+6, FFN 2048, 8k vocabulary, random", "checkpoint"
        ),
        "opus": BenchModel(
            "opus",
            "OPUS-MT shape, d=512, 6+6, FFN 2048, 58,101 ids, random, imported Marian directory",
            "marian",
            tuple(opus_batches) if opus_batches else None,
            opus_sentences_batch1,
        ),
    }


def base_sized(shipped: Checkpoint) -> Checkpoint:
    """Transformer-base (6+6 layers, d=512, 8 heads, FFN 2048) with random weights and the shipped
    vocabulary."""
    cfg = ModelConfig(
        vocab_size=shipped.config.vocab_size,
        d_model=512,
        n_heads=8,
        d_ff=2048,
        encoder_layers=6,
        decoder_layers=6,
    )
    torch.manual_seed(0)
    model = Transformer(cfg)
    return Checkpoint(
        cfg, shipped.tokenizer, model.state_dict(), shipped.source_lang, shipped.target_lang
    )


def convert_ct2(work: Path) -> None:
    """``hf/`` -> ``ct2/`` with CTranslate2's Transformers converter (float32 weights; int8 is
    chosen at load, as a CTranslate2 user does)."""
    converter = Path(sys.executable).parent / "ct2-transformers-converter"
    subprocess.run(
        [str(converter), "--model", str(work / "hf"), "--output_dir", str(work / "ct2")],
        check=True,
        capture_output=True,
    )


def cache_for(device: str) -> str | None:
    """The packages' cache layout on ``device``: its profile's (CUDA runs the gathered one)."""
    return resolve(device).cache_layout


def prepare(
    checkpoint: Checkpoint, work: Path, engines: Sequence[str], device: str = "cpu"
) -> None:
    """Every engine's copy of the same weights: checkpoint, packages, Marian dir, CTranslate2."""
    work.mkdir(parents=True, exist_ok=True)
    checkpoint.save(work / "model.pt")
    (work / "tokenizer.model").write_bytes(checkpoint.tokenizer.model_proto)
    for precision in ("fp32", "int8", "fp16"):
        if f"tongyeok {precision}" in engines:
            export_package(work / "model.pt", work / precision, precision, cache=cache_for(device))
    if any(e.startswith(("ct2", "transformers")) for e in engines):
        export_hf(work / "model.pt", work / "hf")
    if any(e.startswith("ct2") for e in engines):
        convert_ct2(work)


def prepare_marian(
    variant: Variant, texts: Sequence[str], work: Path, engines: Sequence[str], device: str = "cpu"
) -> None:
    """A random Marian directory of ``variant``'s shape (SentencePiece trained on ``texts``),
    imported as ``tongyeok import`` does, and converted for CTranslate2."""
    work.mkdir(parents=True, exist_ok=True)
    build_marian_dir(variant, work / "hf", texts=texts)
    source = load_marian(work / "hf")
    for precision in ("fp32", "int8", "fp16"):
        if f"tongyeok {precision}" in engines:
            write_package(source, work / precision, precision, cache=cache_for(device))
    if any(e.startswith("ct2") for e in engines):
        convert_ct2(work)


def prepare_model(
    model: BenchModel,
    shipped: str | Path | None,
    texts: Sequence[str],
    work: Path,
    engines: Sequence[str],
    opus: Variant = OPUS_MT,
    device: str = "cpu",
) -> None:
    """``model``'s work directory for ``engines``, with the reference package always;
    ``shipped`` is the checkpoint (None: the shipped one) that base takes its vocabulary from."""
    needed = [*engines, f"tongyeok {REFERENCE}"]
    if model.weights == "marian":
        prepare_marian(opus, texts, work, needed, device)
        return
    checkpoint = load_checkpoint(shipped)
    prepare(base_sized(checkpoint) if model.name == "base" else checkpoint, work, needed, device)
