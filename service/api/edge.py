"""What a request brings that the service must not take at its word: its request id, its Host
header and its method (HEAD), made safe once at the edge (observe.py) for everything behind it.

- A request id is echoed in the answer and written to the logs before any key check: one of up
  to 128 characters of ``REQUEST_ID``'s alphabet is kept, anything else replaced by a fresh one
  (~128 KB ids were echoed and logged, unauthenticated).
- Every URL the service writes (a translated file's download link, the redirect of a path with a
  trailing slash) is built from the scope's scheme and Host: the Host is replaced by the
  configured ``public_url``'s, or else by the address the connection arrived at, never the
  client's (it was reflected into both).
- HEAD is answered wherever GET is, as GET without the body (uvicorn drops it: its own scope
  still says HEAD); it was 405 everywhere, /healthz included.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

from starlette.types import Scope

REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def request_id(given: bytes | None) -> str:
    """The client's id when it is a safe one, else a fresh one."""
    text = given.decode("latin-1") if given else ""
    return text if REQUEST_ID.fullmatch(text) else uuid.uuid4().hex


class PublicAddress:
    """Where URLs point: ``public_url`` (scheme and host, any path ignored) or, unset, the
    address each connection arrived at."""

    def __init__(self, public_url: str | None) -> None:
        parts = urlsplit(public_url) if public_url else None
        self.scheme = parts.scheme if parts else None
        self.host = parts.netloc.encode("latin-1") if parts else None

    def scope_for(self, scope: Scope) -> Scope:
        """``scope`` as the application should see it (a copy where anything changes)."""
        host = self.host or arrival(scope)
        headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
        headers.append((b"host", host))
        scope = {**scope, "headers": headers}
        if self.scheme:
            scope["scheme"] = self.scheme
        if scope["method"] == "HEAD":
            scope["method"] = "GET"
        return scope


def arrival(scope: Scope) -> bytes:
    """The server's own address the connection arrived at, as a Host header."""
    server = scope.get("server")
    if not server:
        return b"localhost"
    host, port = server
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}".encode("latin-1") if port else host.encode("latin-1")
