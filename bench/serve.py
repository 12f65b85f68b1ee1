"""``tongyeok bench serve``: closed-loop load against real servers, batching policies side by side.

For each policy (continuous, request-level, none) a ``tongyeok serve`` process is started on
loopback; N clients (bench.loadgen, in a process of their own) each send one request after
another (one sentence per request, drawn from real text) for a fixed time, and every latency is
recorded. The same sentences also go
through the engine alone at the batch size the service reached, for the HTTP + scheduler overhead.
Torch-free: it drives the service exactly as users do.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

POLICIES = ("continuous", "request", "none")


@dataclass(frozen=True)
class Sample:
    seconds: float
    words: int
    ok: bool
    status: int = 200  # the HTTP status; 0: no answer (connection refused, reset or timed out)


@dataclass(frozen=True)
class RunResult:
    policy: str
    clients: int
    duration: float
    samples: list[Sample]
    rows_per_step: float

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    @property
    def throughput(self) -> float:
        return len(self.ok) / self.duration

    def percentile(self, q: float, short_only: bool = False) -> float:
        return nearest_rank(
            [s.seconds for s in self.ok if not short_only or s.words <= SHORT_WORDS], q
        )


def nearest_rank(values: Sequence[float], q: float, empty: float = float("nan")) -> float:
    """The ``q`` quantile of ``values`` by nearest rank (``empty`` when there are none)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else empty


SHORT_WORDS = 8
LONG_WORDS = 20


def mixed(sentences: Sequence[str]) -> list[str]:
    """Half short (<= SHORT_WORDS words), half long (>= LONG_WORDS) sentences: a long one keeps a
    request-level batch busy long after the short ones beside it are done."""
    short = [s for s in sentences if len(s.split()) <= SHORT_WORDS]
    long = [s for s in sentences if len(s.split()) >= LONG_WORDS]
    if not short or not long:
        raise ValueError(f"need sentences of <= {SHORT_WORDS} and >= {LONG_WORDS} words")
    n = max(len(short), len(long))
    return [short[i % len(short)] for i in range(n)] + [long[i % len(long)] for i in range(n)]


