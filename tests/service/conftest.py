"""A real uvicorn server on loopback, serving the toy model from a real model repository: in
this process (``running_server``) or as ``tongyeok serve`` in its own (``serving``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from service.api.app import create_app
from service.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Reply:
    status: int
    body: dict
    headers: dict[str, str]


@dataclass
class Server:
    url: str
    app: object

    def request(
        self,
        method: str,
        path: str,
        payload: object = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        data = (
            raw
            if raw is not None
            else (json.dumps(payload).encode() if payload is not None else None)
        )
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"content-type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                body, status, hdrs = resp.read(), resp.status, dict(resp.headers)
        except urllib.error.HTTPError as err:
            body, status, hdrs = err.read(), err.code, dict(err.headers)
        text = body.decode()
        parsed = json.loads(text) if text.startswith(("{", "[")) else {"text": text}
        return Reply(status, parsed, {k.lower(): v for k, v in hdrs.items()})

    def translate(self, texts: list[str], **options: object) -> Reply:
        return self.request(
            "POST", "/v1/translate", {"texts": texts, "source": "en", "target": "de", **options}
        )


@contextmanager
def running_server(repository: Path, **settings: object) -> Iterator[Server]:
    port = free_port()
    # state that outlives a request (glossaries) in a directory of its own, never in the HOME
    settings.setdefault("data_dir", tempfile.mkdtemp(prefix="tongyeok-data-"))
    config = Settings(model_repository=repository, port=port, threads=1, **settings)
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    try:
        yield Server(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(30)


@contextmanager
def serving(repository: Path, **settings: str) -> Iterator[tuple[subprocess.Popen, Server, list]]:
    """``tongyeok serve`` in its own process; yields it, a client, and (after exit) its output.
    The output is read as it comes: unread, the pipe fills after ~240 request lines (64 KiB)
    and the server blocks on its next log line, event loop and all."""
    port = free_port()
    settings.setdefault("data_dir", tempfile.mkdtemp(prefix="tongyeok-data-"))
    env = {**os.environ, "TONGYEOK_PORT": str(port), "TONGYEOK_THREADS": "1"}
    env.update({f"TONGYEOK_{k.upper()}": v for k, v in settings.items()})
    tongyeok = str(Path(sys.executable).parent / "tongyeok")
    proc = subprocess.Popen(
        [tongyeok, "serve", "--model-repository", str(repository)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    server, output = Server(f"http://127.0.0.1:{port}", None), []
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
        yield proc, server, output
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        reader.join(30)
        output.append("".join(lines))


@pytest.fixture(scope="module")
def server(toy_repository: Path) -> Iterator[Server]:
    with running_server(toy_repository) as s:
        yield s


def liveness_while(server: Server, call: Callable[[], Reply]) -> tuple[Reply, float]:
    """``call``'s reply, run in a thread while /healthz is asked every 20 ms, and the slowest
    /healthz answer meanwhile (each must be 200): whether the event loop kept answering."""
    replies: list[Reply] = []
    worker = threading.Thread(target=lambda: replies.append(call()))
    worker.start()
    slowest = 0.0
    while worker.is_alive():
        started = time.perf_counter()
        assert server.request("GET", "/healthz").status == 200
        slowest = max(slowest, time.perf_counter() - started)
        time.sleep(0.02)
    worker.join()
    return replies[0], slowest
