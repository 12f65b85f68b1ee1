"""A server on loopback that speaks the part of the Hugging Face Hub's HTTP protocol a download
uses, so ``tongyeok pull`` is tested through the real ``huggingface_hub`` client.

Why not the real hub: this machine (and CI) cannot reach it. What it answers, as the hub does:
``GET /api/models/{repo}/revision/{rev}`` (repo_info: the commit), ``GET
/api/models/{repo}/tree/{rev}`` (the file listing), and ``HEAD``/``GET
/{repo}/resolve/{rev}/{file}`` with ``X-Repo-Commit``, ``ETag``, ``Content-Length`` and byte
``Range``s (resumed downloads); unknown repositories 404 with ``X-Error-Code: RepoNotFound``.
It counts the file bytes it sends, so a test can tell a download from a cache hit, and it can cut
a file's first download short to test resumption.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # what the hub calls the revision's sha


class Hub:
    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = repos
        self.sent: Counter[str] = Counter()  # file name -> bytes sent
        self.ranges: list[str] = []  # Range headers received
        self.cut_once: set[str] = set()  # files whose first download stops halfway

    def files(self, repo: str) -> dict[str, bytes]:
        root = self.repos[repo]
        return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


def handler_for(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.answer(head=False)

        def do_HEAD(self) -> None:
            self.answer(head=True)

        def answer(self, head: bool) -> None:
            path = self.path.split("?")[0]
            api = re.fullmatch(r"/api/models/(.+?)/(revision|tree)/([^/]+)", path)
            resolve = re.fullmatch(r"/(.+?)/resolve/([^/]+)/(.+)", path)
            repo = (api or resolve or re.fullmatch(r"/api/models/(.+)", path) or [None, ""])[1]
            if repo not in hub.repos:
                return self.send_json({"error": "Repository not found"}, 404, "RepoNotFound")
            files = hub.files(repo)
            if api and api[2] == "revision":
                siblings = [{"rfilename": name} for name in files]
                return self.send_json({"id": repo, "sha": COMMIT, "siblings": siblings})
            if api:
                return self.send_json(
                    [
                        {
                            "type": "file",
                            "path": name,
                            "size": len(data),
                            "oid": hashlib.sha1(data).hexdigest(),
                        }
                        for name, data in files.items()
                    ]
                )
            if resolve is None or resolve[3] not in files:
                return self.send_json({"error": "Entry not found"}, 404, "EntryNotFound")
            self.send_file(resolve[3], files[resolve[3]], head)

        def send_file(self, name: str, data: bytes, head: bool) -> None:
            start = 0
            requested = self.headers.get("Range")
            if requested and not head:
                hub.ranges.append(requested)
                start = int(re.fullmatch(r"bytes=(\d+)-\d*", requested)[1])  # type: ignore[index]
            body = data[start:]
            self.send_response(206 if start else 200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(body)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if head:
                return
            if name in hub.cut_once and not start:
                hub.cut_once.discard(name)
                half = body[: len(body) // 2]
                self.wfile.write(half)
                hub.sent[name] += len(half)
                self.close_connection = True
                return
            self.wfile.write(body)
            hub.sent[name] += len(body)

        def send_json(self, payload: object, status: int = 200, error: str = "") -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if error:
                self.send_header("X-Error-Code", error)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def loopback_hub(repos: dict[str, Path]) -> Iterator[tuple[str, Hub]]:
    """``(endpoint, hub)``: set ``HF_ENDPOINT`` to the endpoint."""
    hub = Hub(repos)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hub
    finally:
        server.shutdown()
        server.server_close()
