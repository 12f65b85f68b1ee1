"""Commands that turn text into translations: ``translate`` and ``evaluate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from contract.options import OPTIONS, SearchOptions
from service.runtime.providers import NAMED_DEVICES


def add_search_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="checkpoint (.pt); default: the shipped English→German model")
    for option in OPTIONS:  # each decoding option's flag, from its one declaration
        if "cli" in option.on:
            p.add_argument(
                "--" + option.name.replace("_", "-"),
                type=option.kind,
                default=option.default,
                help=f"{option.help} (default {option.default})",
            )
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch (default 64)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    p.add_argument(
        "--device",
        default="cpu",
        choices=NAMED_DEVICES,
        help=f"{', '.join(NAMED_DEVICES[:-1])} or {NAMED_DEVICES[-1]} (default cpu)",
    )


def search_options(args: argparse.Namespace) -> SearchOptions:
    return SearchOptions.of(args)


def add_translate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "translate",
        help="translate sentences given as arguments or on stdin (one per line)",
        description="Translate each argument, or each line of stdin, and print one line per "
        "input in the same order, with the ONNX Runtime engine. Without --model or --package, "
        "uses the shipped English→German model.",
        epilog='example: echo "A dog runs on the beach." | tongyeok translate',
    )
    p.add_argument("texts", nargs="*", help="sentences to translate (default: read stdin)")
    add_search_flags(p)
    p.add_argument("--package", help="an exported model package to use instead of --model")
    p.add_argument(
        "--target", help="with --package: which target of a multi-target package (default: first)"
    )
    p.add_argument(
        "--engine",
        choices=("onnx", "torch"),
        default="onnx",
        help="onnx: the ONNX Runtime engine (default; a checkpoint is exported once into "
        "$TONGYEOK_CACHE_DIR, default ~/.cache/tongyeok); torch: the PyTorch reference",
    )
    p.set_defaults(run=run_translate)


def text_translator(args: argparse.Namespace) -> Callable[[list[str]], list[str]]:
    """Lines in, lines out: the ONNX engine over --package (or the checkpoint exported once into
    the cache), or the PyTorch reference with --engine torch."""
    options = search_options(args)
    if args.engine == "torch" and not args.package:
        from model.checkpoint import load_checkpoint
        from model.translate import set_threads, translate_texts

        set_threads(args.threads)
        ckpt = load_checkpoint(args.model)
        model = ckpt.build_model(args.device)
        return lambda texts: translate_texts(model, ckpt.tokenizer, texts, options, args.batch_size)
    from service.decoding.translator import Translator
    from service.runtime.providers import resolve
    from service.runtime.sessions import RuntimeOptions

    device = resolve(args.device)
    if args.package:
        package = args.package
    else:
        from export.package_cache import cached_package

        # the precision and cache layout the device's profile asks for (int8 on a CPU); the
        # exporter (and torch, seconds to import) only when the cache has no package yet
        key = (args.model, device.precision, device.cache_layout)
        package = cached_package(*key)
        if package is None:
            from export.onnx_export import ensure_package

            package = ensure_package(*key)
    runtime = RuntimeOptions(providers=device.providers, intra_op_threads=args.threads)
    translator = Translator(package, runtime, getattr(args, "target", None))
    return lambda texts: translator.translate(texts, options, args.batch_size)


def run_translate(args: argparse.Namespace) -> int:
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
    lines = text_translator(args)(texts)
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="sacreBLEU and chrF of a model on a source/reference pair of files",
        description="Translate SOURCE and score it against REFERENCE with sacreBLEU (13a, cased, "
        "detokenized) and chrF; prints the scores with sacrebleu's signatures.",
        epilog="example: tongyeok evaluate data/test_2016_flickr.en.gz "
        "data/test_2016_flickr.de.gz --beam-size 4",
    )
    p.add_argument("source", help="source sentences, one per line (.gz allowed)")
    p.add_argument("reference", help="reference translations, line-aligned with SOURCE")
    p.add_argument("--output", help="also write the translations to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--package", help="evaluate an exported package with the ONNX engine instead")
    p.set_defaults(engine="torch")  # the checkpoint through the PyTorch reference
    add_search_flags(p)
    p.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    from model.evaluate import evaluate_files

    report = evaluate_files(
        text_translator(args), args.source, args.reference, args.beam_size, args.output
    )
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    add_translate(sub)
    add_evaluate(sub)
