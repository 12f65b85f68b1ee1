"""The ``tongyeok`` command: one entry point, one subcommand per job.

Subcommands import their heavy dependencies (torch, onnxruntime) only when they run, so that
``tongyeok --help`` is instant and the serving commands never load torch.
"""

from __future__ import annotations

import argparse
import sys
import typing
from collections.abc import Sequence
from dataclasses import fields

from tongyeok import __version__

DESCRIPTION = "Tongyeok (통역): train, evaluate and serve Transformer machine translation."


def add_train(sub: argparse._SubParsersAction) -> None:
    from model.train_config import TrainConfig  # torch-free: the serving image has no torch

    p = sub.add_parser(
        "train",
        help="train a model (and its SentencePiece vocabulary) on parallel text",
        description="Train a Transformer on parallel text. Options come from --config (TOML) and "
        "are overridden by flags. Re-running with the same --out-dir resumes exactly from "
        "OUT_DIR/last.pt.",
        epilog="example: tongyeok train --config configs/en-de.toml "
        "--train-source data/train.en.gz --train-target data/train.de.gz",
    )
    p.add_argument("--config", help="TOML file with any of the options below")
    hints = typing.get_type_hints(TrainConfig)
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        default = getattr(defaults, f.name)
        if kind is bool:
            p.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"(default {default})",
            )
        elif f.name == "adam_betas":
            p.add_argument(flag, type=float, nargs=2, default=None, help=f"(default {default})")
        else:
            p.add_argument(flag, type=kind, default=None, help=f"(default {default!r})")
    p.set_defaults(run=run_train)


def run_train(args: argparse.Namespace) -> int:
    from model.train import TrainConfig, train

    config = TrainConfig.from_toml(args.config) if args.config else TrainConfig()
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    config = config.updated(overrides)
    for name in ("train_source",):
        if not getattr(config, name):
            raise SystemExit(f"tongyeok train: --{name.replace('_', '-')} is required")
    result = train(config)
    print(f"done: {result.steps} steps, checkpoints in {result.out_dir}")
    return 0


def add_search_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="checkpoint (.pt); default: the shipped English→German model")
    p.add_argument("--beam-size", type=int, default=4, help="1 = greedy (default 4)")
    p.add_argument("--length-penalty", type=float, default=1.0, help="(default 1.0)")
    p.add_argument(
        "--max-length-a",
        type=float,
        default=1.5,
        help="output budget a*source_tokens+b: a (default 1.5)",
    )
    p.add_argument("--max-length-b", type=int, default=10, help="... and b (default 10)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch (default 64)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")


def search_options(args: argparse.Namespace):
    from model.search import SearchOptions

    return SearchOptions(
        beam_size=args.beam_size,
        length_penalty=args.length_penalty,
        max_length_a=args.max_length_a,
        max_length_b=args.max_length_b,
    )


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
        "--engine",
        choices=("onnx", "torch"),
        default="onnx",
        help="onnx: the ONNX Runtime engine (default; a checkpoint is exported once into "
        "$TONGYEOK_CACHE_DIR, default ~/.cache/tongyeok); torch: the PyTorch reference",
    )
    p.set_defaults(run=run_translate)


def run_translate(args: argparse.Namespace) -> int:
    texts = args.texts or [line.rstrip("\n") for line in sys.stdin]
    if args.engine == "torch":
        from model.checkpoint import load_checkpoint
        from model.translate import set_threads, translate_texts

        set_threads(args.threads)
        ckpt = load_checkpoint(args.model)
        model = ckpt.build_model(args.device)
        lines = translate_texts(model, ckpt.tokenizer, texts, search_options(args), args.batch_size)
    else:
        from service.runtime import RuntimeOptions
        from service.translator import Translator

        if args.package:
            package = args.package
        else:
            from export.onnx_export import ensure_package

            package = ensure_package(args.model)
        providers = ("CUDAExecutionProvider",) if args.device == "cuda" else ()
        runtime = RuntimeOptions(
            providers=(*providers, "CPUExecutionProvider"), intra_op_threads=args.threads
        )
        translator = Translator(package, runtime)
        lines = translator.translate(texts, search_options(args), args.batch_size)
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
    add_search_flags(p)
    p.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    import json

    from model.evaluate import evaluate_files
    from model.translate import set_threads

    set_threads(args.threads)
    report = evaluate_files(
        args.model,
        args.source,
        args.reference,
        search_options(args),
        args.batch_size,
        args.device,
        args.output,
        args.package,
    )
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.text())
    return 0


