"""``tongyeok bench engine``: target tokens/s of Tongyeok vs CTranslate2, Transformers and PyTorch.

Fair by construction: every engine decodes the same sentences with the same weights, the same
thread count and the same forced number of generated tokens per sentence (EOS forbidden before it,
stopped at it), in the same batches in the same (file) order; and every measurement runs in a
fresh process of its own (``bench/engines.py``) that loads only that engine, so no other engine's
thread pool competes for the cores. Each child reports the CPU time other processes used during
its timed runs: a run where they used more than a tenth of a core is flagged as contended. Each
child also reports what it fed its engine, as pieces with EOS: a cell whose engines were not all
fed exactly the sources cut by the reference tokenizer fails the run.

Three models (``bench/engine_models.py``, ``--models``): the shipped one, a Transformer-base-sized
one with random weights (speed does not depend on training), and OPUS-MT's shape (d=512, 6+6,
58,101 ids, random) imported from a local Marian directory. Cost on the 2-core machine, with the
defaults (64 sentences, 16 at batch 1, batches 1/8/32/64, greedy and beam 4, 3 timed runs): about
5 minutes for shipped and 20 for base (48 processes each); a decoder step of OPUS-MT's shape costs
about twice base's (its 512 x 58,101 output projection outweighs the six layers), so all 8 cells
would add about 40 minutes: by default it runs batch 1 (8 sentences) and batch 32 only, about 15
minutes including building, importing and converting it (~2 minutes, ~1 GB of temporary files).
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

from bench.engine_models import (
    OPUS_BATCHES,
    OPUS_SENTENCES_BATCH1,
    BenchModel,
    bench_models,
    prepare_model,
)
from bench.engines import digest, reference_tokenizer, reference_vocabulary
from bench.marian_dirs import OPUS_MT, Variant

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
    fed: str = ""  # digest of the sources as the engine got them (pieces, EOS included)
    outputs: str = ""  # digest of its best hypotheses (pieces)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    @property
    def contended(self) -> bool:
        return self.other_cpu > CONTENDED * self.seconds


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
    texts: Sequence[str],
    shipped: str | Path | None,
    batches: Sequence[int] = (1, 8, 32, 64),
    beams: Sequence[int] = (1, 4),
    tokens: int = 32,
    threads: int = 2,
    sentences_batch1: int = 16,
    models: Sequence[str] = ("shipped", "base", "opus"),
    engines: Sequence[str] = ENGINES,
    repeats: int = 3,
    log: Callable[[str], None] = print,
    opus: Variant = OPUS_MT,
    opus_batches: Sequence[int] | None = OPUS_BATCHES,
    opus_sentences_batch1: int | None = OPUS_SENTENCES_BATCH1,
) -> list[Result]:
    """Every (model, beam, batch) with every engine, engines interleaved so that a slow drift of
    the machine touches all of them alike; each measurement in its own process. ``texts`` are cut
    into ids by each model's own tokenizer; ``opus`` is the shape of the OPUS-MT model."""
    registry = bench_models(opus_batches, opus_sentences_batch1)
    unknown = [m for m in models if m not in registry]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}: choose from {sorted(registry)}")
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in models:
            model: BenchModel = registry[name]
            work = root / name
            prepare_model(model, shipped, texts, work, engines, opus)
            tokenizer, _ = reference_tokenizer(work)
            sources = tokenizer.encode_batch(list(texts))
            vocab = reference_vocabulary(work)
            for beam in beams:
                for batch in [b for b in batches if model.batches is None or b in model.batches]:
                    first = model.sentences_batch1 or sentences_batch1
                    subset = sources[: first if batch == 1 else len(sources)]
                    expected = digest([vocab.pieces(s) for s in subset])
                    path = root / f"sources-{name}-{len(subset)}.json"
                    path.write_text(json.dumps(subset))
                    for engine in engines:
                        spec = {
                            "engine": engine,
                            "workdir": str(work),
                            "weights": model.weights,
                            "sources": str(path),
                            "batch": batch,
                            "beam": beam,
                            "tokens": tokens,
                            "threads": threads,
                            "repeats": repeats,
                        }
                        result = result_of(name, spec, measure(spec, root / "spec.json"))
                        if result.fed != expected:
                            raise RuntimeError(
                                f"{name} batch {batch}: {engine} was fed other sources than the "
                                f"reference tokenizer's ({result.fed} != {expected})"
                            )
                        results.append(result)
                        flag = "  CONTENDED" if result.contended else ""
                        log(
                            f"{name:<8} batch {batch:>3} beam {beam} {engine:<14} "
                            f"{result.tokens_per_second:9.0f} tok/s  peak {result.peak_mb:6.0f} MB"
                            f"  other CPU {result.other_cpu:5.2f} s{flag}"
                        )
    return results


def result_of(model: str, spec: dict, report: dict) -> Result:
    runs = report["runs"]
    return Result(
        model,
        spec["batch"],
        spec["beam"],
        spec["engine"],
        statistics.median(r["seconds"] for r in runs),
        report["tokens"],
        sum(r["other_cpu"] for r in runs),
        report["peak_mb"],
        report["pid"],
        report["fed"],
        report["outputs"],
    )


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def markdown(results: list[Result], threads: int, tokens: int, machine: str = "") -> str:
    """The tables, models in the order they ran, with each model's shape as a legend."""
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
    order = list(dict.fromkeys(r.model for r in results))
    shapes = {name: m.shape for name, m in bench_models().items()}
    legend = "; ".join(f"{m}: {shapes.get(m, m)}" for m in order)
    lines[1:1] = ["", f"Models: {legend}."]
    keys = sorted(
        {(r.model, r.beam, r.batch) for r in results},
        key=lambda k: (order.index(k[0]), k[1], k[2]),
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
