"""Faults injected through the test hook (``TONGYEOK_FAULTS``) into a real server on loopback: a
decoder step that raises, steps slower than the deadline, a client disconnect storm, a scheduler
thread that dies. Each request is answered once with JSON; the server keeps serving the next."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from service.scheduling.scheduler import Job, Scheduler
from tests.conftest import copy_pairs
from tests.service.conftest import running_server
from tests.service.test_api import metric

REJECTED = "tongyeok_requests_rejected_total"


def distinct_texts(n: int, seed: int) -> list[str]:
    """Different sentences (the translation cache would answer repeats without a step)."""
    return [f"{s} {i}" for i, (s, _) in enumerate(copy_pairs(n, seed=seed))]


def test_a_failing_step_fails_its_batch_only_and_the_server_keeps_serving(
    toy_repository: Path,
) -> None:
    with running_server(toy_repository, faults={"step_raises_every": 7}) as server:
        replies = [server.translate([t]) for t in distinct_texts(12, seed=61)]
        failed = [r for r in replies if r.status == 500]
        assert failed and any(r.status == 200 for r in replies)
        assert {r.status for r in replies} == {200, 500}
        assert all(r.body["error_type"] == "engine_failure" for r in failed)
        assert metric(server, f'{REJECTED}{{reason="engine_failure"}}') == len(failed)  # once
        assert server.app.state.repository.healthy


def test_steps_slower_than_the_deadline_get_504_once_each(toy_repository: Path) -> None:
    faults = {"step_sleep_seconds": 0.2}
    with running_server(toy_repository, faults=faults, request_timeout=0.5) as server:
        texts = distinct_texts(6, seed=62)
        with ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(lambda t: server.translate([" ".join([t] * 4)]), texts))
        assert [r.status for r in replies] == [504] * 6
        assert {r.body["error_type"] for r in replies} == {"deadline_exceeded"}
        assert metric(server, f'{REJECTED}{{reason="deadline_exceeded"}}') == 6
        text = server.request("GET", "/metrics").body["text"]
        assert 'reason="deadline"' not in text  # counted once, under one name


def hang_up_mid_request(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(
            b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
        )
        time.sleep(0.3)  # it is queued or running now; hang up without reading


def count_submissions(scheduler: Scheduler) -> list[Job]:
    """Every job ``scheduler`` accepts from now on (one it refuses raises before it is listed),
    recorded by wrapping this instance's ``submit``: the count stays out of the product."""
    accepted: list[Job] = []
    submit = scheduler.submit

    def counting(job: Job) -> None:
        submit(job)
        accepted.append(job)

    scheduler.submit = counting  # type: ignore[method-assign]
    return accepted


def test_a_disconnect_storm_cancels_every_job_and_leaks_nothing(toy_repository: Path) -> None:
    clients = 24
    # A sentence here needs at least 7 steps: at 0.1 s each, none can finish before its client
    # hangs up (0.3 s after sending); at 0.02 s the first to join sometimes did, once steps got
    # faster.
    with running_server(toy_repository, faults={"step_sleep_seconds": 0.1}) as server:
        port = int(server.url.rsplit(":", 1)[1])
        payloads = [
            json.dumps(
                {"texts": [" ".join([t] * 6)] * 8, "source": "en", "target": "de", "beam_size": 4}
            ).encode()
            for t in distinct_texts(clients, seed=63)
        ]
        repository = server.app.state.repository
        scheduler = repository.models["en", "de"].scheduler
        submitted = count_submissions(scheduler)
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda p: hang_up_mid_request(port, p), payloads))

        def accounted() -> tuple[float, ...]:
            # Every job that reached the scheduler was cancelled (a request whose client left
            # while its body was read never became one), and nothing is left queued or running.
            cancelled = metric(server, f'{REJECTED}{{reason="cancelled"}}')
            return (
                cancelled - len(submitted),
                metric(server, "tongyeok_queue_depth"),
                metric(server, "tongyeok_active_rows"),
                float(not repository.idle),
            )

        deadline = time.monotonic() + 30
        while len(submitted) < clients // 2 or any(accounted()):
            assert time.monotonic() < deadline, (len(submitted), accounted())
            time.sleep(0.1)
        assert metric(server, "tongyeok_sentences_total") == 0  # none finished for nobody
        assert server.translate(["red dog"]).status == 200


# The thread is killed on purpose: its traceback is what the test provokes, not a failure.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_liveness_sees_a_dead_scheduler_thread(toy_repository: Path) -> None:
    faults = {"thread_dies_at_step": 1}
    with running_server(toy_repository, faults=faults, request_timeout=1.0) as server:
        repository = server.app.state.repository
        assert repository.healthy
        assert server.translate(["red dog"]).status == 504  # nobody is left to answer
        assert not repository.healthy  # what /healthz reports (503) once the API reads it
