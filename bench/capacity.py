"""``tongyeok bench capacity``: MLPerf's server scenario against real servers on this machine.

Poisson arrivals of one-sentence requests at a fixed rate, latency counted from the scheduled
arrival (queueing is charged); the rate doubles until the tail latency passes the bound, then is
bisected. With ``--peer ct2`` the same search runs, back to back, against the server a user
would build instead (``bench/peer_ct2.py``: CTranslate2 behind FastAPI with dynamic batching) on
identical weights, and both get one overload trial at twice the peer's capacity.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.serve import Sample, loadgen, nearest_rank, wait_ready


@dataclass(frozen=True)
class Trial:
    rate: float  # offered, requests/s
    duration: float
    samples: list[Sample]

    @property
    def completed(self) -> float:
        return sum(s.ok for s in self.samples) / self.duration

    @property
    def failures(self) -> int:
        return sum(not s.ok for s in self.samples)

    def failure_statuses(self) -> str:
        """The failures by HTTP status, e.g. ``"429: 2583, 504: 3"`` (0: no answer): a server
        shedding load at the door (429) is not one timing out on work it admitted (504)."""
        counts = Counter(s.status for s in self.samples if not s.ok)
        return ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))

    def percentile(self, q: float) -> float:
        # A failed request counts as infinitely slow: it never met the bound.
        return nearest_rank(
            [s.seconds if s.ok else float("inf") for s in self.samples], q, float("inf")
        )


def capacity(
    port: int,
    sentences: Sequence[str],
    bound: float = 0.250,
    quantile: float = 0.97,
    seconds: float = 30.0,
    start_rate: float = 25.0,
    refine: int = 4,
    beam: int = 1,
    pair: tuple[str, str] = ("en", "de"),
    host: str = "127.0.0.1",
    max_rate: float = 100_000.0,
    key: str | None = None,
    log: Callable[[str], None] = print,
) -> tuple[float, list[Trial]]:
    """MLPerf's server scenario: one sentence per request, Poisson arrivals. Double the rate until
    the ``quantile`` latency passes ``bound``, then bisect ``refine`` times between the last rate
    that met it and the first that did not. Returns the best rate that met it, and every trial."""
    trials: list[Trial] = []

    def meets(rate: float) -> bool:
        samples, duration = loadgen(
            port, sentences, seconds, beam, pair, "--mode", "open", "--rate", str(rate),
            "--host", host, "--seed", str(len(trials)), *(("--key", key) if key else ()),
        )  # fmt: skip
        trial = Trial(rate, duration, samples)
        trials.append(trial)
        ok = trial.percentile(quantile) <= bound
        log(
            f"{rate:7.1f} req/s offered: {trial.completed:7.1f} done/s, "
            f"p{quantile * 100:g} {trial.percentile(quantile) * 1000:7.1f} ms, "
            f"{trial.failures} failed{failed_by(trial)} -> {'meets' if ok else 'misses'} the bound"
        )
        return ok

    good, bad = 0.0, start_rate
    while meets(bad):
        good, bad = bad, bad * 2
        if bad > max_rate:
            return good, trials
    for _ in range(refine):
        middle = (good + bad) / 2
        if meets(middle):
            good = middle
        else:
            bad = middle
    return good, trials


def failed_by(trial: Trial) -> str:
    """`` (429: 12)`` after a failure count, nothing when there is none."""
    return f" ({trial.failure_statuses()})" if trial.failures else ""


def few(trial: Trial, quantile: float) -> str:
    """A mark after a trial's request count when it is too small for its quantile to be more than
    its slowest request (fewer than 1 / (1 - quantile): 34 for p97): such a verdict is chance."""
    return "†" if len(trial.samples) * (1 - quantile) < 1 else ""


def capacity_markdown(
    best: float, trials: list[Trial], bound: float, quantile: float, machine: str, setup: str
) -> str:
    q = f"p{quantile * 100:g}"
    lines = [
        f"Capacity: the highest Poisson arrival rate at which {q} latency stays <= "
        f"{bound * 1000:.0f} ms (MLPerf's server scenario; one sentence per request; latency "
        "from the scheduled arrival, so queueing counts).",
        "",
        f"Machine: {machine}. {setup}",
        "",
        f"**Result: {best:.1f} requests/s** with {q} <= {bound * 1000:.0f} ms.",
        "",
        f"| offered req/s | requests | done/s | p50 ms | p90 ms | {q} ms | p99 ms | failed "
        "| meets |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for t in sorted(trials, key=lambda t: t.rate):
        lines.append(
            f"| {t.rate:.1f} | {len(t.samples)}{few(t, quantile)} | {t.completed:.1f} | "
            f"{t.percentile(0.5) * 1000:.0f} | "
            f"{t.percentile(0.9) * 1000:.0f} | {t.percentile(quantile) * 1000:.0f} | "
            f"{t.percentile(0.99) * 1000:.0f} | {t.failures}{failed_by(t)} | "
            f"{'yes' if t.percentile(quantile) <= bound else 'no'} |"
        )
    if any(few(t, quantile) for t in trials):
        lines += [
            "",
            f"† too few requests for a {q}: it is the slowest one, so the row's verdict is chance.",
        ]
    return "\n".join(lines)


def start_peer(
    model_dir: Path, threads: int, port: int, compute_type: str = "float32"
) -> subprocess.Popen:
    """``bench/peer_ct2.py`` on loopback, ready to serve."""
    command = [sys.executable, "-m", "bench.peer_ct2", "--model-dir", str(model_dir)]
    command += ["--port", str(port), "--threads", str(threads), "--compute-type", compute_type]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return wait_ready(proc, port, "the CTranslate2 peer server")


@dataclass(frozen=True)
class ServerCapacity:
    server: str
    best: float
    trials: list[Trial]
    overload: Trial | None = None  # one trial at twice the peer's capacity


def overload_trial(
    port: int, sentences: Sequence[str], rate: float, seconds: float, beam: int
) -> Trial:
    samples, duration = loadgen(
        port, sentences, seconds, beam, ("en", "de"), "--mode", "open", "--rate", str(rate)
    )
    return Trial(rate, duration, samples)


def comparison_markdown(
    ours: ServerCapacity, peer: ServerCapacity, bound: float, quantile: float, beam: int
) -> str:
    q = f"p{quantile * 100:g}"
    search = "greedy" if beam == 1 else f"beam {beam}"
    lines = [
        f"Capacity at {q} <= {bound * 1000:.0f} ms, {search}, same weights, same sentences, same "
        "load generator, the two servers one after the other on this machine:",
        "",
        f"| server | capacity req/s | overload: offered req/s | done/s | {q} ms | failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in (ours, peer):
        o = s.overload
        extra = (
            f"{o.rate:.1f} | {o.completed:.1f} | {o.percentile(quantile) * 1000:.0f} | "
            f"{o.failures}{failed_by(o)}"
            if o
            else "– | – | – | –"
        )
        lines.append(f"| {s.server} | {s.best:.1f} | {extra} |")
    if peer.best:
        lines += ["", f"**Tongyeok / peer: {ours.best / peer.best:.2f}×** capacity."]
    else:
        lowest = min(t.rate for t in peer.trials)
        lines += ["", f"The peer met the bound at no rate tried (lowest {lowest:.1f} req/s)."]
    return "\n".join(lines)