@dataclass(frozen=True)
class MixedResult:
    """Open-loop load at a fixed rate over the mixed set: equal offered throughput per policy."""

    policy: str
    rate: float
    duration: float
    samples: list[Sample]
    round: int = 0

    def percentile(self, q: float, long: bool) -> float:
        return nearest_rank(
            [s.seconds for s in self.samples if s.ok and (s.words >= LONG_WORDS) == long], q
        )

    @property
    def throughput(self) -> float:
        return sum(s.ok for s in self.samples) / self.duration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    repository: Path,
    policy: str,
    threads: int,
    port: int,
    settings: dict[str, str] | None = None,
) -> subprocess.Popen:
    """``tongyeok serve`` on loopback, ready; ``settings`` (TONGYEOK_* variables) override the
    benchmark's (no cache, a queue and a timeout that never refuse)."""
    env = {
        **os.environ,
        "TONGYEOK_BATCHING": policy,
        "TONGYEOK_THREADS": str(threads),
        "TONGYEOK_PORT": str(port),
        "TONGYEOK_CACHE_ENTRIES": "0",
        "TONGYEOK_REQUEST_TIMEOUT": "300",
        "TONGYEOK_MAX_QUEUE_SENTENCES": "100000",
        **(settings or {}),
    }
    tongyeok = str(Path(sys.executable).parent / "tongyeok")
    proc = subprocess.Popen(
        [tongyeok, "serve", "--model-repository", str(repository)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return wait_ready(proc, port, "tongyeok serve")


def wait_ready(proc: subprocess.Popen, port: int, name: str) -> subprocess.Popen:
    """``proc`` once its /readyz on ``port`` answers 200 (killed, and an error, if it never does
    within two minutes or exits first)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{name} did not become ready on port {port}")


def rows_per_step(port: int) -> tuple[float, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("tongyeok_batch_rows_sum"):
            total += float(line.split()[-1])
        elif line.startswith("tongyeok_batch_rows_count"):
            count += float(line.split()[-1])
    return total, count


def loadgen(
    port: int,
    sentences: Sequence[str],
    seconds: float,
    beam: int,
    pair: tuple[str, str],
    *shape: str,
) -> tuple[list[Sample], float]:
    """Run bench.loadgen in its own process (``shape``: its --mode and --clients/--rate
    flags); returns every request's sample and the run's duration."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(list(sentences), f)
        f.flush()
        command = [
            sys.executable, "-m", "bench.loadgen", "--port", str(port), "--sentences", f.name,
            "--seconds", str(seconds), "--beam-size", str(beam), "--pair", *pair, *shape,
        ]  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    report = json.loads(out)
    samples = [Sample(t, words, status == 200, status) for t, words, status in report["samples"]]
    return samples, report["duration"]


def load(
    port: int,
    sentences: Sequence[str],
    clients: int,
    seconds: float,
    beam: int,
    pair: tuple[str, str],
) -> tuple[list[Sample], float]:
    """Closed loop: ``clients`` concurrent clients, one request after another each."""
    return loadgen(
        port, sentences, seconds, beam, pair, "--mode", "closed", "--clients", str(clients)
    )


def run_bench(
    repository: Path,
    sentences: Sequence[str],
    clients: Sequence[int] = (1, 8, 32),
    seconds: float = 15.0,
    beam: int = 1,
    threads: int = 2,
    policies: Sequence[str] = POLICIES,
    pair: tuple[str, str] = ("en", "de"),
    log: Callable[[str], None] = print,
) -> list[RunResult]:
    """Closed-loop runs per policy and client count."""
    results = []
    for policy in policies:
        port = free_port()
        proc = start_server(repository, policy, threads, port)
        try:
            load(port, sentences, 4, 2.0, beam, pair)  # warm-up
            for n in clients:
                before = rows_per_step(port)
                samples, duration = load(port, sentences, n, seconds, beam, pair)
                after = rows_per_step(port)
                steps = after[1] - before[1]
                rows = (after[0] - before[0]) / steps if steps else 0.0
                result = RunResult(policy, n, duration, samples, rows)
                results.append(result)
                log(
                    f"{policy:<11} {n:>3} clients {result.throughput:7.1f} req/s  "
                    f"p50 {result.percentile(0.5) * 1000:7.1f} ms  "
                    f"p99 {result.percentile(0.99) * 1000:7.1f} ms  rows/step {rows:5.1f}"
                )
        finally:
            proc.terminate()
            proc.wait(60)
    return results


def compare_mixed(
    repository: Path,
    sentences: Sequence[str],
    rate: float,
    seconds: float = 15.0,
    rounds: int = 3,
    beam: int = 1,
    threads: int = 2,
    pair: tuple[str, str] = ("en", "de"),
    log: Callable[[str], None] = print,
) -> list[MixedResult]:
    """Short/long sentences offered open-loop at ``rate`` to continuous and to request-level
    batching, both servers up at once and taking turns (``rounds`` times each), so that the
    machine's drift over minutes falls on both alike."""
    policies = ("continuous", "request")
    ports = {policy: free_port() for policy in policies}
    procs = [start_server(repository, policy, threads, ports[policy]) for policy in policies]
    results = []
    try:
        for policy in policies:
            load(ports[policy], sentences, 4, 2.0, beam, pair)  # warm-up
        for round_ in range(rounds):
            for policy in policies:
                samples, duration = loadgen(
                    ports[policy], mixed(sentences), seconds, beam, pair, "--mode", "open",
                    "--rate", str(rate), "--seed", str(round_),
                )  # fmt: skip
                m = MixedResult(policy, rate, duration, samples, round_)
                results.append(m)
                log(
                    f"{policy:<11} open loop {rate:.0f} req/s: {m.throughput:6.1f} done/s, "
                    f"p50 short {m.percentile(0.5, False) * 1000:6.1f} ms, "
                    f"long {m.percentile(0.5, True) * 1000:6.1f} ms"
                )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(60)
    return results


def mixed_markdown(mixed_results: Sequence[MixedResult]) -> list[str]:
    pooled = {
        policy: MixedResult(
            policy,
            mixed_results[0].rate,
            sum(m.duration for m in mixed_results if m.policy == policy),
            [s for m in mixed_results if m.policy == policy for s in m.samples],
        )
        for policy in ("continuous", "request")
    }
    rounds = sorted({m.round for m in mixed_results})
    by = {(m.policy, m.round): m for m in mixed_results}
    per_round = [
        by["continuous", r].percentile(0.5, False) / by["request", r].percentile(0.5, False)
        for r in rounds
    ]
    request_short = pooled["request"].percentile(0.5, False)
    lines = [
        "",
        f"Mixed load, open loop (Poisson arrivals at {mixed_results[0].rate:.0f} req/s, the same "
        f"for both): half short sentences (<= {SHORT_WORDS} words), half long (>= {LONG_WORDS}); "
        f"both servers up at once, taking turns {len(rounds)} times; latency from the scheduled "
        "arrival. Percentiles over all rounds.",
        "",
        "| batching | done/s | p50 short ms | × request-level | p50 long ms | p99 ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in pooled.values():
        short = m.percentile(0.5, False)
        p99 = nearest_rank([s.seconds for s in m.samples if s.ok], 0.99) * 1000
        lines.append(
            f"| {m.policy} | {m.throughput:.1f} | {short * 1000:.0f} | "
            f"{short / request_short:.2f}× | {m.percentile(0.5, True) * 1000:.0f} | {p99:.0f} |"
        )
    lines += ["", "Short-sentence p50, continuous / request-level, per round: "
              + ", ".join(f"{r:.2f}×" for r in per_round)]  # fmt: skip
    return lines


def engine_throughput(
    repository: Path, sentences: Sequence[str], batch: int, beam: int, threads: int
) -> float:
    """Sentences/s of the engine alone, ``batch`` sentences in flight, no HTTP, no scheduler.

    The sentences come in a random order, as a server meets them, not sorted by length (sorting
    makes the engine ~1.4x faster, an advantage only offline batch translation has): what is
    left between this and the service is the HTTP + scheduler overhead."""
    from contract.options import SearchOptions
    from contract.package import load_package_config
    from contract.tokenizer import Tokenizer
    from service.decoding.engine import Engine
    from service.runtime.sessions import PackageRuntime, RuntimeOptions

    package = next(p for p in sorted(repository.iterdir()) if (p / "manifest.json").exists())
    config = load_package_config(package)
    tokenizer = Tokenizer.load(config.tokenizer_path)
    engine = Engine(PackageRuntime(config, RuntimeOptions(intra_op_threads=threads)))  # as served
    ids = tokenizer.encode_batch(list(sentences))
    random.Random(0).shuffle(ids)
    engine.run(ids[:8], SearchOptions(beam_size=beam), batch)
    started = time.perf_counter()
    engine.run(ids, SearchOptions(beam_size=beam), max(1, batch), sort=False)
    return len(ids) / (time.perf_counter() - started)


def markdown(
    results: list[RunResult],
    engine: dict[int, float],
    threads: int,
    beam: int,
    mixed_results: Sequence[MixedResult] = (),
) -> str:
    by = {(r.policy, r.clients): r for r in results}
    lines = [
        f"Closed loop, one sentence per request, beam {beam}, server with {threads} ONNX Runtime "
        f"threads on the same 2-core machine as the clients. 'short' = at most {SHORT_WORDS} "
        "words. Ratios: throughput over no batching at the same client count.",
        "",
        "| batching | clients | req/s | × none | p50 ms | p95 ms | p99 ms | p50 short ms "
        "| rows/step |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        none = by.get(("none", r.clients))
        ratio = f"{r.throughput / none.throughput:.2f}×" if none and none.throughput else "–"
        lines.append(
            f"| {r.policy} | {r.clients} | {r.throughput:.1f} | {ratio} | "
            f"{r.percentile(0.5) * 1000:.0f} | {r.percentile(0.95) * 1000:.0f} | "
            f"{r.percentile(0.99) * 1000:.0f} | {r.percentile(0.5, True) * 1000:.0f} | "
            f"{r.rows_per_step:.1f} |"
        )
    if engine:
        lines += [
            "",
            "Engine alone (no HTTP, no scheduler), same sentences:",
            "",
            "| sentences in flight | sentences/s | service (continuous) / engine |",
            "| ---: | ---: | ---: |",
        ]
        for batch, rate in sorted(engine.items()):
            service = by.get(("continuous", batch))
            share = f"{service.throughput / rate:.0%}" if service else "–"
            lines.append(f"| {batch} | {rate:.1f} | {share} |")
    if mixed_results:
        lines += mixed_markdown(mixed_results)
    lines.append("")
    lines.append(
        f"failed requests: {sum(len(r.samples) - len(r.ok) for r in results)}; "
        f"median of all p50s {statistics.median(r.percentile(0.5) for r in results):.3f} s"
    )
    return "\n".join(lines)


# -- capacity: the highest Poisson arrival rate whose tail latency stays within a bound -----------


def machine_description() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} vCPU {model}"
