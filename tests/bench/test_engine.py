"""``bench engine`` on the toy model: every engine runs in a process of its own, on the same
batches, and every output has the forced length (the child fails otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

from bench.engine import ENGINES, markdown, run_bench
from contract.tokenizer import Tokenizer
from model.checkpoint import load_checkpoint
from tests.conftest import copy_pairs


def test_every_engine_runs_alone_on_the_same_work(toy_checkpoint: Path) -> None:
    tokenizer: Tokenizer = load_checkpoint(toy_checkpoint).tokenizer
    sources = tokenizer.encode_batch([s for s, _ in copy_pairs(6, seed=21)])
    results = run_bench(
        sources,
        toy_checkpoint,
        batches=[1, 4],
        beams=[2],
        tokens=5,
        threads=1,
        sentences_batch1=2,
        sizes=["shipped"],
        repeats=1,
        log=lambda _: None,
    )
    assert {r.engine for r in results} == set(ENGINES)
    pids = [r.pid for r in results]
    assert len(set(pids)) == len(results) and os.getpid() not in pids  # a process each
    for r in results:
        assert r.tokens == 5 * (2 if r.batch == 1 else 6)  # same work for every engine
        assert r.seconds > 0 and r.peak_mb > 0
    table = markdown(results, 1, 5, "test machine")
    assert "geometric mean" in table and "test machine" in table
    assert table.count("| shipped | 4 | beam 2 |") == 2  # speed row and memory row
