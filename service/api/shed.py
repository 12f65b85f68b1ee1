"""Load shedding at the door: a bound on the requests in flight, answered 429 before any work.

Under sustained overload the scheduler's queue limit comes too late: every request is still read,
parsed, split and tokenized on the event loop before the queue refuses it, and on 2 cores the
event loop fell behind (3x capacity on the shipped model: answers two minutes late, resident
memory growing ~4.8 MB/s with the backlog; docs/decisions.md). Past ``limit`` requests in
flight, this answers at once with the project's JSON 429 and Retry-After, without reading the
body. Liveness, readiness and metrics are never shed.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import QueueFull, error_body
from service.metrics import Metrics

NEVER_SHED = frozenset({"/healthz", "/readyz", "/metrics"})


class ShedLoad:
    def __init__(self, app: ASGIApp, limit: int, metrics: Metrics) -> None:
        self.app, self.limit, self.metrics = app, limit, metrics
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in NEVER_SHED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await self.refuse(send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def refuse(self, send: Send) -> None:
        error = QueueFull(
            f"{self.in_flight} requests in flight, limit max_inflight_requests={self.limit}; "
            "retry shortly"
        )
        self.metrics.requests_rejected.labels("overloaded").inc()
        body = json.dumps(error_body(error.message, error.error_type)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", b"1"),
        ]
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
