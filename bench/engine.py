"""``tongyeok bench engine``: target tokens/s of Tongyeok vs CTranslate2, Transformers and PyTorch.

Fair by construction: every engine decodes the same sentences with the same weights and the same
forced number of generated tokens per sentence (EOS forbidden before it, stopped at it), in the
same batches in the same (file) order; and every measurement runs in a fresh process of its own
(``bench/engines.py``) that loads only that engine, so no other engine's thread pool competes for
the cores. Each engine is measured at every given thread count (default: 1 and the usable cores)
and judged by its best: a single shared count measures one engine's configuration against the
others' worst case (CTranslate2's int8 is several times slower with 2 threads than with 1 on the
2-vCPU machine), a benchmark only one engine can win. Every engine gets the same counts, so the
same number of chances. Each child reports the CPU time other processes used during its timed
runs: a run where they used more than a tenth of a core is flagged as contended. Each child also
reports what it fed its engine, as pieces with EOS: a measurement whose engine was not fed
exactly the sources cut by the reference tokenizer fails the run.

Three models (``bench/engine_models.py``, ``--models``): the shipped one, a Transformer-base-sized
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
gives each engine's rate of the weight products decoding needs as a share of it.
"""

from __future__ import annotations

import json
import math
import os
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
from bench.roofline import Ceiling, Shapes, decoding_flops, write_ceiling_graphs
from model.transformer import ModelConfig

ENGINES = ("tongyeok fp32", "tongyeok int8", "ct2 float32", "ct2 int8", "transformers", "pytorch")
# On a GPU (``--device cuda``): fp32 and fp16 each, against Transformers at the same precision
# (CTranslate2's wheels are built for another CUDA major version than the GPU machine's).
GPU_ENGINES = ("tongyeok fp32", "tongyeok fp16", "transformers", "transformers fp16")
COLUMNS = (*ENGINES, "tongyeok fp16", "transformers fp16")  # table order of every engine
CONTENDED = 0.1  # other processes' CPU seconds per wall second above which a run is flagged


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


def measure(spec: dict, spec_path: Path, child: str = "bench.engines") -> dict:
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
            if device == "cpu":
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


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


Key = tuple[str, int, int]  # (model, beam, batch): one row of the tables
Rows = dict[Key, dict[str, Result]]  # each row's engines, by their best measurement
RATIOS = (  # (column, numerator, denominator): ours over a peer, each engine at its best
    ("fp32/ct2", "tongyeok fp32", "ct2 float32"),
    ("int8/ct2", "tongyeok int8", "ct2 int8"),
    ("fp32/transformers", "tongyeok fp32", "transformers"),
    ("fp16/transformers fp16", "tongyeok fp16", "transformers fp16"),
)
OURS_VS_CT2 = RATIOS[:2]


def rank(r: Result) -> tuple[float, int]:
    """Faster is better; on a tie the fewer threads, as a user would pick."""
    return r.tokens_per_second, -r.threads


def best_of(results: Sequence[Result]) -> Rows:
    """Each row's engines, each by its best measurement over the thread counts: how its user
    would run it. Rows in the order they ran."""
    rows: Rows = {}
    for r in results:
        cell = rows.setdefault((r.model, r.beam, r.batch), {})
        if r.engine not in cell or rank(r) > rank(cell[r.engine]):
            cell[r.engine] = r
    return rows


def ratio(cell: dict[str, Result], a: str, b: str) -> float | None:
    if a not in cell or b not in cell:
        return None
    return cell[a].tokens_per_second / cell[b].tokens_per_second


def speed(r: Result, label: bool) -> str:
    """Tokens/s, ``*`` when contended, and the thread count when several were measured."""
    flag = "*" if r.contended else ""
    return f"{r.tokens_per_second:.0f}{flag}" + (f" ({r.threads}t)" if label else "")


def table(
    keys: Sequence[Key],
    engines: Sequence[str],
    values: Callable[[Key], list[str]],
    extra: Sequence[str] = (),
) -> list[str]:
    """A markdown table with a line per row: its ``engines``' values, then ``extra`` columns."""
    names = [*engines, *extra]
    lines = [
        "| model | batch | search | " + " | ".join(names) + " |",
        "| --- | ---: | --- |" + " ---: |" * len(names),
    ]
    for key in keys:
        model, beam, batch = key
        search = "greedy" if beam == 1 else f"beam {beam}"
        lines.append(f"| {model} | {batch} | {search} | {' | '.join(values(key))} |")
    return lines


def markdown(
    results: list[Result], tokens: int, machine: str = "", ceilings: Sequence[Ceiling] = ()
) -> str:
    """The tables, models in the order they ran, with each model's shape as a legend: each
    engine's best over the thread counts with the count, ratios of those bests, the peak memory
    of each best, (when several counts ran) every count's tokens/s side by side, and (with
    ``ceilings``) each best's matrix-product rate as a share of the ceiling it ran under."""
    counts = sorted({r.threads for r in results})
    several = len(counts) > 1
    rows = best_of(results)
    order = list(dict.fromkeys(model for model, _, _ in rows))
    keys = sorted(rows, key=lambda k: (order.index(k[0]), k[1], k[2]))
    ran = {r.engine for r in results}
    engines = [e for e in COLUMNS if e in ran]
    ratios = [r for r in RATIOS if r[1] in ran and r[2] in ran]
    lines = [
        *preamble(counts, tokens, machine, order),
        *table(
            keys,
            engines,
            lambda k: speed_row(rows[k], several, engines, ratios),
            [c for c, _, _ in ratios],
        ),
        *geometric_mean_line(rows),
    ]
    if several:
        lines += ["", best_counts_line(rows, counts)]
    of = ", in the measurement its best tokens/s above came from" if several else ""
    lines += ["", f"Peak resident memory (MB) of each engine's process{of}:", ""]
    lines += table(
        keys,
        engines,
        lambda k: [f"{rows[k][e].peak_mb:.0f}" if e in rows[k] else "–" for e in engines],
    )
    if several:
        at = {(r.model, r.beam, r.batch, r.engine, r.threads): r for r in results}
        lines += ["", f"Target tokens/s at each thread count ({' / '.join(map(str, counts))}):", ""]
        lines += table(keys, engines, lambda k: [per_count(at, k, e, counts) for e in engines])
    if ceilings:
        lines += ["", *roofline_lines(rows, keys, engines, ceilings)]
    return "\n".join(lines)


