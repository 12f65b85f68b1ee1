"""Every line a real ``tongyeok serve`` writes is one JSON object with its timestamp, level, logger
and message, uvicorn's included; a request routed to a model names it; the settings file applies."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from service.logs import JsonFormatter, note
from tests.service.conftest import Server, free_port


def test_every_line_of_a_real_server_is_json_with_time_level_logger_and_model(
    toy_repository: Path, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "tongyeok.toml"  # the limit below comes from the file, not the defaults
    config.write_text(f"port = {port}\nmax_text_chars = 40\nthreads = 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TONGYEOK_")}
    tongyeok = str(Path(sys.executable).parent / "tongyeok")
    proc = subprocess.Popen(
        [tongyeok, "serve", "--config", str(config), "--model-repository", str(toy_repository)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
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
        assert server.translate(["red dog runs"]).status == 200
        too_long = server.translate(["x" * 41])
        assert too_long.status == 422 and "max_text_chars" in str(too_long.body)
        assert server.request("GET", "/nowhere").status == 404
        with socket.create_connection(("127.0.0.1", port)) as raw:  # uvicorn logs a warning
            raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            raw.recv(1024)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert stdout == ""  # nothing but logs, and they go to stderr
    lines = [json.loads(line) for line in stderr.splitlines()]  # each line, JSON
    assert len(lines) >= 6
    for line in lines:
        assert isinstance(line, dict) and {"timestamp", "level", "logger", "message"} <= set(line)
        assert datetime.fromisoformat(line["timestamp"]).tzinfo is not None, line
        assert line["level"] in ("INFO", "WARNING", "ERROR"), line
    by_message = {line["message"]: line for line in lines}
    assert by_message["settings"]["max_text_chars"] == 40
    assert any(m.startswith("Tongyeok: translation page http://127.0.0.1") for m in by_message)
    requests = [line for line in lines if line["message"] == "request"]
    translated = [r for r in requests if r["route"] == "/v1/translate"]
    # refused before routing (a limit of the request, not of a model): no model to name
    assert [(r["status"], r.get("model")) for r in translated] == [(200, "en-de"), (422, None)]
    assert [r["status"] for r in requests if r["route"] == "unmatched"] == [404]
    assert all("model" not in r for r in requests if r["route"] != "/v1/translate")
    uvicorn = [line for line in lines if line["logger"].startswith("uvicorn")]
    assert any(
        u["level"] == "WARNING" and "Invalid HTTP request" in u["message"] for u in uvicorn
    ), uvicorn
    assert lines[-1]["message"] == "stopped"


def test_an_exception_is_one_line_and_a_noted_model_is_named() -> None:
    from service.logs import REQUEST_FIELDS

    formatter = JsonFormatter()
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord(
            "tongyeok.x", logging.ERROR, __file__, 1, "failed %s", ("a",), None
        )
        record.exc_info = sys.exc_info()
    token = REQUEST_FIELDS.set({})
    try:
        note(model="ko-en")
        line = formatter.format(record)
    finally:
        REQUEST_FIELDS.reset(token)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed a" and parsed["model"] == "ko-en"
    assert (
        parsed["exception"].startswith("Traceback") and "RuntimeError: boom" in parsed["exception"]
    )
    event = logging.LogRecord(
        "t", logging.INFO, __file__, 1, '{"event": "x", "level": 1}', (), None
    )
    parsed = json.loads(formatter.format(event))  # an event's fields never hide the base ones
    assert (parsed["message"], parsed["level"], parsed["level_"]) == ("x", "INFO", 1)
    assert "model" not in parsed  # outside a request, no model
