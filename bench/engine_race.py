"""``tongyeok bench engine``: target tokens/s of Tongyeok vs CTranslate2, Transformers and PyTorch.

Fair by construction: every engine decodes the same sentences with the same weights and the same
forced number of generated tokens per sentence (EOS forbidden before it, stopped at it), in the
same batches in the same (file) order; and every measurement runs in a fresh process of its own
(``bench/contenders.py``) that loads only that engine, so no other engine's thread pool competes for
the cores. Each engine is measured at every given thread count (default: 1 and the usable cores)
and judged by its best: a single shared count measures one engine's configuration against the
others' worst case (CTranslate2's int8 is several times slower with 2 threads than with 1 on the
2-vCPU machine), a benchmark only one engine can win. Every engine gets the same counts, so the
same number of chances. Each child reports the CPU time other processes used during its timed
runs: a run where they used more than a tenth of a core is flagged as contended. Each child also
reports what it fed its engine, as pieces with EOS: a measurement whose engine was not fed
exactly the sources cut by the reference tokenizer fails the run.

Three models (``bench/race_models.py``, ``--models``): the shipped one, a Transformer-base-sized
one with random weights (speed does not depend on training), and OPUS-MT's shape (d=512, 6+6,
58,101 ids, random) imported from a local Marian directory. Cost on the 2-core machine, with the
defaults (64 sentences, 16 at batch 1, batches 1/8/32/64, greedy and beam 4, 3 timed runs), per
thread count: about 5 minutes for shipped and 20 for base (48 processes each); a decoder step of
OPUS-MT's shape costs about twice base's (its 512 x 58,101 output projection outweighs the six
layers), so all 8 cells would add about 40 minutes: by default it runs batch 1 (8 sentences) and
batch 32 only, about 15 minutes including building, importing and converting it (~2 minutes, ~1 GB
of temporary files). The default two thread counts double the measuring time (the building is
done once); ``--threads 2`` gives the old single-count table. ``--device cuda`` measures on a GPU:
Tongyeok fp32 and fp16 (CUDA provider) against Transformers ``generate`` at each precision.

On the CPU each model's ceiling is measured too (``bench/roofline.py``): a lone matrix product of
its feed-forward shapes at each precision and thread count, in a process of its own; the report
gives each engine's rate of the weight products decoding needs as a share of it. The tables are
``bench/race_report.py``'s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.contenders import digest, reference_tokenizer, reference_vocabulary
from bench.marian_dirs import OPUS_MT, Variant
from bench.race_models import (
    OPUS_BATCHES,
    OPUS_SENTENCES_BATCH1,
    BenchModel,
    bench_models,
    prepare_model,
)
from bench.roofline import Ceiling, Shapes, decoding_flops, write_ceiling_graphs
from model.transformer import ModelConfig
from service.runtime.providers import HOST, resolve

ENGINES = ("tongyeok fp32", "tongyeok int8", "ct2 float32", "ct2 int8", "transformers", "pytorch")
# On a GPU (``--device cuda``): fp32 and fp16 each, against Transformers at the same precision
# (CTranslate2's wheels are built for another CUDA major version than the GPU machine's).
GPU_ENGINES = ("tongyeok fp32", "tongyeok fp16", "transformers", "transformers fp16")
CONTENDED = 0.1  # other processes' CPU seconds per wall second above which a run is flagged


def on_gpu(device: str) -> bool:
    """Whether ``device``'s profile keeps the decoder's tensors off the host, as a GPU does: it
    runs ``GPU_ENGINES`` by default, and has no CPU ceiling to measure."""
    return resolve(device).memory != HOST


def default_engines(device: str) -> tuple[str, ...]:
    """The engines measured on ``device`` when ``--engines`` names none."""
    return GPU_ENGINES if on_gpu(device) else ENGINES


@dataclass(frozen=True)
class Result:
    model: str
    batch: int
    beam: int
    engine: str
    threads: int  # intra-op threads it ran with
    seconds: float  # median of the timed runs
    tokens: int
    other_cpu: float  # CPU seconds other processes used during the timed runs, summed
    peak_mb: float
    pid: int  # the process it ran in (one per measurement)
    fed: str = ""  # digest of the sources as the engine got them (pieces, EOS included)
    outputs: str = ""  # digest of its best hypotheses (pieces)
    flops: int = 0  # the weight products one timed run needs (bench/roofline.py); 0: not known

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds

    @property
    def gflops(self) -> float:
        return self.flops / self.seconds / 1e9

    @property
    def precision(self) -> str:
        return precision_of(self.engine)

    @property
    def contended(self) -> bool:
        return self.other_cpu > CONTENDED * self.seconds


def precision_of(engine: str) -> str:
    """What an engine's matrix products compute in: the ceiling it is measured against."""
    return "int8" if engine.endswith("int8") else "fp16" if engine.endswith("fp16") else "fp32"


def thread_counts(given: Sequence[int] | None = None) -> list[int]:
    """The thread counts to measure every engine at, ascending, each once; by default 1 (what
    one process per core runs) and every core this process may use (what one process alone
    runs), the two ends of how a user would deploy an engine."""
    counts = sorted(set(given or (1, len(os.sched_getaffinity(0)))))
    if not counts or counts[0] < 1:
        raise ValueError(f"thread counts must be 1 or more, got {list(given or [])}")
    return counts


@dataclass(frozen=True)
class Bench:
    """What one ``run_bench`` measured: every engine's runs, and the ceilings (CPU only)."""

    results: list[Result]
    ceilings: list[Ceiling]


