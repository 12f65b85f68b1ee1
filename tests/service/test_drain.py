"""SIGTERM drains a real ``tongyeok serve``: readiness drops, what can finish is answered, what
cannot is answered with a JSON 503 before the drain ends, the scheduler is joined, exit 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.conftest import copy_pairs
from tests.service.conftest import Reply, serving


def slow_texts(seed: int) -> list[str]:
    return [" ".join([s] * 8) for s, _ in copy_pairs(128, seed=seed)]


def in_background(call) -> tuple[threading.Thread, list[Reply]]:
    replies: list[Reply] = []
    worker = threading.Thread(target=lambda: replies.append(call()))
    worker.start()
    return worker, replies


def test_sigterm_finishes_in_flight_requests_then_exits_zero(toy_repository: Path) -> None:
    with serving(toy_repository, drain_seconds="30") as (proc, server, output):
        texts = slow_texts(seed=41)
        worker, replies = in_background(
            lambda: server.translate(texts, beam_size=8, max_length_a=2.0)
        )
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        worker.join(60)
        assert proc.wait(60) == 0
        assert replies and replies[0].status == 200, replies
        assert len(replies[0].body["translations"]) == 128
    assert '"event": "settings"' in output[0] and "***" not in output[0].split("api_keys")[0][-5:]


def test_a_request_running_past_a_short_drain_gets_json_503_and_the_process_exits_zero(
    toy_repository: Path,
) -> None:
    """Today's main: a bare-text 500, the job never cancelled, SIGABRT ("terminate called without
    an active exception"); and 0.5 s of drain meant no limit at all (int(0.5) or None)."""
    faults = '{"step_sleep_seconds": 0.05}'  # the request needs far longer than the drain
    with serving(toy_repository, drain_seconds="0.5", faults=faults) as (proc, server, output):
        worker, replies = in_background(lambda: server.translate(slow_texts(seed=42)))
        time.sleep(1.0)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        worker.join(30)
        status = proc.wait(30)
        took = time.monotonic() - signalled
    assert status == 0, output
    assert replies and replies[0].status == 503, replies
    assert replies[0].body["error_type"] == "shutting_down"
    assert took < 5, f"a 0.5 s drain took {took:.1f} s"
    assert "terminate called" not in output[0]


def test_sigterm_with_requests_queued_and_running_answers_every_one(toy_repository: Path) -> None:
    settings = {
        "drain_seconds": "2",
        "max_batch_rows": "8",
        "faults": '{"step_sleep_seconds": 0.01}',
    }
    with serving(toy_repository, **settings) as (proc, server, output):
        texts = [s for s, _ in copy_pairs(40, seed=43)]
        with ThreadPoolExecutor(40) as pool:
            futures = [pool.submit(server.translate, [t, t + " red"], beam_size=4) for t in texts]
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            replies = [f.result(timeout=60) for f in futures]
        assert proc.wait(30) == 0, output
    statuses = [r.status for r in replies]
    assert set(statuses) <= {200, 503} and 503 in statuses, statuses
    assert all(r.body.get("error_type") == "shutting_down" for r in replies if r.status == 503)


def test_ctrl_c_drains_and_exits_zero_without_a_traceback(toy_repository: Path) -> None:
    """Ctrl+C (SIGINT) is a drain like SIGTERM: an in-flight request is answered and the process
    exits 0, not with a KeyboardInterrupt traceback and status 130 (issue 34)."""
    with serving(toy_repository, drain_seconds="30") as (proc, server, output):
        worker, replies = in_background(lambda: server.translate(slow_texts(seed=3)[:32]))
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        worker.join(60)
        assert proc.wait(60) == 0
    assert replies and replies[0].status == 200, replies
    assert "Traceback" not in output[0] and "KeyboardInterrupt" not in output[0], output[0]
    assert '"signal": "SIGINT"' in output[0]


def test_a_busy_port_is_said_in_one_line_before_any_model_loads(toy_repository: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        tongyeok = str(Path(sys.executable).parent / "tongyeok")
        result = subprocess.run(
            [tongyeok, "serve", "--model-repository", str(toy_repository), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1 and "loaded" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot listen on 127.0.0.1:{port}" in lines[0], result.stderr
