"""Overload at ~3x the measured capacity of a real ``tongyeok serve`` for 20 s (bounded for CI):
every request answered exactly once with 200, 429 (with Retry-After), 503 or 504, the server's
own count matching, and resident memory after the warm-up growing less than 10%.

The server's capacity is pinned low (2 decoder rows, steps of at least 5 ms: at most ~55
sentences/s), so that 3x of it stays within what a client in this same process can offer on a
shared 2-core machine; the offered rate is at least 120 requests/s should the measurement come
out low on a busy machine."""

from __future__ import annotations

import asyncio
import urllib.request
from pathlib import Path

from bench.serve import free_port, start_server
from bench.soak import Reply, body, post, soak
from tests.conftest import copy_pairs


def test_overload_at_three_times_capacity_answers_every_request_once(
    toy_repository: Path,
) -> None:
    port = free_port()
    limits = {
        "TONGYEOK_MAX_QUEUE_SENTENCES": "64",
        "TONGYEOK_REQUEST_TIMEOUT": "2",
        "TONGYEOK_MAX_BATCH_ROWS": "2",
        "TONGYEOK_FAULTS": '{"step_sleep_seconds": 0.005}',
    }
    proc = start_server(toy_repository, "continuous", 1, port, limits)
    try:
        texts = [f"{s} {i}" for i, (s, _) in enumerate(copy_pairs(2000, seed=71))]
        report = soak(
            port, proc.pid, texts, seconds=20, multiple=3.0, capacity_seconds=3, min_rate=120
        )
    finally:
        proc.terminate()
        proc.wait(60)
    summary = report.summary()
    assert report.failures == 0, summary  # no dropped connection, no 500, 429s carry Retry-After
    assert report.server_counted == len(report.replies), summary  # each one answered once
    assert report.statuses[200] > 0, summary
    assert report.statuses[429] + report.statuses[504] > 0, summary  # it was overloaded
    assert report.memory_growth < 0.10, summary
    print(summary)


def test_past_the_in_flight_limit_requests_get_json_429_before_any_work(
    toy_repository: Path,
) -> None:
    port = free_port()
    settings = {
        "TONGYEOK_MAX_INFLIGHT_REQUESTS": "2",
        "TONGYEOK_FAULTS": '{"step_sleep_seconds": 0.05}',  # the first two stay in flight
    }
    proc = start_server(toy_repository, "continuous", 1, port, settings)
    try:
        texts = [f"{s} {i}" for i, (s, _) in enumerate(copy_pairs(8, seed=72))]
        replies = asyncio.run(all_at_once(port, texts))
        shed = [r for r in replies if r.status == 429]
        assert sorted(r.status for r in replies) == [200, 200] + [429] * 6
        assert all(r.retry_after for r in shed)
        assert metric_value(port, 'tongyeok_requests_rejected_total{reason="overloaded"}') == 6
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz").status == 200
    finally:
        proc.terminate()
        proc.wait(60)


async def all_at_once(port: int, texts: list[str]) -> list[Reply]:
    return list(await asyncio.gather(*(post(port, body(t)) for t in texts)))


def metric_value(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
        lines = resp.read().decode().splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith(name))
