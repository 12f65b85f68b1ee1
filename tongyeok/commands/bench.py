"""``tongyeok bench ...``: the benchmarks in ``bench/``, beside the product.

Each benchmark's ``add_*`` declares its sub-command and the ``run_*`` beside it runs it; the flags
several benchmarks take are declared once, in ``SHARED_FLAGS``.
"""

from __future__ import annotations

import argparse
from typing import Any

from service.runtime.providers import NAMED_DEVICES

# The flags several benchmarks take, each declared once (``add_shared``). ``--threads`` here is
# the server's, for the benchmarks that start one; export and engine declare their own.
SHARED_FLAGS: dict[str, dict[str, Any]] = {
    "checkpoint": {"nargs": "?", "help": "checkpoint (.pt); default: the shipped model"},
    "--model-repository": {"default": "models", "help": "(default models)"},
    "--source": {"help": "sentences, one per line (default: built-in samples)"},
    "--threads": {"type": int, "default": 2, "help": "server threads (default 2)"},
    "--output": {"help": "also write the markdown table to this file"},
}


def add_shared(parser: argparse.ArgumentParser, *flags: str) -> None:
    """Add ``flags`` to ``parser`` as ``SHARED_FLAGS`` declares them, in the order given."""
    for flag in flags:
        parser.add_argument(flag, **SHARED_FLAGS[flag])


def comma_list(value: str) -> list[str]:
    return [n.strip() for n in value.split(",") if n.strip()]


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmarks (side-by-side ratios in one run)",
        description="Benchmarks that print ratios against a baseline run side by side.",
    )
    which = p.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for add in (add_export, add_engine, add_serve, add_capacity, add_soak):
        add(which)


def add_export(which: argparse._SubParsersAction) -> None:
    e = which.add_parser(
        "export",
        help="KV cache vs none, graph optimization levels, fp32 vs int8/fp16 (greedy, ONNX)",
        description="Export the checkpoint in every precision to a temporary directory and time "
        "greedy decoding over the packages: with and without the KV cache, at each ONNX Runtime "
        "graph optimization level, and per precision.",
        epilog="example: tongyeok bench export --source data/test_2016_flickr.en.gz "
        "--sentences 256 --output docs/bench/export-cpu.md",
    )
    add_shared(e, "checkpoint")
    e.add_argument("--source", help="sentences to translate, one per line (default: built-in)")
    e.add_argument("--sentences", type=int, default=256, help="how many (default 256)")
    e.add_argument("--batch-size", type=int, default=32, help="(default 32)")
    e.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    e.add_argument("--repeats", type=int, default=3, help="timed runs, best kept (default 3)")
    add_shared(e, "--output")
    e.set_defaults(run=run_bench_export)


def run_bench_export(args: argparse.Namespace) -> int:
    from bench.export import markdown, run_bench
    from model.checkpoint import load_checkpoint

    texts = bench_texts(args.source, args.sentences)
    ckpt = load_checkpoint(args.checkpoint)
    sources = ckpt.tokenizer.encode_batch(texts)
    rows = run_bench(
        args.checkpoint, sources, ckpt.config.eos_id, args.batch_size, args.threads, args.repeats
    )
    print_table(markdown(rows, len(texts), args.batch_size, args.threads), args.output)
    return 0