def add_release(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "release",
        help="turn training checkpoints into one lean release checkpoint (averaged, fp16)",
        description="Average the weights of one or more checkpoints, drop the training state "
        "(optimizer, RNG) and write a checkpoint for use, optionally in fp16 (half the size; "
        "computation stays fp32).",
        epilog="example: tongyeok release runs/en-de/epoch*.pt --half "
        "--out model/pretrained/en-de.pt",
    )
    p.add_argument("checkpoints", nargs="+", help="checkpoints to average (one: copied as is)")
    p.add_argument("--out", required=True, help="where to write the release checkpoint")
    p.add_argument("--half", action="store_true", help="store weights in fp16")
    p.add_argument(
        "--samples",
        action="store_true",
        help="also record translations of a few sample sentences in OUT.samples.json "
        "(the shipped model's tests check them)",
    )
    p.set_defaults(run=run_release)


def run_release(args: argparse.Namespace) -> int:
    from pathlib import Path

    from model.checkpoint import average_checkpoints, load_checkpoint

    paths = [Path(p) for p in args.checkpoints]
    ckpt = load_checkpoint(paths[-1])
    if len(paths) > 1:
        ckpt.state_dict = average_checkpoints(paths)
        ckpt.metadata["averaged"] = [p.name for p in paths]
    ckpt.train_state = None
    ckpt.save(args.out, half=args.half)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB)")
    if args.samples:
        import json

        from model.evaluate import record_samples

        samples = Path(args.out).with_suffix(".samples.json")
        samples.write_text(
            json.dumps(record_samples(args.out), indent=2, ensure_ascii=False) + "\n"
        )
        print(f"wrote {samples}")
    return 0


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint to an ONNX model package (encoder + KV-cached decoder)",
        description="Write a model package: encoder.onnx, decoder.onnx, tokenizer.model, "
        "config.json and manifest.json (SHA-256 of every file). The package is what the service "
        "loads, with ONNX Runtime alone. Then check it against PyTorch on a few sentences.",
        epilog="example: tongyeok export --out models/en-de  (the shipped model, fp32)",
    )
    p.add_argument("checkpoint", nargs="?", help="checkpoint (.pt); default: the shipped model")
    p.add_argument("--out", required=True, help="package directory to write (replaced if present)")
    p.add_argument("--precision", default="fp32", help="fp32 (default), fp16 (GPUs) or int8 (CPU)")
    p.add_argument("--name", help="package name (default: SOURCE-TARGET, e.g. en-de)")
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the parity check against PyTorch",
    )
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from export.onnx_export import export_package

    out = export_package(args.checkpoint, args.out, args.precision, args.name)
    print(f"wrote {out}")
    if args.verify:
        from export.verify import check_package

        print(check_package(args.checkpoint, out))
    return 0


def add_export_hf(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-hf",
        help="export a checkpoint as a Hugging Face MarianMTModel directory (for Transformers, "
        "CTranslate2)",
        description="Write the same weights as a MarianMTModel directory with MarianTokenizer "
        "files. Transformers loads it (from_pretrained) and CTranslate2 converts it "
        "(ct2-transformers-converter --model DIR --output_dir CT2_DIR). Needs the 'hf' extra.",
        epilog="example: tongyeok export-hf --out hf/en-de",
    )
    p.add_argument("checkpoint", nargs="?", help="checkpoint (.pt); default: the shipped model")
    p.add_argument("--out", required=True, help="directory to write")
    p.set_defaults(run=run_export_hf)


