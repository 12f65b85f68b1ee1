"""``bench engine`` on tiny models: every engine runs in a process of its own, on the same
batches, fed the same sources, and every output has the forced length (the child fails
otherwise); the OPUS-MT shape goes through a real Marian directory and ``tongyeok import``'s
pipeline, with its real vocabulary of 58,101 ids at tiny widths."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path

import pytest

from bench.engine_race import ENGINES, Result, run_bench, thread_counts
from bench.marian_dirs import OPUS_MT, marian_vocab
from bench.race_report import best_of, markdown
from bench.roofline import Ceiling
from tests.conftest import copy_pairs
from tongyeok.cli import build_parser, main

# OPUS-MT's flags and vocabulary size (swish, scaled tied embeddings, EOS 0, pad 58,100 and the
# decoder start) at widths that run in seconds.
TINY_OPUS = dataclasses.replace(
    OPUS_MT,
    d_model=16,
    heads=2,
    ffn=32,
    layers=2,
    max_positions=128,
    spm_pieces=(180, 150),
    extra_config={},  # Marian dirs of the tests: init std 0.5, outputs that depend on the source
)
TEXTS = [
    "Two dogs are running through the green grass.",
    "A man in an orange hat is looking at something.",
    "The children play football in the park.",
    "She reads a book.",
]


def test_every_engine_runs_alone_on_the_same_work(toy_checkpoint: Path) -> None:
    bench = run_bench(
        [s for s, _ in copy_pairs(6, seed=21)],
        toy_checkpoint,
        batches=[1, 4],
        beams=[2],
        tokens=5,
        threads=[1],
        sentences_batch1=2,
        models=["shipped"],
        repeats=1,
        log=lambda _: None,
    )
    results = bench.results
    assert {r.engine for r in results} == set(ENGINES)
    pids = [r.pid for r in results]
    assert len(set(pids)) == len(results) and os.getpid() not in pids  # a process each
    for r in results:
        assert r.tokens == 5 * (2 if r.batch == 1 else 6)  # same work for every engine
        assert r.seconds > 0 and r.peak_mb > 0
    for batch in (1, 4):  # the same pieces (EOS included) in every engine's own ids
        assert len({r.fed for r in results if r.batch == batch}) == 1
    assert {r.threads for r in results} == {1}
    # The same work credited to every engine of a cell; fewer sentences, less work.
    work = {batch: {r.flops for r in results if r.batch == batch} for batch in (1, 4)}
    assert len(work[1]) == len(work[4]) == 1 and 0 < min(work[1]) < min(work[4])
    # The ceiling of each precision the engines compute in, each in a process of its own.
    assert sorted((c.precision, c.threads) for c in bench.ceilings) == [("fp32", 1), ("int8", 1)]
    assert all(c.gflops > 0 and c.model == "shipped" for c in bench.ceilings)
    table = markdown(results, 5, "test machine", bench.ceilings)
    assert "geometric mean" in table and "test machine" in table
    assert table.count("| shipped | 4 | beam 2 |") == 3  # speed, memory and matrix products
    assert re.search(r"\| shipped \| 4 \| beam 2 \| \d+ \(\d+%\) \|", table), table


def test_every_thread_count_runs_in_a_process_of_its_own(toy_checkpoint: Path) -> None:
    # One engine whose process starts in under a second: the counts' loop, for real.
    results = run_bench(
        [s for s, _ in copy_pairs(4, seed=3)],
        toy_checkpoint,
        batches=[2],
        beams=[1],
        tokens=3,
        threads=[2, 1, 2],
        models=["shipped"],
        engines=["tongyeok int8"],
        repeats=1,
        log=lambda _: None,
    ).results
    assert [r.threads for r in results] == [1, 2]  # each count once, ascending
    assert len({r.pid for r in results}) == 2 and len({r.fed for r in results}) == 1
    per_count = markdown(results, 3).splitlines()[-1]  # tongyeok int8 at 1 / 2 threads
    assert re.fullmatch(r"\| shipped \| 2 \| greedy \| \d+\*? / \d+\*? \|", per_count)


def test_opus_shape_feeds_every_engine_the_same_marian_sources() -> None:
    results = run_bench(
        TEXTS,
        None,
        batches=[1, 2],
        beams=[1],
        tokens=4,
        threads=[1],
        models=["opus"],
        repeats=1,
        log=lambda _: None,
        opus=TINY_OPUS,
        opus_batches=[2],  # OPUS-MT runs only its own cells
    ).results
    assert {(r.engine, r.batch) for r in results} == {(e, 2) for e in ENGINES}
    assert all(r.tokens == 4 * len(TEXTS) for r in results)  # every output forced to 4
    assert len({r.fed for r in results}) == 1
    # Greedy fp32 decoding agrees token for token across implementations only if each starts
    # its decoder from pad (a zero embedding), knows EOS is id 0 and never emits pad.
    fp32 = {r.engine: r.outputs for r in results if r.engine not in ("tongyeok int8", "ct2 int8")}
    assert len(set(fp32.values())) == 1, fp32
    assert "opus: OPUS-MT shape" in markdown(results, 4)


def test_opus_vocabulary_has_marians_layout() -> None:
    vocab = marian_vocab(["▁a", "▁b", "c"], [], eos_first=True, drop=1, size=58101)
    ids = sorted(vocab.values())
    assert ids == list(range(58101))
    assert (vocab["</s>"], vocab["<unk>"], vocab["<pad>"]) == (0, 1, 58100)
    assert "c" not in vocab and vocab["▁b"] == 3
    with pytest.raises(ValueError, match="smaller than the 5 needed"):
        marian_vocab(["▁a", "▁b"], [], eos_first=True, drop=0, size=4)


def measured(
    engine: str, threads: int, tokens_per_second: int, peak_mb: float = 100.0, **kw: object
) -> Result:
    """A measurement as a child would report it (one second, so tokens are tokens/s)."""
    fields: dict = dict(model="shipped", batch=1, beam=1, other_cpu=0.0, pid=threads) | kw
    return Result(
        engine=engine,
        threads=threads,
        seconds=1.0,
        tokens=tokens_per_second,
        peak_mb=peak_mb,
        **fields,
    )


# CTranslate2 int8 fast at 1 thread and slow at 2 (as on the 2-vCPU machine), Tongyeok fp32 best
# at 2: at any one shared count a ratio would differ from the ratio of bests.
AT_TWO_COUNTS = [
    measured("tongyeok fp32", 1, 508, 90.0),
    measured("tongyeok fp32", 2, 519, 95.0),
    measured("tongyeok int8", 1, 1123, 60.0),
    measured("tongyeok int8", 2, 793, 61.0),
    measured("ct2 float32", 1, 650, 70.0),
    measured("ct2 float32", 2, 600, 71.0),
    measured("ct2 int8", 1, 1338, 40.0),
    measured("ct2 int8", 2, 183, 45.0, other_cpu=0.5),  # contended
]


def test_each_engine_is_judged_at_its_best_thread_count() -> None:
    best = best_of(AT_TWO_COUNTS)[("shipped", 1, 1)]
    assert {e: (r.threads, r.tokens) for e, r in best.items()} == {
        "tongyeok fp32": (2, 519),
        "tongyeok int8": (1, 1123),
        "ct2 float32": (1, 650),
        "ct2 int8": (1, 1338),
    }
    tie = best_of([measured("ct2 int8", 2, 700), measured("ct2 int8", 1, 700)])
    assert tie[("shipped", 1, 1)]["ct2 int8"].threads == 1  # as fast: the fewer threads


def test_table_labels_the_best_count_and_divides_bests() -> None:
    table = markdown(AT_TWO_COUNTS, 32, "test machine")
    assert table.startswith("Every engine at 1 and 2 threads, its best kept per cell")
    speed, memory, per_count = (line for line in table.splitlines() if line.startswith("| shipped"))
    assert speed.split(" | ")[3:7] == ["519 (2t)", "1123 (1t)", "650 (1t)", "1338 (1t)"]
    # fp32 519/650 and int8 1123/1338: not 508/650 or 519/600 (one count), not 793/183 (2t)
    assert speed.endswith("| 0.80× | 0.84× |"), speed  # no Transformers ran: no column for it
    mean = math.sqrt(519 / 650 * 1123 / 1338)
    assert f"geometric mean {mean:.2f}×, lowest 0.80×, highest 0.84×" in table
    assert "tongyeok fp32 2t in 1 of 1; tongyeok int8 1t in 1 of 1;" in table
    # memory of the best measurement
    assert memory.removesuffix(" |").split(" | ")[3:] == ["95", "60", "70", "40"]
    cells = per_count.removesuffix(" |").split(" | ")[3:]
    assert cells == ["508 / 519", "1123 / 793", "650 / 600", "1338 / 183*"]  # every run shown


def test_matrix_products_are_shares_of_the_ceiling_at_the_engines_precision_and_count() -> None:
    # one second per run: 100 GFLOP of work is 100 GFLOPS
    work = [dataclasses.replace(r, flops=100 * 10**9) for r in AT_TWO_COUNTS]
    ceilings = [
        Ceiling("shipped", "fp32", 1, 80.0, "256x512x2048"),
        Ceiling("shipped", "fp32", 2, 125.0, "1024x512x2048"),
        Ceiling("shipped", "int8", 1, 160.0, "1024x2048x512"),
        Ceiling("shipped", "int8", 2, 250.0, "1024x512x2048"),
    ]
    table = markdown(work, 32, "test machine", ceilings)
    row = [line for line in table.splitlines() if line.startswith("| shipped")][-1]
    # bests: tongyeok fp32 at 2t, tongyeok int8 at 1t, ct2 float32 at 1t, ct2 int8 at 1t
    assert row.removesuffix(" |").split(" | ")[3:] == [
        "100 (80%)",
        "100 (62%)",
        "100 (125%)",
        "100 (62%)",
    ]
    assert "shipped int8 2t 250 (1024x512x2048)" in table
    assert "Matrix products" not in markdown(work, 32, "test machine")  # no ceilings, no table
    unknown = markdown(AT_TWO_COUNTS, 32, "test machine", ceilings)  # work not known: no share
    assert unknown.splitlines()[-1] == "| shipped | 1 | greedy | – | – | – | – |"


def test_one_thread_count_keeps_the_single_count_table() -> None:
    table = markdown([r for r in AT_TWO_COUNTS if r.threads == 2], 32)
    assert table.startswith("2 threads for every engine, 32 generated tokens")
    assert "(2t)" not in table and "each thread count" not in table
    rows = [line for line in table.splitlines() if line.startswith("| shipped")]
    assert len(rows) == 2  # speed and memory only
    assert rows[0].split(" | ")[3:7] == ["519", "793", "600", "183*"]
    assert rows[0].endswith("| 0.86× | 4.33× |")  # 519/600 and 793/183: ratios at that count


def test_gpu_table_compares_each_precision_with_transformers_at_the_same() -> None:
    """``--device cuda``: fp32 and fp16 columns, each divided by Transformers at the same
    precision; no CTranslate2 column nor a mean over CTranslate2 ratios."""
    gpu = [
        measured("tongyeok fp32", 4, 1000),
        measured("tongyeok fp16", 4, 1500),
        measured("transformers", 4, 400),
        measured("transformers fp16", 4, 500),
    ]
    table = markdown(gpu, 32, "H100")
    header = next(line for line in table.splitlines() if line.startswith("| model"))
    assert header == (
        "| model | batch | search | tongyeok fp32 | transformers | tongyeok fp16 | "
        "transformers fp16 | fp32/transformers | fp16/transformers fp16 |"
    )
    speed = next(line for line in table.splitlines() if line.startswith("| shipped"))
    assert speed.endswith("| 1000 | 400 | 1500 | 500 | 2.50× | 3.00× |"), speed
    assert "ct2" not in table and "geometric mean" not in table


def test_thread_counts_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = ["bench", "engine", "--models", "shipped"]
    assert build_parser().parse_args([*engine, "--threads", "2", "1", "2"]).threads == [2, 1, 2]
    assert build_parser().parse_args(engine).threads is None
    assert thread_counts([2, 1, 2]) == [1, 2]  # each once, ascending
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert thread_counts(None) == [1, 4]  # default: 1 and every usable core
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5})
    assert thread_counts(None) == [1]
    assert main([*engine, "--threads", "1", "0"]) == 1  # refused before any building
    assert "thread counts must be 1 or more, got [1, 0]" in capsys.readouterr().err
