"""``bench engine`` on tiny models: every engine runs in a process of its own, on the same
batches, fed the same sources, and every output has the forced length (the child fails
otherwise); the OPUS-MT shape goes through a real Marian directory and ``tongyeok import``'s
pipeline, with its real vocabulary of 58,101 ids at tiny widths."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from bench.engine import ENGINES, markdown, run_bench
from bench.marian_dirs import OPUS_MT, marian_vocab
from tests.conftest import copy_pairs

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
    results = run_bench(
        [s for s, _ in copy_pairs(6, seed=21)],
        toy_checkpoint,
        batches=[1, 4],
        beams=[2],
        tokens=5,
        threads=1,
        sentences_batch1=2,
        models=["shipped"],
        repeats=1,
        log=lambda _: None,
    )
    assert {r.engine for r in results} == set(ENGINES)
    pids = [r.pid for r in results]
    assert len(set(pids)) == len(results) and os.getpid() not in pids  # a process each
    for r in results:
        assert r.tokens == 5 * (2 if r.batch == 1 else 6)  # same work for every engine
        assert r.seconds > 0 and r.peak_mb > 0
    for batch in (1, 4):  # the same pieces (EOS included) in every engine's own ids
        assert len({r.fed for r in results if r.batch == batch}) == 1
    table = markdown(results, 1, 5, "test machine")
    assert "geometric mean" in table and "test machine" in table
    assert table.count("| shipped | 4 | beam 2 |") == 2  # speed row and memory row


def test_opus_shape_feeds_every_engine_the_same_marian_sources() -> None:
    results = run_bench(
        TEXTS,
        None,
        batches=[1, 2],
        beams=[1],
        tokens=4,
        threads=1,
        models=["opus"],
        repeats=1,
        log=lambda _: None,
        opus=TINY_OPUS,
        opus_batches=[2],  # OPUS-MT runs only its own cells
    )
    assert {(r.engine, r.batch) for r in results} == {(e, 2) for e in ENGINES}
    assert all(r.tokens == 4 * len(TEXTS) for r in results)  # every output forced to 4
    assert len({r.fed for r in results}) == 1
    # Greedy fp32 decoding agrees token for token across implementations only if each starts
    # its decoder from pad (a zero embedding), knows EOS is id 0 and never emits pad.
    fp32 = {r.engine: r.outputs for r in results if r.engine not in ("tongyeok int8", "ct2 int8")}
    assert len(set(fp32.values())) == 1, fp32
    assert "opus: OPUS-MT shape" in markdown(results, 1, 4)


def test_opus_vocabulary_has_marians_layout() -> None:
    vocab = marian_vocab(["▁a", "▁b", "c"], [], eos_first=True, drop=1, size=58101)
    ids = sorted(vocab.values())
    assert ids == list(range(58101))
    assert (vocab["</s>"], vocab["<unk>"], vocab["<pad>"]) == (0, 1, 58100)
    assert "c" not in vocab and vocab["▁b"] == 3
    with pytest.raises(ValueError, match="smaller than the 5 needed"):
        marian_vocab(["▁a", "▁b"], [], eos_first=True, drop=0, size=4)