def run_export_hf(args: argparse.Namespace) -> int:
    from export.hf import export_hf

    print(f"wrote {export_hf(args.checkpoint, args.out)}")
    return 0


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmarks (side-by-side ratios in one run)",
        description="Benchmarks that print ratios against a baseline run side by side.",
    )
    which = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    e = which.add_parser(
        "export",
        help="KV cache vs none, graph optimization levels, fp32 vs int8/fp16 (greedy, ONNX)",
        description="Export the checkpoint in every precision to a temporary directory and time "
        "greedy decoding over the packages: with and without the KV cache, at each ONNX Runtime "
        "graph optimization level, and per precision.",
        epilog="example: tongyeok bench export --source data/test_2016_flickr.en.gz "
        "--sentences 256 --output docs/bench/export-cpu.md",
    )
    e.add_argument("checkpoint", nargs="?", help="checkpoint (.pt); default: the shipped model")
    e.add_argument("--source", help="sentences to translate, one per line (default: built-in)")
    e.add_argument("--sentences", type=int, default=256, help="how many (default 256)")
    e.add_argument("--batch-size", type=int, default=32, help="(default 32)")
    e.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    e.add_argument("--repeats", type=int, default=3, help="timed runs, best kept (default 3)")
    e.add_argument("--output", help="also write the markdown table to this file")
    e.set_defaults(run=run_bench_export)

    g = which.add_parser(
        "engine",
        help="target tokens/s: Tongyeok fp32/int8 vs CTranslate2 float32/int8 vs PyTorch",
        description="Decode the same sentences with the same weights, threads and forced output "
        "length in every engine, at several batch sizes, greedy and beam; for the shipped model "
        "and a Transformer-base-sized one with random weights. Needs the 'hf' extra "
        "(transformers, ctranslate2).",
        epilog="example: tongyeok bench engine --source data/test_2016_flickr.en.gz "
        "--output docs/bench/engine-cpu.md",
    )
    g.add_argument("checkpoint", nargs="?", help="checkpoint (.pt); default: the shipped model")
    g.add_argument("--source", help="sentences, one per line (default: built-in samples)")
    g.add_argument("--sentences", type=int, default=64, help="per configuration (default 64)")
    g.add_argument(
        "--sentences-batch1", type=int, default=16, help="sentences at batch size 1 (default 16)"
    )
    g.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    g.add_argument("--beams", type=int, nargs="+", default=[1, 4])
    g.add_argument("--tokens", type=int, default=32, help="forced output length (default 32)")
    g.add_argument("--threads", type=int, default=2, help="(default 2)")
    g.add_argument("--sizes", nargs="+", default=["shipped", "base"], choices=["shipped", "base"])
    g.add_argument("--output", help="also write the markdown table to this file")
    g.set_defaults(run=run_bench_engine)

    v = which.add_parser(
        "serve",
        help="closed-loop HTTP load: continuous vs request-level vs no batching",
        description="Start 'tongyeok serve' on loopback once per batching policy and drive it "
        "with N concurrent clients sending real sentences; print throughput and p50/p95/p99 "
        "latency, and the engine's own throughput for the HTTP + scheduler overhead.",
        epilog="example: tongyeok bench serve --model-repository models "
        "--source data/test_2016_flickr.en.gz --output docs/bench/serve-cpu.md",
    )
    v.add_argument("--model-repository", default="models", help="(default models)")
    v.add_argument("--source", help="sentences, one per line (default: built-in samples)")
    v.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    v.add_argument("--seconds", type=float, default=15.0, help="per run (default 15)")
    v.add_argument("--beam", type=int, default=1, help="(default 1)")
    v.add_argument("--threads", type=int, default=2, help="server threads (default 2)")
    v.add_argument("--policies", nargs="+", default=["continuous", "request", "none"])
    v.add_argument(
        "--mixed-rate",
        type=float,
        default=0.0,
        help="also offer half short, half long sentences open-loop at this many req/s to "
        "continuous and request-level batching in turns (3 rounds of --seconds each), for "
        "short-sentence latency at equal throughput (default: off)",
    )
    v.add_argument("--output", help="also write the markdown table to this file")
    v.set_defaults(run=run_bench_serve)

    c = which.add_parser(
        "capacity",
        help="open-loop load: the highest req/s whose p97 latency stays within 250 ms",
        description="MLPerf's server scenario: Poisson arrivals of one-sentence requests at a "
        "fixed rate; the rate doubles until the tail latency passes the bound, then is bisected. "
        "Starts 'tongyeok serve' on loopback, or drives a running server given --url.",
        epilog="example: tongyeok bench capacity --source data/test_2016_flickr.en.gz "
        "--output docs/bench/capacity-cpu.md",
    )
    c.add_argument("--model-repository", default="models", help="(default models)")
    c.add_argument("--url", help="a running server (http://HOST:PORT) instead of starting one")
    c.add_argument("--source", help="sentences, one per line (default: built-in samples)")
    c.add_argument("--seconds", type=float, default=30.0, help="per trial (default 30)")
    c.add_argument("--bound-ms", type=float, default=250.0, help="(default 250)")
    c.add_argument("--quantile", type=float, default=0.97, help="(default 0.97)")
    c.add_argument("--start-rate", type=float, default=25.0, help="req/s (default 25)")
    c.add_argument("--refine", type=int, default=4, help="bisection steps (default 4)")
    c.add_argument("--threads", type=int, default=2, help="server threads (default 2)")
    c.add_argument("--output", help="also write the markdown table to this file")
    c.set_defaults(run=run_bench_capacity)


