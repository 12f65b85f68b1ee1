"""The Locust file drives a real server on loopback: every endpoint is hit and nothing fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.service.conftest import running_server

LOCUSTFILE = Path(__file__).resolve().parents[2] / "deploy" / "loadtest" / "locustfile.py"


def test_locust_run_has_no_failures(toy_repository: Path, tmp_path: Path) -> None:
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("red dog runs\na cat sits on the park\nbig bird\n")
    with running_server(toy_repository) as server:
        locust = Path(sys.executable).parent / "locust"
        result = subprocess.run(
            [
                str(locust),
                "-f",
                str(LOCUSTFILE),
                "--host",
                server.url,
                "--headless",
                "--users",
                "4",
                "--spawn-rate",
                "4",
                "--run-time",
                "4s",
                "--json",
                "--only-summary",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={**os.environ, "TONGYEOK_LOADTEST_SENTENCES": str(sentences)},
        )
    stats = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(stats) == {"/v1/translate", "/translate", "/v2/translate"}
    assert stats["/v1/translate"]["num_requests"] > 10
    assert all(row["num_failures"] == 0 for row in stats.values()), result.stderr[-2000:]
