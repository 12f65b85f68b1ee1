"""The shipped English→German model: lean, self-describing, reproducible, and good."""

from __future__ import annotations

import json
from pathlib import Path

import sacrebleu

from model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from model.data import read_lines
from model.search import SearchOptions
from model.translate import translate_texts

SAMPLES = DEFAULT_CHECKPOINT.with_suffix(".samples.json")


def test_shipped_checkpoint_is_lean_and_self_describing() -> None:
    assert DEFAULT_CHECKPOINT.stat().st_size < 40e6
    ckpt = load_checkpoint()  # no argument: the shipped model
    assert (ckpt.source_lang, ckpt.target_lang) == ("en", "de")
    assert ckpt.train_state is None  # no optimizer state in a release
    assert ckpt.tokenizer.vocab_size == ckpt.config.vocab_size
    text = "Zwei Hunde spielen im Schnee – 🐕 ça va?"
    assert ckpt.tokenizer.decode(ckpt.tokenizer.encode(text)) == text


def test_shipped_model_reproduces_its_recorded_translations() -> None:
    recorded = json.loads(SAMPLES.read_text(encoding="utf-8"))["samples"]
    ckpt = load_checkpoint()
    model = ckpt.build_model()
    sources = [s["source"] for s in recorded]
    greedy = translate_texts(model, ckpt.tokenizer, sources, SearchOptions(beam_size=1))
    beam = translate_texts(model, ckpt.tokenizer, sources, SearchOptions(beam_size=4))
    assert greedy == [s["greedy"] for s in recorded]
    assert beam == [s["beam4"] for s in recorded]


def test_shipped_model_translates_test2016_well(multi30k: Path) -> None:
    """A quality floor on the first 200 sentences (README has the full-set numbers)."""
    sources = read_lines(multi30k / "test_2016_flickr.en.gz")[:200]
    references = read_lines(multi30k / "test_2016_flickr.de.gz")[:200]
    ckpt = load_checkpoint()
    hypotheses = translate_texts(
        ckpt.build_model(), ckpt.tokenizer, sources, SearchOptions(beam_size=1)
    )
    assert sacrebleu.corpus_bleu(hypotheses, [references]).score >= 35.0