def bench_texts(source: str | None, count: int | None = None) -> list[str]:
    """Benchmark sentences: the file's lines (or the built-in samples), cycled to ``count``."""
    from model.data import read_lines
    from model.evaluate import SAMPLE_SOURCES

    texts = read_lines(source) if source else SAMPLE_SOURCES
    return texts if count is None else (texts * (count // len(texts) + 1))[:count]


def print_table(table: str, output: str | None) -> None:
    from pathlib import Path

    print(table)
    if output:
        Path(output).write_text(table + "\n", encoding="utf-8")


def run_bench_export(args: argparse.Namespace) -> int:
    from export.bench import markdown, run_bench
    from model.checkpoint import load_checkpoint

    texts = bench_texts(args.source, args.sentences)
    ckpt = load_checkpoint(args.checkpoint)
    sources = ckpt.tokenizer.encode_batch(texts)
    rows = run_bench(
        args.checkpoint, sources, ckpt.config.eos_id, args.batch_size, args.threads, args.repeats
    )
    print_table(markdown(rows, len(texts), args.batch_size, args.threads), args.output)
    return 0


def run_bench_engine(args: argparse.Namespace) -> int:
    from export.bench_engine import markdown, run_bench
    from model.checkpoint import load_checkpoint

    texts = bench_texts(args.source, args.sentences)
    sources = load_checkpoint(args.checkpoint).tokenizer.encode_batch(texts)
    results = run_bench(
        sources,
        args.checkpoint,
        args.batches,
        args.beams,
        args.tokens,
        args.threads,
        args.sentences_batch1,
        args.sizes,
    )
    print_table(markdown(results, args.threads, args.tokens), args.output)
    return 0


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve translations over HTTP (ONNX Runtime only, no torch)",
        description="Serve every model package in the model repository over HTTP with "
        "continuous batching. Every flag is also an environment variable (TONGYEOK_HOST, ...); "
        "flags win.",
        epilog="example: tongyeok export --out models/en-de && tongyeok serve --port 8000",
    )
    p.add_argument("--host", help="address to listen on (TONGYEOK_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (TONGYEOK_PORT, default 8000)")
    p.add_argument(
        "--model-repository",
        help="directory of model packages (TONGYEOK_MODEL_REPOSITORY, default models)",
    )
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    from service.server import serve
    from service.settings import Settings

    overrides = {
        k: v
        for k, v in {
            "host": args.host,
            "port": args.port,
            "model_repository": args.model_repository,
        }.items()
        if v
    }
    serve(Settings(**overrides))
    return 0


def run_bench_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from service.bench import compare_mixed, engine_throughput, markdown, run_bench

    texts = bench_texts(args.source)
    repository = Path(args.model_repository)
    results = run_bench(
        repository, texts, args.clients, args.seconds, args.beam, args.threads, args.policies
    )
    mixed_results = (
        compare_mixed(repository, texts, args.mixed_rate, args.seconds, 3, args.beam, args.threads)
        if args.mixed_rate
        else []
    )
    engine = {
        n: engine_throughput(repository, texts[:512], n, args.beam, args.threads)
        for n in args.clients
        if n > 1
    }
    print_table(markdown(results, engine, args.threads, args.beam, mixed_results), args.output)
    return 0


def run_bench_capacity(args: argparse.Namespace) -> int:
    import urllib.parse
    from pathlib import Path

    from service.bench import (
        capacity,
        capacity_markdown,
        free_port,
        machine_description,
        start_server,
    )

    texts = bench_texts(args.source)
    bound = args.bound_ms / 1000
    proc = None
    if args.url:
        url = urllib.parse.urlsplit(args.url)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        setup = f"Server at {args.url}; the load generator runs on this machine."
    else:
        host, port = "127.0.0.1", free_port()
        proc = start_server(Path(args.model_repository), "continuous", args.threads, port)
        setup = (
            f"`tongyeok serve` on loopback with TONGYEOK_THREADS={args.threads} and default "
            "settings otherwise (translation cache off), the load generator in another process "
            "on the same machine."
        )
    try:
        best, trials = capacity(
            port,
            texts,
            bound,
            args.quantile,
            args.seconds,
            args.start_rate,
            args.refine,
            host=host,
        )
    finally:
        if proc:
            proc.terminate()
            proc.wait(60)
    table = capacity_markdown(best, trials, bound, args.quantile, machine_description(), setup)
    print_table(table, args.output)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tongyeok", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"tongyeok {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_train(sub)
    add_evaluate(sub)
    add_translate(sub)
    add_release(sub)
    add_export(sub)
    add_export_hf(sub)
    add_bench(sub)
    add_serve(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as exc:  # our typed errors carry user-facing messages
        print(f"tongyeok {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
