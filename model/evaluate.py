"""Corpus-level quality: sacreBLEU (13a, cased, detokenized) and chrF, with their signatures."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sacrebleu

from model.lines import DataError, read_lines  # torch-free: the ONNX engine's evaluation needs none

# A few sentences of test_2016_flickr to spot-check a model (the test set is not shipped).
SAMPLE_SOURCES = [
    "A man in an orange hat starring at something.",
    "A Boston Terrier is running on lush green grass in front of a white fence.",
    "A girl in karate uniform breaking a stick with a front kick.",
    "Five people wearing winter jackets and helmets stand in the snow, with snowmobiles in the "
    "background.",
    "People are fixing the roof of a house.",
    "Dogs",
]


def record_samples(checkpoint: str | Path) -> dict[str, object]:
    """Translations of SAMPLE_SOURCES, greedy and beam 4, to ship beside a released checkpoint:
    a test checks that the checkpoint still produces them."""
    from model.checkpoint import load_checkpoint
    from model.search import SearchOptions
    from model.translate import translate_texts

    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build_model()
    greedy = translate_texts(model, ckpt.tokenizer, SAMPLE_SOURCES, SearchOptions(beam_size=1))
    beam = translate_texts(model, ckpt.tokenizer, SAMPLE_SOURCES, SearchOptions(beam_size=4))
    return {
        "source_lang": ckpt.source_lang,
        "target_lang": ckpt.target_lang,
        "samples": [
            {"source": s, "greedy": g, "beam4": b}
            for s, g, b in zip(SAMPLE_SOURCES, greedy, beam, strict=True)
        ],
    }


@dataclass(frozen=True)
class Report:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    sentences: int
    seconds: float
    beam_size: int
    engine: str = ""  # what translated: "onnx int8", "torch", ...

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)

    def text(self) -> str:
        return (
            f"BLEU = {self.bleu:.2f}  ({self.bleu_signature})\n"
            f"chrF = {self.chrf:.2f}  ({self.chrf_signature})\n"
            f"{self.sentences} sentences, beam {self.beam_size}, {self.seconds:.1f} s"
            + (f", {self.engine}" if self.engine else "")
        )


def score(hypotheses: list[str], references: list[str]) -> tuple[float, float, str, str]:
    """(BLEU, chrF, their signatures) with sacrebleu's defaults: 13a tokenization, cased."""
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    b = bleu.corpus_score(hypotheses, [references])
    c = chrf.corpus_score(hypotheses, [references])
    return b.score, c.score, str(bleu.get_signature()), str(chrf.get_signature())


def read_pair(source: str | Path, reference: str | Path) -> tuple[list[str], list[str]]:
    """The source and reference lines, refused unless line-aligned (before any model loads)."""
    sources, references = read_lines(source), read_lines(reference)
    if len(sources) != len(references):
        raise DataError(
            f"line counts differ: {source} has {len(sources)} lines, "
            f"{reference} has {len(references)}"
        )
    return sources, references


def evaluate_lines(
    translate: Callable[[list[str]], list[str]],
    sources: list[str],
    references: list[str],
    beam_size: int,
    output: str | Path | None = None,
    engine: str = "",
) -> Report:
    """Translate ``sources`` with ``translate`` (the ONNX engine or the PyTorch reference: the
    caller picks, so this module imports neither the service nor torch) and score them against
    ``references``; only the translation is timed."""
    started = time.perf_counter()
    hypotheses = translate(sources)
    seconds = time.perf_counter() - started
    if output:
        Path(output).write_text("".join(h + "\n" for h in hypotheses), encoding="utf-8")
    bleu, chrf, bleu_sig, chrf_sig = score(hypotheses, references)
    return Report(bleu, chrf, bleu_sig, chrf_sig, len(sources), seconds, beam_size, engine)
