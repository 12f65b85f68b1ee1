"""``tongyeok bench engine``: target tokens/s of Tongyeok vs CTranslate2, Transformers and PyTorch.

Fair by construction: every engine decodes the same sentences with the same weights, the same
thread count and the same forced number of generated tokens per sentence (EOS forbidden before it,
stopped at it), in the same batches in the same (file) order; and every measurement runs in a
fresh process of its own (``bench/engines.py``) that loads only that engine, so no other engine's
thread pool competes for the cores. Each child reports the CPU time other processes used during
its timed runs: a run where they used more than a tenth of a core is flagged as contended.
Two model sizes: the shipped model and a Transformer-base-sized one with random weights (speed
does not depend on training).
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from export.hf import export_hf
from export.onnx_export import export_package
from model.checkpoint import Checkpoint, load_checkpoint
from model.transformer import ModelConfig, Transformer

ENGINES = ("tongyeok fp32", "tongyeok int8", "ct2 float32", "ct2 int8", "transformers", "pytorch")
CONTENDED = 0.1  # other processes' CPU seconds per wall second above which a run is flagged


@dataclass(frozen=True)
class Result:
    model: str
    batch: int
    beam: int
    engine: str
    seconds: float  # median of the timed runs
    tokens: int
    other_cpu: float  # CPU seconds other processes used during the timed runs, summed
    peak_mb: float
    pid: int  # the process it ran in (one per measurement)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    @property
    def contended(self) -> bool:
        return self.other_cpu > CONTENDED * self.seconds


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


def prepare(checkpoint: Checkpoint, work: Path, engines: Sequence[str]) -> None:
    """Every engine's copy of the same weights: checkpoint, packages, Marian dir, CTranslate2."""
    work.mkdir(parents=True, exist_ok=True)
    checkpoint.save(work / "model.pt")
    (work / "tokenizer.model").write_bytes(checkpoint.tokenizer.model_proto)
    for precision in ("fp32", "int8"):
        if f"tongyeok {precision}" in engines:
            export_package(work / "model.pt", work / precision, precision)
    if any(e.startswith("ct2") or e == "transformers" for e in engines):
        export_hf(work / "model.pt", work / "hf")
    if any(e.startswith("ct2") for e in engines):
        converter = Path(sys.executable).parent / "ct2-transformers-converter"
        subprocess.run(
            [str(converter), "--model", str(work / "hf"), "--output_dir", str(work / "ct2")],
            check=True,
            capture_output=True,
        )