def add_engine(which: argparse._SubParsersAction) -> None:
    g = which.add_parser(
        "engine",
        help="target tokens/s: Tongyeok fp32/int8 vs CTranslate2 float32/int8, Transformers, "
        "PyTorch",
        description="Decode the same sentences with the same weights, forced output length "
        "and batches (file order) in every engine, at several batch sizes, greedy and beam, "
        "each engine at every --threads count and judged by its best (the table names the "
        "count); each measurement in a fresh process that loads only that engine, with the CPU "
        "time of other processes recorded (contended runs are flagged); on the CPU, each "
        "engine's rate of the weight products it must do, as a share of a lone MatMul's best "
        "on this machine (the ceiling, measured first). For the shipped model, "
        "a Transformer-base-sized one with random weights, and OPUS-MT's shape (d=512, 6+6, "
        "58,101 ids, random) imported from a Marian directory built on the fly. Needs the 'hf' "
        "extra (transformers, ctranslate2). With the defaults it takes about 40 minutes per "
        "thread count on 2 cores (shipped 5, base 20, opus 15), so twice that with the default "
        "two counts; '--models shipped,base' skips OPUS-MT, '--threads 2' measures one count.",
        epilog="example: tongyeok bench engine --source data/test_2016_flickr.en.gz "
        "--output docs/bench/engine-cpu.md",
    )
    add_shared(g, "checkpoint", "--source")
    g.add_argument("--sentences", type=int, default=64, help="per configuration (default 64)")
    g.add_argument(
        "--sentences-batch1", type=int, default=16, help="sentences at batch size 1 (default 16)"
    )
    g.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    g.add_argument("--beams", type=int, nargs="+", default=[1, 4])
    g.add_argument("--tokens", type=int, default=32, help="forced output length (default 32)")
    g.add_argument(
        "--threads",
        type=int,
        nargs="+",
        help="intra-op thread counts to measure every engine at, its best reported (default: 1 "
        "and the usable cores, e.g. 1 2 on 2 cores; each count adds a full run's time)",
    )
    g.add_argument(
        "--models",
        type=comma_list,
        help="comma-separated, from shipped, base, opus (default: all three)",
    )
    g.add_argument(
        "--opus-batches",
        type=int,
        nargs="+",
        help="the --batches the OPUS-MT model runs, as each of its steps costs about twice "
        "base's (default 1 32)",
    )
    g.add_argument(
        "--opus-sentences-batch1",
        type=int,
        help="the OPUS-MT model's sentences at batch size 1 (default 8)",
    )
    g.add_argument(
        "--engines",
        nargs="+",
        default=None,
        help="(default: all on the CPU; on CUDA tongyeok fp32/fp16 and transformers [fp16])",
    )
    g.add_argument(
        "--device",
        choices=NAMED_DEVICES,
        default="cpu",
        help="cuda: every engine on the GPU (ONNX Runtime's CUDA provider, Transformers on CUDA)",
    )
    g.add_argument("--repeats", type=int, default=3, help="timed runs, median kept (default 3)")
    add_shared(g, "--output")
    g.set_defaults(run=run_bench_engine)


def run_bench_engine(args: argparse.Namespace) -> int:
    from bench.engine_race import default_engines, run_bench, thread_counts
    from bench.race_report import markdown

    threads = thread_counts(args.threads)  # a bad count fails before minutes of building
    texts = bench_texts(args.source, args.sentences)
    given = {
        "models": args.models,
        "opus_batches": args.opus_batches,
        "opus_sentences_batch1": args.opus_sentences_batch1,
    }
    bench = run_bench(
        texts,
        args.checkpoint,
        args.batches,
        args.beams,
        args.tokens,
        threads,
        args.sentences_batch1,
        engines=args.engines or default_engines(args.device),
        repeats=args.repeats,
        device=args.device,
        **{k: v for k, v in given.items() if v is not None},  # else run_bench's defaults
    )
    machine = machine_and_commit()
    print_table(markdown(bench.results, args.tokens, machine, bench.ceilings), args.output)
    return 0


def add_serve(which: argparse._SubParsersAction) -> None:
    v = which.add_parser(
        "serve",
        help="closed-loop HTTP load: continuous vs request-level vs no batching",
        description="Start 'tongyeok serve' on loopback once per batching policy and drive it "
        "with N concurrent clients sending real sentences; print throughput and p50/p95/p99 "
        "latency, and the engine's own throughput for the HTTP + scheduler overhead.",
        epilog="example: tongyeok bench serve --model-repository models "
        "--source data/test_2016_flickr.en.gz --output docs/bench/serve-cpu.md",
    )
    add_shared(v, "--model-repository", "--source")
    v.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    v.add_argument("--seconds", type=float, default=15.0, help="per run (default 15)")
    v.add_argument("--beam", type=int, default=1, help="(default 1)")
    add_shared(v, "--threads")
    v.add_argument("--policies", nargs="+", default=["continuous", "request", "none"])
    v.add_argument(
        "--mixed-rate",
        type=float,
        default=0.0,
        help="also offer half short, half long sentences open-loop at this many req/s to "
        "continuous and request-level batching in turns (3 rounds of --seconds each), for "
        "short-sentence latency at equal throughput (default: off)",
    )
    add_shared(v, "--output")
    v.set_defaults(run=run_bench_serve)


