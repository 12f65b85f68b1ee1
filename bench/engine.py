"""``tongyeok bench engine``: target tokens/s of Tongyeok vs CTranslate2 vs PyTorch, one run.

Every engine decodes the same sentences with the same weights, the same thread count and the same
forced number of generated tokens per sentence (EOS forbidden before it, stopped at it), so the
work is identical and only the engines differ. Two model sizes: the shipped model and a
Transformer-base-sized one with random weights (speed does not depend on training).
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from contract.options import SearchOptions
from export.hf import export_hf
from export.onnx_export import export_package
from model.checkpoint import Checkpoint, load_checkpoint
from model.transformer import ModelConfig, Transformer
from model.translate import translate_ids
from service.engine import Engine
from service.runtime import PackageRuntime, RuntimeOptions

ENGINES = ("tongyeok fp32", "tongyeok int8", "ct2 float32", "ct2 int8", "pytorch")


@dataclass(frozen=True)
class Result:
    model: str
    batch: int
    beam: int
    engine: str
    seconds: float
    tokens: int

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


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


def ct2_model(checkpoint: Path, workdir: Path) -> Path:
    hf = export_hf(checkpoint, workdir / "hf")
    out = workdir / "ct2"
    converter = Path(sys.executable).parent / "ct2-transformers-converter"
    subprocess.run(
        [str(converter), "--model", str(hf), "--output_dir", str(out), "--force"],
        check=True,
        capture_output=True,
    )
    return out


def runners(checkpoint: Path, workdir: Path, threads: int) -> dict[str, Callable]:
    """engine name -> run(sources, batch, options) -> generated token count."""
    import ctranslate2

    ckpt = load_checkpoint(checkpoint)
    processor = ckpt.tokenizer.processor
    engines: dict[str, Callable] = {}
    for precision in ("fp32", "int8"):
        package = export_package(checkpoint, workdir / precision, precision)
        engine = Engine(PackageRuntime(package, RuntimeOptions(intra_op_threads=threads)))

        def run_ours(sources, batch, options, engine=engine) -> int:
            return sum(len(h[0].tokens) for h in engine.run(sources, options, max_batch=batch))

        engines[f"tongyeok {precision}"] = run_ours
    ct2_dir = ct2_model(checkpoint, workdir)
    for compute in ("float32", "int8"):
        translator = ctranslate2.Translator(
            str(ct2_dir), device="cpu", compute_type=compute, inter_threads=1, intra_threads=threads
        )

        def run_ct2(sources, batch, options, translator=translator) -> int:
            pieces = [[processor.IdToPiece(i) for i in s] + ["</s>"] for s in sources]
            n, total = options.max_length_b, 0
            for start in range(0, len(pieces), batch):
                results = translator.translate_batch(
                    pieces[start : start + batch],
                    beam_size=options.beam_size,
                    min_decoding_length=n,
                    max_decoding_length=n,
                    max_batch_size=batch,
                )
                total += sum(len(r.hypotheses[0]) for r in results)
            return total

        engines[f"ct2 {compute}"] = run_ct2
    model = ckpt.build_model()

    def run_torch(sources, batch, options) -> int:
        torch.set_num_threads(threads)
        return sum(len(h[0].tokens) for h in translate_ids(model, sources, options, batch))

    engines["pytorch"] = run_torch
    return engines


def run_bench(
    sources: Sequence[Sequence[int]],
    shipped: str | Path | None,
    batches: Sequence[int] = (1, 8, 32, 64),
    beams: Sequence[int] = (1, 4),
    tokens: int = 32,
    threads: int = 2,
    sentences_batch1: int = 16,
    sizes: Sequence[str] = ("shipped", "base"),
    engines: Sequence[str] = ENGINES,
    log: Callable[[str], None] = print,
) -> list[Result]:
    results: list[Result] = []
    shipped_ckpt = load_checkpoint(shipped)
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            work = Path(tmp) / size
            work.mkdir()
            path = Path(shipped) if shipped else None
            if size == "base" or path is None:
                path = work / "model.pt"
                (base_sized(shipped_ckpt) if size == "base" else shipped_ckpt).save(path)
            run = runners(path, work, threads)
            for beam in beams:
                options = SearchOptions(
                    beam_size=beam, min_length=tokens, max_length_a=0, max_length_b=tokens
                )
                for batch in batches:
                    subset = list(sources[: sentences_batch1 if batch == 1 else len(sources)])
                    for name in engines:
                        run[name](subset[: min(batch, 4)], batch, options)  # warm-up
                        start = time.perf_counter()
                        generated = run[name](subset, batch, options)
                        seconds = time.perf_counter() - start
                        results.append(Result(size, batch, beam, name, seconds, generated))
                        log(
                            f"{size:<8} batch {batch:>3} beam {beam} {name:<14} "
                            f"{generated / seconds:9.0f} tok/s  ({generated} tokens)"
                        )
    return results


def markdown(results: list[Result], threads: int, tokens: int) -> str:
    import ctranslate2
    import onnxruntime

    lines = [
        f"{threads} threads for every engine, {tokens} generated tokens forced per sentence; "
        f"onnxruntime {onnxruntime.__version__}, ctranslate2 {ctranslate2.__version__}, "
        f"torch {torch.__version__}; {platform.machine()} CPU",
        "",
        "Target tokens/s; ratios are Tongyeok over CTranslate2 at the same precision, and "
        "Tongyeok fp32 over the PyTorch reference.",
        "",
        "| model | batch | search | "
        + " | ".join(ENGINES)
        + " | fp32/ct2 | int8/ct2 | fp32/pytorch |",
        "| --- | ---: | --- |" + " ---: |" * (len(ENGINES) + 3),
    ]
    keys = sorted(
        {(r.model, r.beam, r.batch) for r in results}, key=lambda k: (k[0] != "shipped", k[1], k[2])
    )
    for model, beam, batch in keys:
        cell = {
            r.engine: r.tokens_per_second
            for r in results
            if (r.model, r.beam, r.batch) == (model, beam, batch)
        }

        def ratio(a: str, b: str, cell=cell) -> str:
            return f"{cell[a] / cell[b]:.2f}×" if a in cell and b in cell else "–"

        values = " | ".join(f"{cell[e]:.0f}" if e in cell else "–" for e in ENGINES)
        search = "greedy" if beam == 1 else f"beam {beam}"
        lines.append(
            f"| {model} | {batch} | {search} | {values} | {ratio('tongyeok fp32', 'ct2 float32')} "
            f"| {ratio('tongyeok int8', 'ct2 int8')} | {ratio('tongyeok fp32', 'pytorch')} |"
        )
    return "\n".join(lines)
