"""A glossary's terms in translations, measured as issue 36 asks.

Multi30k's test_2016_flickr (1,000 sentences), a glossary of common caption words mapped to rare
German synonyms the shipped model does not write on its own, through the same code the server runs
(service/usecase/glossary.py over service/decoding/alignment.py), one process, in order:
- term use: of the source terms found, how many have their target in the translation (and how
  many had it without the glossary: the baseline);
- BLEU of the sentences holding no term, with and without the glossary (sacrebleu, as
  ``tongyeok evaluate``);
- seconds for the whole set without a glossary and with it (translation, then finding, aligning
  and replacing the terms).

    .venv/bin/python -m bench.glossary [--package DIR]

Without ``--package``: the shipped model's int8 package from the cache.
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

import sacrebleu

from service.decoding.alignment import align_words
from service.decoding.translator import Translator
from service.usecase.glossary import Terms, apply_terms

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"

# Caption words and German words for them that are right but rare: the model writes the usual ones.
GLOSSARY = {
    "man": "Kerl",
    "men": "Kerle",
    "woman": "Dame",
    "women": "Damen",
    "girl": "Mädel",
    "boy": "Bub",
    "dog": "Köter",
    "child": "Gör",
    "children": "Gören",
    "street": "Gasse",
    "water": "Gewässer",
    "ball": "Kugel",
    "shirt": "Oberhemd",
    "hat": "Deckel",
    "car": "Karre",
    "bike": "Drahtesel",
    "bicycle": "Veloziped",
    "beach": "Gestade",
    "snow": "Schneedecke",
    "grass": "Rasenfläche",
    "red": "purpurn",
    "blue": "azurblau",
    "black": "rabenschwarz",
    "white": "schneeweiß",
    "green": "grasgrün",
    "young": "jugendlich",
    "little": "winzig",
    "large": "riesig",
    "old": "betagt",
    "building": "Bauwerk",
    "crowd": "Menschenauflauf",
    "city": "Großstadt",
    "park": "Grünanlage",
    "dress": "Gewand",
    "jacket": "Joppe",
    "baby": "Säugling",
    "guy": "Bursche",
    "player": "Akteur",
    "game": "Partie",
    "field": "Acker",
    "table": "Tafel",
    "food": "Speise",
    "boat": "Kahn",
    "horse": "Gaul",
    "sidewalk": "Trottoir",
    "rock": "Felsbrocken",
    "stage": "Podium",
    "camera": "Fotoapparat",
    "music": "Tonkunst",
    "guitar": "Klampfe",
    "mountain": "Anhöhe",
    "restaurant": "Gaststätte",
    "wall": "Gemäuer",
    "sun": "Gestirn",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", help="a package directory (default: the shipped int8 one)")
    args = parser.parse_args()
    if args.package is None:
        from export.onnx_export import ensure_package

        args.package = str(ensure_package(None, "int8"))
    translator = Translator(args.package)
    runtime, tokenizer = translator.runtime, translator.tokenizer
    with gzip.open(DATA / "test_2016_flickr.en.gz", "rt", encoding="utf-8") as f:
        sources = [line.strip() for line in f]
    with gzip.open(DATA / "test_2016_flickr.de.gz", "rt", encoding="utf-8") as f:
        references = [line.strip() for line in f]
    terms = Terms(GLOSSARY)
    translator.translate(sources[:64])  # warm up

    started = time.perf_counter()
    plain = translator.translate(sources)
    without = time.perf_counter() - started

    started = time.perf_counter()
    translated = translator.translate(sources)
    found = [(i, m) for i, s in enumerate(sources) if (m := terms.find(s))]
    pairs = [(sources[i], translated[i]) for i, _ in found]
    alignments = align_words(runtime, tokenizer, pairs, runtime.config.max_source_tokens)
    for (i, matches), alignment in zip(found, alignments, strict=True):
        if alignment is not None:
            translated[i] = apply_terms(translated[i], matches, alignment)
    with_glossary = time.perf_counter() - started

    occurrences = [(i, m) for i, ms in found for m in ms]
    used = sum(m.target.casefold() in translated[i].casefold() for i, m in occurrences)
    before = sum(m.target.casefold() in plain[i].casefold() for i, m in occurrences)
    untouched = [i for i in range(len(sources)) if i not in dict(found)]
    bleu = sacrebleu.metrics.BLEU()

    def score(outputs: list[str]) -> float:
        chosen = [outputs[i] for i in untouched]
        return float(bleu.corpus_score(chosen, [[references[i] for i in untouched]]).score)

    print(
        f"glossary: {len(GLOSSARY)} entries; {len(found)} of {len(sources)} sentences hold a term"
    )
    print(
        f"term use: {used}/{len(occurrences)} = {used / len(occurrences):.1%} "
        f"(without the glossary: {before}/{len(occurrences)})"
    )
    print(
        f"BLEU of the {len(untouched)} sentences without a term: "
        f"{score(plain):.2f} without, {score(translated):.2f} with the glossary"
    )
    print(
        f"seconds for {len(sources)} sentences: {without:.2f} without, {with_glossary:.2f} with "
        f"({without / with_glossary:.2f}x the speed)"
    )


if __name__ == "__main__":
    main()