def measure(spec: dict, spec_path: Path, child: str = "bench.contenders") -> dict:
    """Run one engine (or ``child``) on one configuration in a fresh process; its JSON report."""
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", child, str(spec_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        name = spec.get("engine", child)
        raise RuntimeError(f"{name} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_ceilings(
    model: str,
    shapes: Shapes,
    precisions: Sequence[str],
    counts: Sequence[int],
    work: Path,
    log: Callable[[str], None],
) -> list[Ceiling]:
    """A lone matrix product's best rate at each precision and thread count, each in a fresh
    process (``bench.roofline``); its graphs are written under the model's ``work``."""
    ceilings = []
    for precision in precisions:
        graphs = write_ceiling_graphs(shapes, precision, work / "ceiling")
        for count in counts:
            spec = {"graphs": [str(g) for g in graphs], "threads": count}
            report = measure(spec, work / "ceiling.json", "bench.roofline")
            ceiling = Ceiling(model, precision, count, report["gflops"], report["shape"])
            log(f"{model:<8} ceiling {precision} {count:>2}t {ceiling.gflops:7.1f} GFLOPS")
            ceilings.append(ceiling)
    return ceilings


def run_bench(
    texts: Sequence[str],
    shipped: str | Path | None,
    batches: Sequence[int] = (1, 8, 32, 64),
    beams: Sequence[int] = (1, 4),
    tokens: int = 32,
    threads: Sequence[int] | None = None,
    sentences_batch1: int = 16,
    models: Sequence[str] = ("shipped", "base", "opus"),
    engines: Sequence[str] = ENGINES,
    repeats: int = 3,
    log: Callable[[str], None] = print,
    opus: Variant = OPUS_MT,
    opus_batches: Sequence[int] | None = OPUS_BATCHES,
    opus_sentences_batch1: int | None = OPUS_SENTENCES_BATCH1,
    device: str = "cpu",
) -> Bench:
    """Every (model, beam, batch) with every engine at every thread count (``thread_counts``),
    engines interleaved within each count so that a slow drift of the machine touches all of them
    alike; each measurement in its own process. ``texts`` are cut into ids by each model's own
    tokenizer; ``opus`` is the shape of the OPUS-MT model. On the CPU, each model's ceiling is
    measured before its cells, at the precisions its engines compute in."""
    counts = thread_counts(threads)
    registry = bench_models(opus_batches, opus_sentences_batch1)
    unknown = [m for m in models if m not in registry]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}: choose from {sorted(registry)}")
    results: list[Result] = []
    ceilings: list[Ceiling] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in models:
            model: BenchModel = registry[name]
            work = root / name
            prepare_model(model, shipped, texts, work, engines, opus, device)
            tokenizer, config = reference_tokenizer(work)
            sources = tokenizer.encode_batch(list(texts))
            vocab = reference_vocabulary(work)
            shapes = Shapes.of(ModelConfig.from_dict(config.raw["model"]))
            if not on_gpu(device):
                precisions = sorted({precision_of(e) for e in engines} & {"fp32", "int8"})
                ceilings += measure_ceilings(name, shapes, precisions, counts, work, log)
            for beam in beams:
                for batch in [b for b in batches if model.batches is None or b in model.batches]:
                    first = model.sentences_batch1 or sentences_batch1
                    subset = sources[: first if batch == 1 else len(sources)]
                    expected = digest([vocab.pieces(s) for s in subset])
                    path = root / f"sources-{name}-{len(subset)}.json"
                    path.write_text(json.dumps(subset))
                    work_done = decoding_flops(shapes, [len(s) + 1 for s in subset], tokens, beam)
                    for count in counts:
                        for engine in engines:
                            spec = {
                                "engine": engine,
                                "workdir": str(work),
                                "weights": model.weights,
                                "sources": str(path),
                                "batch": batch,
                                "beam": beam,
                                "tokens": tokens,
                                "threads": count,
                                "repeats": repeats,
                                "device": device,
                            }
                            report = measure(spec, root / "spec.json")
                            result = result_of(name, spec, report, work_done)
                            check_fed(result, expected)
                            results.append(result)
                            log(log_line(result))
    return Bench(results, ceilings)


def check_fed(result: Result, expected: str) -> None:
    if result.fed != expected:
        raise RuntimeError(
            f"{result.model} batch {result.batch}: {result.engine} ({result.threads} threads) was "
            f"fed other sources than the reference tokenizer's ({result.fed} != {expected})"
        )


def log_line(r: Result) -> str:
    flag = "  CONTENDED" if r.contended else ""
    return (
        f"{r.model:<8} batch {r.batch:>3} beam {r.beam} {r.engine:<14} {r.threads:>2}t "
        f"{r.tokens_per_second:9.0f} tok/s {r.gflops:6.1f} GFLOPS  peak {r.peak_mb:6.0f} MB"
        f"  other CPU {r.other_cpu:5.2f} s{flag}"
    )


def result_of(model: str, spec: dict, report: dict, flops: int = 0) -> Result:
    runs = report["runs"]
    return Result(
        model=model,
        batch=spec["batch"],
        beam=spec["beam"],
        engine=spec["engine"],
        threads=spec["threads"],
        seconds=statistics.median(r["seconds"] for r in runs),
        tokens=report["tokens"],
        other_cpu=sum(r["other_cpu"] for r in runs),
        peak_mb=report["peak_mb"],
        pid=report["pid"],
        fed=report["fed"],
        outputs=report["outputs"],
        flops=flops,
    )
