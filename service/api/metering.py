"""Each HTTP request's charges kept or given back by its answer: billed only when it is 2xx.

The use case charges a key's characters before its work (usecase/access.py, ``charged``) into
the request's ``Ledger``; here, once the request is over, they are kept if the answer was 2xx
and refunded otherwise (a refusal, an error, a timeout, a client gone before the answer).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.usecase.access import LEDGER, Ledger


class MeteringMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ledger, status = Ledger(), 0
        token = LEDGER.set(ledger)

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            LEDGER.reset(token)
            await ledger.close(answered=200 <= status < 300)
