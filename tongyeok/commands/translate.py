"""Commands that turn text into translations: ``translate`` and ``evaluate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from contract.options import OPTIONS, SearchOptions
from service.runtime.providers import NAMED_DEVICES
from tongyeok.progress import add_progress_flag, in_chunks, wanted

# Lines per update of the progress bar, in batches: the engine drains its batch at the end of each
# chunk, so a chunk spans several batches, the lines sorted by length across chunks (no
# measurable CPU time lost against one call: docs/decisions.md #46).
CHUNK_BATCHES = 4


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


def add_engine_flags(p: argparse.ArgumentParser) -> None:
    """Which engine translates, the same for ``translate`` and ``evaluate``."""
    p.add_argument("--package", help="an exported model package to use instead of --model")
    p.add_argument(
        "--engine",
        choices=("onnx", "torch"),
        default="onnx",
        help="onnx: the ONNX Runtime engine (default; a checkpoint is exported once into "
        "$TONGYEOK_CACHE_DIR, default ~/.cache/tongyeok, in the device's precision: int8 on a "
        "CPU); torch: the PyTorch reference (needs torch; about 9x slower)",
    )
    add_progress_flag(p)


def search_options(args: argparse.Namespace) -> SearchOptions:
    return SearchOptions.of(args)


def add_translate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "translate",
        help="translate sentences given as arguments, in a file or on stdin (one per line)",
        description="Translate each argument, or each line of --input (default: stdin), and write "
        "one line per input in the same order to --output (default: stdout), with the ONNX "
        "Runtime engine. Without --model or --package, uses the shipped English→German model.",
        epilog='example: echo "A dog runs on the beach." | tongyeok translate\n'
        "         tongyeok translate --input news.en --output news.de",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("texts", nargs="*", help="sentences to translate (default: read --input)")
    p.add_argument("--input", help="file of sentences, one per line ('-': stdin, the default)")
    p.add_argument("--output", help="file to write the translations to ('-': stdout, the default)")
    add_search_flags(p)
    add_engine_flags(p)
    p.add_argument(
        "--target", help="with --package: which target of a multi-target package (default: first)"
    )
    p.set_defaults(run=run_translate)


def text_translator(
    args: argparse.Namespace, show: bool = False
) -> tuple[Callable[[list[str]], list[str]], str]:
    """Lines in, lines out, and what translates them: the ONNX engine over --package (or the
    checkpoint exported once into the cache), or the PyTorch reference with --engine torch.
    ``show``: say on stderr when the checkpoint is exported (once, tens of seconds)."""
    options = search_options(args)
    if args.engine == "torch" and not args.package:
        from model.checkpoint import load_checkpoint
        from model.translate import set_threads, translate_texts

        set_threads(args.threads)
        ckpt = load_checkpoint(args.model)
        model = ckpt.build_model(args.device)
        return (
            lambda texts: translate_texts(model, ckpt.tokenizer, texts, options, args.batch_size),
            "torch",
        )
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

            if show:
                print(
                    f"tongyeok {args.command}: exporting {args.model or 'the shipped model'} "
                    f"({device.precision}) into the cache, once ...",
                    file=sys.stderr,
                    flush=True,
                )
            package = ensure_package(*key)
    runtime = RuntimeOptions(providers=device.providers, intra_op_threads=args.threads)
    translator = Translator(package, runtime, getattr(args, "target", None))
    label = f"onnx {translator.runtime.config.precision}"
    return lambda texts: translator.translate(texts, options, args.batch_size), label


def read_input(name: str) -> list[str]:
    """The lines of ``name`` ('-': stdin), without their line endings."""
    if name == "-":
        return [line.rstrip("\n") for line in sys.stdin]
    path = Path(name)
    if not path.is_file():
        raise ValueError(f"--input {name}: no such file")
    with path.open(encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def write_output(name: str, lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    if name == "-":
        sys.stdout.write(text)
    else:
        Path(name).write_text(text, encoding="utf-8")


def with_progress(
    translate: Callable[[list[str]], list[str]], args: argparse.Namespace, show: bool
) -> Callable[[list[str]], list[str]]:
    return in_chunks(translate, CHUNK_BATCHES * args.batch_size, args.command, show)


def run_translate(args: argparse.Namespace) -> int:
    if args.texts and args.input:
        raise ValueError("give sentences as arguments or --input, not both")
    # a bar for files, not for a sentence or two given as arguments (or when asked)
    show = args.progress if args.progress is not None else bool(args.input) and wanted(None)
    texts = args.texts or read_input(args.input or "-")
    translate, _ = text_translator(args, show)
    write_output(args.output or "-", with_progress(translate, args, show)(texts))
    return 0


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="sacreBLEU and chrF of a model on a source/reference pair of files",
        description="Translate SOURCE and score it against REFERENCE with sacreBLEU (13a, cased, "
        "detokenized) and chrF; prints the scores with sacrebleu's signatures and the engine. "
        "Uses the ONNX Runtime engine, as 'tongyeok translate' does (--engine torch: the "
        "PyTorch reference).",
        epilog="example: tongyeok evaluate data/test_2016_flickr.en.gz "
        "data/test_2016_flickr.de.gz --beam-size 4",
    )
    p.add_argument("source", help="source sentences, one per line (.gz allowed)")
    p.add_argument("reference", help="reference translations, line-aligned with SOURCE")
    p.add_argument("--output", help="also write the translations to this file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_search_flags(p)
    add_engine_flags(p)
    p.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    from model.evaluate import evaluate_lines, read_pair

    sources, references = read_pair(args.source, args.reference)  # refused before any export
    show = wanted(args.progress)
    translate, engine = text_translator(args, show)
    translate = with_progress(translate, args, show)
    report = evaluate_lines(translate, sources, references, args.beam_size, args.output, engine)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    add_translate(sub)
    add_evaluate(sub)
