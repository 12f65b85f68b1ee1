"""Tags placed by alignment against tags placed by translating the tagged pieces alone.

For N sentences of Multi30k's test_2016_flickr, one word (the longest) wrapped in ``<b>``, both
ways through ``translate_markup`` over one package, in this process, in the same order:
- how often the translation with the tag differs from the sentence's translation without it
  (the sentence cut into fragments, or words changed by the tag);
- seconds per sentence for each way (the aligner run against the pieces' own translations).

    .venv/bin/python -m bench.tag_alignment [--package DIR] [--sentences 200]

Without ``--package`` the shipped model's int8 package from the cache.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import re
import time
from pathlib import Path

from service.decoding.alignment import WordAlignment, align_words
from service.decoding.translator import Translator
from service.usecase.markup import TagOptions, translate_markup

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "multi30k"


def tagged(sentence: str) -> str:
    words = sentence.split(" ")
    longest = max(range(len(words)), key=lambda i: len(words[i].strip(".,")))
    word = words[longest]
    core = word.rstrip(".,")
    words[longest] = f"<b>{core}</b>{word[len(core) :]}"
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", help="a package directory (default: the shipped int8 one)")
    parser.add_argument("--sentences", type=int, default=200)
    args = parser.parse_args()
    if args.package is None:
        from export.onnx_export import ensure_package

        args.package = str(ensure_package(None, "int8"))
    translator = Translator(args.package, None)
    with gzip.open(DATA / "test_2016_flickr.en.gz", "rt", encoding="utf-8") as f:
        sentences = [line.strip() for line in f][: args.sentences]
    documents = [tagged(s) for s in sentences]
    plain = [translator.translate([s])[0] for s in sentences]  # alone, as the markup path does

    async def translate(texts: list[str]) -> list[str]:
        return translator.translate(texts)

    async def align(pairs: list[tuple[str, str]]) -> list[WordAlignment | None]:
        return align_words(translator.runtime, translator.tokenizer, pairs, 500)

    for name, aligner in (("alignment", align), ("pieces", None)):
        started = time.perf_counter()
        out = [
            asyncio.run(translate_markup([d], TagOptions(), translate, aligner))[0]
            for d in documents
        ]
        seconds = (time.perf_counter() - started) / len(documents)
        changed = sum(re.sub(r"</?b>", "", o) != p for o, p in zip(out, plain, strict=True))
        print(
            f"{name:>9}: {changed}/{len(out)} translations changed by the tag, "
            f"{seconds * 1000:.1f} ms per sentence"
        )
        for o in out[:3]:
            print("           ", o)


if __name__ == "__main__":
    main()
