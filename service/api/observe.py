"""Every HTTP request measured, logged and tagged with an id; its body read here, bounded; then
admitted to its budget of requests in flight (shed.py).

The body is read before the application sees it, counting the bytes as they arrive (a chunked
body has no Content-Length to trust; under ``tongyeok serve`` its chunk framing and extensions
count too, api/connections.py) and within ``body_timeout`` seconds: too large gets 413, too
slow 408, both before any key check or parsing. What the request says of itself (its id, Host,
HEAD) is made safe first (edge.py). An exception no handler mapped becomes a JSON 500 here, so
the connection is kept alive and the body shape is the one every error has.

A plain ASGI middleware: Starlette's ``@app.middleware("http")`` (BaseHTTPMiddleware) streams each
response through extra tasks and memory channels, a cost measured in docs/decisions.md #42.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.connections import BODY_COST, PIECE_BYTES
from service.api.edge import PublicAddress, request_id
from service.api.handlers import rejection
from service.api.shed import Admission
from service.errors import BodyTimeout, Internal, PayloadTooLarge, ServiceError
from service.logs import REQUEST_FIELDS
from service.metrics import Metrics
from service.usecase.translate import BILL, Bill

log = logging.getLogger("tongyeok.api")
LIMIT_OF = {PayloadTooLarge: "max_body_bytes", BodyTimeout: "body_timeout"}  # limits reached


class ClientGone(Exception):
    """The client disconnected while sending its body: there is nobody to answer."""


class ObserveMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        max_body_bytes: int,
        body_timeout: float,
        admission: Admission,
        public: PublicAddress,
    ) -> None:
        self.app, self.metrics = app, metrics
        self.max_body_bytes, self.body_timeout = max_body_bytes, body_timeout
        self.admission, self.public = admission, public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        given_id = request_id(headers.get(b"x-request-id"))
        scope = self.public.scope_for(scope)
        status = 500  # what the client gets if the app raises before answering
        answered = False
        bill = Bill()
        billing = BILL.set(bill)  # settled only if the request is answered 2xx
        fields = REQUEST_FIELDS.set({})  # the model, once routed, for this request's log lines

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", given_id.encode("latin-1")),
                ]
            await send(message)

        try:
            replay = await self.read_body(scope, headers, receive)
            async with self.admission.slot(scope):
                await self.app(scope, replay, send_with_id)
        except ClientGone:
            status = 499
        except ServiceError as error:  # too large or too slow: answered before the app runs
            if isinstance(error, PayloadTooLarge | BodyTimeout):
                self.admission.reached(LIMIT_OF[type(error)])
            await rejection(error, self.metrics, scope)(scope, receive, send_with_id)
        except Exception:
            if answered:
                raise
            log.exception("unhandled error on %s", scope.get("path"))
            bug = Internal("internal error: the request was logged with its x-request-id")
            await rejection(bug, self.metrics, scope)(scope, receive, send_with_id)
        finally:
            if 200 <= status < 300:
                bill.settle()
            BILL.reset(billing)
            self.record(scope, given_id, status, time.perf_counter() - started)
            REQUEST_FIELDS.reset(fields)

    async def read_body(
        self, scope: Scope, headers: dict[bytes, bytes], receive: Receive
    ) -> Receive:
        """The whole body, at most ``max_body_bytes`` as received, replayed to the app."""
        limit = self.max_body_bytes
        length = headers.get(b"content-length", b"").decode("latin-1")
        if length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(f"request body of {length} bytes exceeds max_body_bytes={limit}")
        cost = scope.get("extensions", {}).get(BODY_COST)  # the wire's count: tongyeok serve
        chunks, size = [], 0
        deadline = time.monotonic() + self.body_timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                raise BodyTimeout(
                    f"request body not received within body_timeout={self.body_timeout} s"
                ) from None
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds max_body_bytes={limit}")
            if cost is not None and cost.bytes > limit:
                raise PayloadTooLarge(
                    f"request body exceeds max_body_bytes={limit} as received (chunk framing "
                    f"and extensions count, and each chunk at least {PIECE_BYTES} bytes)"
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        pending: Message | None = {"type": "http.request", "body": b"".join(chunks)}

        async def replay() -> Message:
            nonlocal pending
            if pending is None:
                return await receive()  # only a disconnect can come now
            message, pending = pending, None
            return message

        return replay

    def record(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        route: Any = scope.get("route")  # set by the router on this same scope
        path = getattr(route, "path", "unmatched")
        self.metrics.request_duration.labels(path, f"{status // 100}xx").observe(seconds)
        entry = {
            "event": "request",
            "request_id": request_id,
            "method": scope.get("method"),
            "route": path,
            "status": status,
            "seconds": round(seconds, 4),
        }
        log.info(json.dumps(entry))