def run_bench_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.serve import compare_mixed, engine_throughput, markdown, run_bench

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


def add_capacity(which: argparse._SubParsersAction) -> None:
    c = which.add_parser(
        "capacity",
        help="open-loop load: the highest req/s whose p97 latency stays within 250 ms",
        description="MLPerf's server scenario: Poisson arrivals of one-sentence requests at a "
        "fixed rate; the rate doubles until the tail latency passes the bound, then is bisected. "
        "Starts 'tongyeok serve' on loopback, or drives a running server given --url.",
        epilog="example: tongyeok bench capacity --source data/test_2016_flickr.en.gz "
        "--output docs/bench/capacity-cpu.md",
    )
    add_shared(c, "--model-repository")
    c.add_argument("--url", help="a running server (http://HOST:PORT) instead of starting one")
    add_shared(c, "--source")
    c.add_argument("--seconds", type=float, default=30.0, help="per trial (default 30)")
    c.add_argument("--bound-ms", type=float, default=250.0, help="(default 250)")
    c.add_argument("--quantile", type=float, default=0.97, help="(default 0.97)")
    c.add_argument("--start-rate", type=float, default=25.0, help="req/s (default 25)")
    c.add_argument("--refine", type=int, default=4, help="bisection steps (default 4)")
    add_shared(c, "--threads")
    c.add_argument("--beam", type=int, default=1, help="beam size of every request (default 1)")
    c.add_argument("--key", help="with --url: the API key every request sends (quotas on)")
    c.add_argument(
        "--peer",
        choices=["ct2"],
        help="also measure the server a user would build instead, on the same weights: "
        "CTranslate2 behind FastAPI with dynamic batching (bench/peer_ct2.py); both servers "
        "are built from --checkpoint, and each gets an overload trial at 2x the peer's capacity",
    )
    c.add_argument("--checkpoint", help="with --peer: checkpoint (default: the shipped model)")
    c.add_argument(
        "--precision",
        choices=("fp32", "int8"),
        default="fp32",
        help="with --peer: Tongyeok's package precision; the peer runs the same (float32 or "
        "int8 compute type) (default fp32)",
    )
    add_shared(c, "--output")
    c.set_defaults(run=run_bench_capacity)


def run_bench_capacity(args: argparse.Namespace) -> int:
    import tempfile
    import urllib.parse
    from pathlib import Path

    from bench.capacity import capacity, capacity_markdown
    from bench.serve import free_port, machine_description, start_server

    texts = bench_texts(args.source)
    bound = args.bound_ms / 1000

    def search(port: int, host: str = "127.0.0.1") -> tuple[float, list]:
        return capacity(
            port,
            texts,
            bound,
            args.quantile,
            args.seconds,
            args.start_rate,
            args.refine,
            beam=args.beam,
            host=host,
            key=args.key,
        )

    if args.peer:
        with tempfile.TemporaryDirectory() as tmp:
            table = compare_with_peer(args, texts, Path(tmp), search)
        print_table(table, args.output)
        return 0
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
        best, trials = search(port, host)
    finally:
        if proc:
            proc.terminate()
            proc.wait(60)
    table = capacity_markdown(best, trials, bound, args.quantile, machine_description(), setup)
    print_table(table, args.output)
    return 0


