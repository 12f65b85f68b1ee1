"""The tables of ``tongyeok bench engine``: what ``bench/engine_race.py`` measured, as markdown.

Each engine is judged by its best measurement over the thread counts (how its user would run it);
the tables give those bests with their counts, Tongyeok's ratios over each peer at the same
precision, the peak memory of each best, every count's tokens/s side by side when several ran,
and (on the CPU) each best's matrix-product rate as a share of the ceiling it ran under.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Callable, Sequence

import torch

from bench.engine_race import CONTENDED, ENGINES, Result
from bench.race_models import bench_models
from bench.roofline import Ceiling

COLUMNS = (*ENGINES, "tongyeok fp16", "transformers fp16")  # table order of every engine


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
