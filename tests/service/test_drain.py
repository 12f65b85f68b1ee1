"""SIGTERM drains: readiness drops, the request in flight is answered, the process exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import copy_pairs
from tests.service.conftest import Server, free_port


def test_sigterm_finishes_in_flight_requests_then_exits_zero(toy_repository: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "TONGYEOK_PORT": str(port),
        "TONGYEOK_THREADS": "1",
        "TONGYEOK_DRAIN_SECONDS": "30",
    }
    tongyeok = str(Path(sys.executable).parent / "tongyeok")
    proc = subprocess.Popen(
        [tongyeok, "serve", "--model-repository", str(toy_repository)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    server = Server(f"http://127.0.0.1:{port}", None)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if server.request("GET", "/readyz").status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.1)
        texts = [" ".join([s] * 8) for s, _ in copy_pairs(128, seed=41)]  # a slow request
        replies = []
        worker = threading.Thread(
            target=lambda: replies.append(server.translate(texts, beam_size=8, max_length_a=2.0))
        )
        worker.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        worker.join(60)
        assert proc.wait(60) == 0
        assert replies and replies[0].status == 200, replies
        assert len(replies[0].body["translations"]) == 128
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.stdout.read() if proc.stdout else ""
    assert '"event": "settings"' in output and "***" not in output.split("api_keys")[0][-5:]
