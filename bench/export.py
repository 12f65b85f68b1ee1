"""``tongyeok bench export``: what the export's choices buy, measured side by side in one run.

Greedy decoding of the same sentences, same threads, over:
- the KV cache vs re-running the decoder over the whole prefix at every step;
- ONNX Runtime graph optimization levels (fusions) disable / basic / extended / all;
- fp32 vs int8 (and fp16, which CPUs run but do not speed up).
Ratios are against the first row of each group. A benchmark, not a test: run it on a quiet machine.
"""

from __future__ import annotations

import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.onnx_export import export_package
from export.verify import onnx_greedy
from model.data import pad
from service.runtime.sessions import PackageRuntime, RuntimeOptions


@dataclass(frozen=True)
class Row:
    group: str
    variant: str
    seconds: float
    tokens: int

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


def batches(sources: Sequence[Sequence[int]], batch_size: int, eos: int) -> list[np.ndarray]:
    rows = sorted((list(s) + [eos] for s in sources), key=len)
    return [pad(rows[i : i + batch_size], 0).numpy() for i in range(0, len(rows), batch_size)]


def timed(run: Callable[[], list[list[int]]], repeats: int) -> tuple[float, int]:
    """Best wall time of ``repeats`` runs (after one warm-up) and the tokens generated."""
    tokens = sum(len(h) for h in run())
    best = min(_once(run) for _ in range(repeats))
    return best, tokens


def _once(run: Callable[[], list[list[int]]]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def greedy_all(runtime: PackageRuntime, src_batches: list[np.ndarray], use_cache: bool):
    def run() -> list[list[int]]:
        out: list[list[int]] = []
        for src in src_batches:
            limits = (1.5 * (src != 0).sum(axis=1) + 10).astype(int)
            out += onnx_greedy(runtime, src, limits.tolist(), use_cache=use_cache)
        return out

    return run


def run_bench(
    checkpoint: str | Path | None,
    sources: Sequence[Sequence[int]],
    eos: int,
    batch_size: int = 32,
    threads: int = 2,
    repeats: int = 3,
    log: Callable[[str], None] = print,
) -> list[Row]:
    src_batches = batches(sources, batch_size, eos)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        packages = {
            p: export_package(checkpoint, Path(tmp) / p, p) for p in ("fp32", "int8", "fp16")
        }

        def measure(
            group: str, variant: str, package: str, use_cache: bool = True, level: str = "all"
        ) -> None:
            runtime = PackageRuntime(
                packages[package],
                RuntimeOptions(intra_op_threads=threads, graph_optimization=level),
            )
            seconds, tokens = timed(greedy_all(runtime, src_batches, use_cache), repeats)
            rows.append(Row(group, variant, seconds, tokens))
            log(f"{group:<22} {variant:<26} {seconds:8.3f} s  {tokens / seconds:8.0f} tok/s")

        measure("kv cache", "re-run whole prefix", "fp32", use_cache=False)
        measure("kv cache", "cached (one position/step)", "fp32")
        for level in ("disable", "basic", "extended", "all"):
            measure("graph optimization", level, "fp32", level=level)
        for precision in ("fp32", "int8", "fp16"):
            measure("precision", precision, precision)
    return rows


def markdown(rows: list[Row], sentences: int, batch_size: int, threads: int) -> str:
    import onnxruntime

    lines = [
        f"Greedy decoding of {sentences} sentences, batch {batch_size}, {threads} threads, "
        f"ONNX Runtime {onnxruntime.__version__} CPUExecutionProvider, "
        f"{platform.processor() or platform.machine()}; best of repeated runs.",
        "",
        "| group | variant | seconds | tokens/s | ratio |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    first: dict[str, Row] = {}
    for row in rows:
        base = first.setdefault(row.group, row)
        ratio = row.tokens_per_second / base.tokens_per_second
        lines.append(
            f"| {row.group} | {row.variant} | {row.seconds:.3f} | "
            f"{row.tokens_per_second:.0f} | {ratio:.2f}× |"
        )
    return "\n".join(lines)
