"""``tongyeok bench soak``: open-loop load at a multiple of the measured capacity, with exactly-once
accounting and the server's resident memory over time.

Capacity is measured first (closed loop, N clients, one sentence per request); then requests
arrive as a Poisson process at ``multiple`` x capacity for the run. Every request goes on its own
connection, so "answered once" is exact: each gets one HTTP status, which must be 200, 429 (with
Retry-After), 503 or 504; a dropped connection or any other status is a failure. The server's own
request counter must match what was sent, and its resident memory after the warm-up (the first
quarter of the run) must not grow past the bound by the end.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import psutil

ANSWERS = frozenset({200, 429, 503, 504})  # what overload may answer; anything else is a failure
TRANSLATE = "/v1/translate"


@dataclass
class Reply:
    status: int  # 0: the connection failed before a status line
    retry_after: bool


@dataclass
class SoakReport:
    capacity: float  # requests/s answered 200 in the closed-loop measurement
    rate: float  # requests/s offered
    seconds: float
    replies: list[Reply]
    server_counted: int  # /v1/translate requests the server's metrics saw during the run
    memory: list[tuple[float, int]] = field(default_factory=list)  # (seconds, server RSS bytes)

    @property
    def statuses(self) -> Counter[int]:
        return Counter(r.status for r in self.replies)

    @property
    def failures(self) -> int:
        """Requests not answered once with an allowed status (429s need Retry-After)."""
        return sum(
            r.status not in ANSWERS or (r.status == 429 and not r.retry_after) for r in self.replies
        )

    @property
    def memory_growth(self) -> float:
        """Resident memory at the end over the first sample after the warm-up quarter."""
        warm = [rss for t, rss in self.memory if t >= self.seconds / 4]
        return warm[-1] / warm[0] - 1 if len(warm) >= 2 else 0.0

    @property
    def answered_once(self) -> bool:
        return self.failures == 0 and self.server_counted == len(self.replies)

    def summary(self) -> dict[str, object]:
        return {
            "capacity_rps": round(self.capacity, 1),
            "offered_rps": round(self.rate, 1),
            "seconds": self.seconds,
            "sent": len(self.replies),
            "statuses": dict(sorted(self.statuses.items())),
            "failures": self.failures,
            "server_counted": self.server_counted,
            "answered_once": self.answered_once,
            "rss_mb_after_warmup": round(self.memory_after_warmup / 2**20, 1),
            "rss_mb_end": round(self.memory[-1][1] / 2**20, 1) if self.memory else 0,
            "memory_growth": round(self.memory_growth, 4),
        }

    @property
    def memory_after_warmup(self) -> int:
        warm = [rss for t, rss in self.memory if t >= self.seconds / 4]
        return warm[0] if warm else 0


def body(text: str) -> bytes:
    return json.dumps({"texts": [text], "source": "en", "target": "de", "beam_size": 1}).encode()


async def post(port: int, payload: bytes) -> Reply:
    """One request on its own connection: its status and whether a Retry-After came with it."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return Reply(0, False)
    try:
        head = (
            f"POST {TRANSLATE} HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        writer.write(head.encode() + payload)
        status = int((await reader.readline()).split()[1])
        retry_after, length = False, 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            retry_after |= name.strip().lower() == b"retry-after"
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        return Reply(status, retry_after)
    except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
        return Reply(0, False)
    finally:
        writer.close()


async def measure_capacity(
    port: int, texts: Sequence[str], seconds: float, clients: int = 16
) -> float:
    """Closed loop: requests/s answered 200 with ``clients`` sending one after another."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def client(index: int) -> None:
        nonlocal done
        rng = random.Random(index)
        while time.perf_counter() < stop_at:
            reply = await post(port, body(rng.choice(texts)))  # not inside ``done +=``: that
            done += reply.status == 200  # reads ``done`` before the await and loses updates

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return done / (time.perf_counter() - started)


async def offer(
    port: int, texts: Sequence[str], rate: float, seconds: float, pid: int, seed: int = 0
) -> tuple[list[Reply], list[tuple[float, int]]]:
    """Poisson arrivals at ``rate`` for ``seconds``; the server's RSS sampled every second."""
    rng = random.Random(seed)
    process = psutil.Process(pid)
    memory: list[tuple[float, int]] = []
    start = time.perf_counter()

    async def sample_memory() -> None:
        while True:
            memory.append((time.perf_counter() - start, process.memory_info().rss))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample_memory())
    tasks = []
    arrival = start
    while (arrival := arrival + rng.expovariate(rate)) < start + seconds:
        delay = arrival - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(port, body(rng.choice(texts)))))
    replies = await asyncio.gather(*tasks)
    sampler.cancel()
    memory.append((time.perf_counter() - start, process.memory_info().rss))
    return list(replies), memory


def requests_counted(port: int) -> int:
    """The server's count of /v1/translate requests: those it handled (every status class) and
    those it shed at the door before routing."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    prefixes = (
        f'tongyeok_request_duration_seconds_count{{route="{TRANSLATE}"',
        'tongyeok_requests_rejected_total{reason="overloaded"}',
    )
    return int(
        sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefixes))
    )


def soak(
    port: int,
    pid: int,
    texts: Sequence[str],
    seconds: float,
    multiple: float = 3.0,
    capacity_seconds: float = 3.0,
    min_rate: float = 1.0,
) -> SoakReport:
    """Measure capacity, then offer ``multiple`` x capacity (at least ``min_rate`` requests/s:
    a measurement on a busy machine can come out far low) for ``seconds`` and account."""
    capacity = asyncio.run(measure_capacity(port, texts, capacity_seconds))
    rate = max(multiple * capacity, min_rate)
    before = requests_counted(port)
    replies, memory = asyncio.run(offer(port, texts, rate, seconds, pid))
    time.sleep(0.5)  # the middleware counts after the last byte is sent
    counted = requests_counted(port) - before
    return SoakReport(capacity, rate, seconds, replies, counted, memory)


def markdown(report: SoakReport, command: str) -> str:
    s = report.summary()
    rows = "\n".join(f"| {k} | {v} |" for k, v in s.items())
    return f"Soak: `{command}`\n\n| measure | value |\n| --- | --- |\n{rows}"