def roofline_lines(
    rows: Rows, keys: Sequence[Key], engines: Sequence[str], ceilings: Sequence[Ceiling]
) -> list[str]:
    """Each best's GFLOPS of the weight products decoding needs, and its share of a lone matrix
    product's best rate on the same model's shapes, precision and thread count."""
    at = {(c.model, c.precision, c.threads): c for c in ceilings}

    def share(r: Result) -> str:
        ceiling = at.get((r.model, r.precision, r.threads))
        if not r.flops or ceiling is None:
            return "–"
        return f"{r.gflops:.0f} ({r.gflops / ceiling.gflops:.0%})"

    listed = "; ".join(
        f"{c.model} {c.precision} {c.threads}t {c.gflops:.0f} ({c.shape})" for c in ceilings
    )
    return [
        "Matrix products: each best above in GFLOPS of the weight products decoding needs "
        "(`bench/roofline.py`: projections, feed-forward and output projection over the real "
        "tokens; attention scores and padding not counted), and in brackets its share of the "
        "ceiling, a lone ONNX Runtime MatMul of the model's feed-forward shapes at the same "
        "precision and thread count, at its best over 64 to 1,024 rows (GFLOPS, rows x inner x "
        f"outer): {listed}. Near 100%, no engine at that precision can be much faster.",
        "",
        *table(
            keys, engines, lambda k: [share(rows[k][e]) if e in rows[k] else "–" for e in engines]
        ),
    ]


def preamble(counts: Sequence[int], tokens: int, machine: str, models: Sequence[str]) -> list[str]:
    """What was run, on what, and how to read the first table."""
    import onnxruntime
    import transformers

    try:
        import ctranslate2

        ct2_version = ctranslate2.__version__
    except ImportError:  # a GPU machine's environment may lack it: it is not measured there
        ct2_version = "not installed"
    several = len(counts) > 1
    named = ", ".join(map(str, counts[:-1])) + " and " if several else ""
    threads = (
        f"every engine at {named}{counts[-1]} threads, its best kept per cell"
        if several
        else f"{counts[0] if counts else '–'} threads for every engine"
    )
    shapes = {name: m.shape for name, m in bench_models().items()}
    legend = "; ".join(f"{m}: {shapes.get(m, m)}" for m in models)
    return [
        f"{threads[0].upper()}{threads[1:]}, {tokens} generated tokens forced per sentence, the "
        "same batches in file order for every engine, each measurement in a fresh process "
        f"(median of the timed runs); onnxruntime {onnxruntime.__version__}, ctranslate2 "
        f"{ct2_version}, transformers {transformers.__version__}, torch "
        f"{torch.__version__}; {machine or platform.machine()}",
        "",
        f"Models: {legend}.",
        "",
        "Target tokens/s"
        + (", each engine at its best thread count (in brackets)" if several else "")
        + "; ratios are Tongyeok over CTranslate2 at the same precision, and Tongyeok over "
        "Transformers `generate` (with its cache) at the same precision. A `*` marks a run "
        f"during which other processes used more than {CONTENDED:.0%} of a core.",
        "",
    ]


def speed_row(
    cell: dict[str, Result], label: bool, engines: Sequence[str], ratios: Sequence[tuple]
) -> list[str]:
    values = [speed(cell[e], label) if e in cell else "–" for e in engines]
    for _, a, b in ratios:
        value = ratio(cell, a, b)
        values.append("–" if value is None else f"{value:.2f}×")
    return values


def per_count(at: dict, key: Key, engine: str, counts: Sequence[int]) -> str:
    """One engine's tokens/s in one row at each count, e.g. ``183 / 1338`` ("–": not run)."""
    runs = [at.get((*key, engine, c)) for c in counts]
    return " / ".join(speed(r, False) if r else "–" for r in runs) if any(runs) else "–"


def geometric_mean_line(rows: Rows) -> list[str]:
    ratios = [
        value
        for cell in rows.values()
        for _, a, b in OURS_VS_CT2
        if (value := ratio(cell, a, b)) is not None
    ]
    if not ratios:
        return []
    return [
        "",
        "Tongyeok over CTranslate2, every cell at the same precision: geometric mean "
        f"{geometric_mean(ratios):.2f}×, lowest {min(ratios):.2f}×, highest {max(ratios):.2f}×.",
    ]


def best_counts_line(rows: Rows, counts: Sequence[int]) -> str:
    """How many cells each count was an engine's best in: whether one count suits it throughout."""
    parts = []
    for engine in COLUMNS:
        best = [cell[engine].threads for cell in rows.values() if engine in cell]
        if best:
            tally = ", ".join(f"{c}t in {best.count(c)}" for c in counts if c in best)
            parts.append(f"{engine} {tally} of {len(best)}")
    return (
        f"Which thread count gave each engine's best, in how many of its cells: {'; '.join(parts)}."
    )