def measure(spec: dict, spec_path: Path) -> dict:
    """Run one engine on one configuration in a fresh process; its JSON report."""
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "bench.engines", str(spec_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{spec['engine']} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
    repeats: int = 3,
    log: Callable[[str], None] = print,
) -> list[Result]:
    """Every (size, beam, batch) with every engine, engines interleaved so that a slow drift of
    the machine touches all of them alike; each measurement in its own process."""
    results: list[Result] = []
    shipped_ckpt = load_checkpoint(shipped)
    cfg = shipped_ckpt.config
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "sources.json").write_text(json.dumps([list(s) for s in sources]))
        for size in sizes:
            work = root / size
            prepare(base_sized(shipped_ckpt) if size == "base" else shipped_ckpt, work, engines)
            for beam in beams:
                for batch in batches:
                    count = sentences_batch1 if batch == 1 else len(sources)
                    subset = root / f"sources-{count}.json"
                    subset.write_text(json.dumps([list(s) for s in sources[:count]]))
                    for name in engines:
                        spec = {
                            "engine": name,
                            "workdir": str(work),
                            "sources": str(subset),
                            "batch": batch,
                            "beam": beam,
                            "tokens": tokens,
                            "threads": threads,
                            "repeats": repeats,
                            "pad_id": cfg.pad_id,
                            "eos_id": cfg.eos_id,
                            "eos_piece": shipped_ckpt.tokenizer.processor.IdToPiece(cfg.eos_id),
                        }
                        report = measure(spec, root / "spec.json")
                        runs = report["runs"]
                        result = Result(
                            size,
                            batch,
                            beam,
                            name,
                            statistics.median(r["seconds"] for r in runs),
                            report["tokens"],
                            sum(r["other_cpu"] for r in runs),
                            report["peak_mb"],
                            report["pid"],
                        )
                        results.append(result)
                        flag = "  CONTENDED" if result.contended else ""
                        log(
                            f"{size:<8} batch {batch:>3} beam {beam} {name:<14} "
                            f"{result.tokens_per_second:9.0f} tok/s  peak {result.peak_mb:6.0f} MB"
                            f"  other CPU {result.other_cpu:5.2f} s{flag}"
                        )
    return results


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def markdown(results: list[Result], threads: int, tokens: int, machine: str = "") -> str:
    import ctranslate2
    import onnxruntime
    import transformers

    ours_vs_ct2 = [
        ("tongyeok fp32", "ct2 float32"),
        ("tongyeok int8", "ct2 int8"),
    ]
    lines = [
        f"{threads} threads for every engine, {tokens} generated tokens forced per sentence, "
        "the same batches in file order for every engine, each measurement in a fresh process "
        f"(median of the timed runs); onnxruntime {onnxruntime.__version__}, ctranslate2 "
        f"{ctranslate2.__version__}, transformers {transformers.__version__}, torch "
        f"{torch.__version__}; {machine or platform.machine()}",
        "",
        "Target tokens/s; ratios are Tongyeok over CTranslate2 at the same precision, and "
        "Tongyeok fp32 over Transformers `generate` (with its cache). A `*` marks a run during "
        f"which other processes used more than {CONTENDED:.0%} of a core.",
        "",
        "| model | batch | search | "
        + " | ".join(ENGINES)
        + " | fp32/ct2 | int8/ct2 | fp32/transformers |",
        "| --- | ---: | --- |" + " ---: |" * (len(ENGINES) + 3),
    ]
    keys = sorted(
        {(r.model, r.beam, r.batch) for r in results}, key=lambda k: (k[0] != "shipped", k[1], k[2])
    )
    ratios: list[float] = []
    for model, beam, batch in keys:
        cell = {r.engine: r for r in results if (r.model, r.beam, r.batch) == (model, beam, batch)}

        def ratio(a: str, b: str, cell=cell) -> str:
            if a not in cell or b not in cell:
                return "–"
            return f"{cell[a].tokens_per_second / cell[b].tokens_per_second:.2f}×"

        ratios += [
            cell[a].tokens_per_second / cell[b].tokens_per_second
            for a, b in ours_vs_ct2
            if a in cell and b in cell
        ]
        values = " | ".join(
            f"{cell[e].tokens_per_second:.0f}{'*' if cell[e].contended else ''}"
            if e in cell
            else "–"
            for e in ENGINES
        )
        search = "greedy" if beam == 1 else f"beam {beam}"
        lines.append(
            f"| {model} | {batch} | {search} | {values} | {ratio('tongyeok fp32', 'ct2 float32')} "
            f"| {ratio('tongyeok int8', 'ct2 int8')} | {ratio('tongyeok fp32', 'transformers')} |"
        )
    if ratios:
        lines += [
            "",
            "Tongyeok over CTranslate2, every cell at the same precision: geometric mean "
            f"{geometric_mean(ratios):.2f}×, lowest {min(ratios):.2f}×, "
            f"highest {max(ratios):.2f}×.",
        ]
    lines += ["", "Peak resident memory (MB) of each engine's process:", ""]
    lines += ["| model | batch | search | " + " | ".join(ENGINES) + " |"]
    lines += ["| --- | ---: | --- |" + " ---: |" * len(ENGINES)]
    for model, beam, batch in keys:
        cell = {r.engine: r for r in results if (r.model, r.beam, r.batch) == (model, beam, batch)}
        values = " | ".join(f"{cell[e].peak_mb:.0f}" if e in cell else "–" for e in ENGINES)
        search = "greedy" if beam == 1 else f"beam {beam}"
        lines.append(f"| {model} | {batch} | {search} | {values} |")
    return "\n".join(lines)