def compare_with_peer(args: argparse.Namespace, texts: list[str], work, search) -> str:
    """Tongyeok and the CTranslate2 peer built from one checkpoint, measured back to back."""
    from bench.capacity import (
        ServerCapacity,
        capacity_markdown,
        comparison_markdown,
        overload_trial,
        start_peer,
    )
    from bench.race_models import prepare
    from bench.serve import free_port, start_server
    from export.onnx_export import export_package
    from model.checkpoint import load_checkpoint

    prepare(load_checkpoint(args.checkpoint), work, ["ct2 float32"])
    export_package(work / "model.pt", work / "repository" / "en-de", args.precision)
    compute_type = {"fp32": "float32", "int8": "int8"}[args.precision]
    servers = {
        f"Tongyeok {args.precision} (continuous batching)": lambda port: start_server(
            work / "repository", "continuous", args.threads, port
        ),
        f"CTranslate2 {compute_type} + FastAPI (dynamic batching, 64 sentences or 5 ms)": (
            lambda port: start_peer(work, args.threads, port, compute_type)
        ),
    }
    measured = []
    for name, start in servers.items():
        port = free_port()
        proc = start(port)
        try:
            best, trials = search(port)
            measured.append((name, port, proc, best, trials))
        except BaseException:
            proc.terminate()
            raise
        proc.terminate()
        proc.wait(60)
    # Twice the peer's capacity; a peer that never met the bound (capacity 0) is overloaded at
    # twice ours instead, so the trial still says how each server behaves past its capacity.
    overload_rate = 2 * (measured[1][3] or measured[0][3] or args.start_rate)
    results = []
    for (name, _, _, best, trials), start in zip(measured, servers.values(), strict=True):
        port = free_port()
        proc = start(port)  # a fresh server for the overload trial
        try:
            overload = overload_trial(port, texts, overload_rate, args.seconds, args.beam)
        finally:
            proc.terminate()
            proc.wait(60)
        results.append(ServerCapacity(name, best, trials, overload))
    machine = machine_and_commit()
    bound = args.bound_ms / 1000
    parts = [comparison_markdown(results[0], results[1], bound, args.quantile, args.beam)]
    for r in results:
        setup = f"{r.server}, {args.threads} threads, translation cache off."
        parts += ["", f"### {r.server}", ""]
        parts.append(capacity_markdown(r.best, r.trials, bound, args.quantile, machine, setup))
    return "\n".join(parts)


def add_soak(which: argparse._SubParsersAction) -> None:
    k = which.add_parser(
        "soak",
        help="overload soak: a multiple of measured capacity, answered-once accounting, memory",
        description="Start 'tongyeok serve' on loopback with a short queue and timeout (so that "
        "overload reaches 429 and 504), measure its capacity (closed loop), then offer a "
        "multiple of it open-loop (Poisson arrivals, one connection each) for the run. Every "
        "request must be answered once with 200, 429 (with Retry-After), 503 or 504, the "
        "server's request count must match, and resident memory after the warm-up (first "
        "quarter) must grow less than --max-growth. Exit status 1 when any of it fails.",
        epilog="example: tongyeok bench soak --model-repository models --minutes 10 --multiple 3",
    )
    add_shared(k, "--model-repository", "--source")
    k.add_argument("--minutes", type=float, default=10.0, help="(default 10)")
    k.add_argument("--multiple", type=float, default=3.0, help="x capacity (default 3)")
    add_shared(k, "--threads")
    k.add_argument("--queue", type=int, default=256, help="server queue, sentences (default 256)")
    k.add_argument("--timeout", type=float, default=5.0, help="request timeout s (default 5)")
    k.add_argument("--max-growth", type=float, default=0.05, help="(default 0.05)")
    k.add_argument(
        "--min-rate",
        type=float,
        default=1.0,
        help="offer at least this many req/s whatever the measurement (default 1)",
    )
    add_shared(k, "--output")
    k.set_defaults(run=run_bench_soak)


def run_bench_soak(args: argparse.Namespace) -> int:
    import shlex
    import sys
    from pathlib import Path

    from bench.serve import free_port, start_server
    from bench.soak import markdown, soak

    texts = bench_texts(args.source)
    port = free_port()
    settings = {
        "TONGYEOK_MAX_QUEUE_SENTENCES": str(args.queue),
        "TONGYEOK_REQUEST_TIMEOUT": str(args.timeout),
    }
    proc = start_server(Path(args.model_repository), "continuous", args.threads, port, settings)
    try:
        report = soak(
            port, proc.pid, texts, args.minutes * 60, args.multiple, min_rate=args.min_rate
        )
    finally:
        proc.terminate()
        proc.wait(60)
    print_table(markdown(report, shlex.join(["tongyeok", *sys.argv[1:]])), args.output)
    return 0 if report.answered_once and report.memory_growth < args.max_growth else 1


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


def machine_and_commit() -> str:
    """This machine and the commit measured, for a table's legend."""
    import subprocess

    from bench.serve import machine_description

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"{machine_description()}, commit {commit or 'unknown'}"


def register(sub: argparse._SubParsersAction) -> None:
    add_bench(sub)
