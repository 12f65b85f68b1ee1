"""The door: limits on connections, enforced in the HTTP protocol where each connection lives.

What the ASGI application cannot see, uvicorn's h11 protocol can: a connection before its
request's headers are complete, an answer nobody reads, how many connections there are and from
where, and the bytes of a chunked body that are not payload. ``GuardedProtocol`` adds to it:

- a header timeout: ``header_timeout`` seconds from a connection's opening (or its previous
  answer) to the end of a request's headers, never extended by a byte arriving (a header byte
  every 4 s outlived every timer uvicorn has, and a silent connection was never closed);
- an idle connection closed by uvicorn's keep-alive timer only when no request waits unread in
  its socket, and then in stages: FIN at once, what still comes read and dropped (a request sent
  as the timer ran, while the loop was busy, was answered with a reset: docs/decisions.md #51);
- a send timeout: an answer whose transport stays full (nobody reads it) for ``send_timeout``
  seconds is dropped, so its handler ends instead of waiting on the transport forever;
- a cap on connections and one per client address: past ``max_connections`` the oldest
  connection still sending its request (headers or body) is closed for the new one, else the new
  one is; past ``max_connections_per_client`` the address's new connection is;
- the body's cost: wire bytes once the headers are in (chunk framing and extensions included)
  plus ``PIECE_BYTES`` for each piece of body the parser hands over, so a body of 1-byte chunks
  costs what parsing it costs. The cost goes to the application in the scope (``BODY_COST``),
  which answers 413 past ``max_body_bytes`` (observe.py); parsing stops there.

Each limit reached is counted in ``tongyeok_limit_hits_total{limit}`` under its setting's name,
and /readyz names those reached lately (``shed.LimitsReached``). Why here rather than in a front
proxy or in uvicorn's options: docs/decisions.md #48.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import select
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.api.shed import LimitsReached
from service.errors import error_body
from service.settings import Settings

log = logging.getLogger("tongyeok.api")

BODY_COST = "tongyeok.body_cost"  # the scope's ``extensions`` key of a request's ``BodyCost``
PIECE_BYTES = 256  # what each piece of body costs at least: h11 takes ~9 µs per chunk
FILE_RESERVE = 128  # descriptors kept from connections: model files, logs, pipes, threads
LINGER_SECONDS = 2.0  # an idle connection closed on our side waits this long for the client's close


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    send_timeout: float
    max_connections: int
    max_connections_per_client: int  # 0: none
    max_body_bytes: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            settings.header_timeout,
            settings.send_timeout,
            settings.max_connections,
            settings.max_connections_per_client,
            settings.max_body_bytes,
        )

    def within_open_files(self) -> Limits:
        """These limits with ``max_connections`` fitting the open-file limit (raised towards
        its hard limit first): past it the server would stop accepting, /healthz included."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = self.max_connections + FILE_RESERVE
        if soft != resource.RLIM_INFINITY and soft < wanted:
            raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
                soft = raised
            except (ValueError, OSError):
                pass
        if soft == resource.RLIM_INFINITY or soft >= wanted:
            return self
        fitting = max(1, soft - FILE_RESERVE)
        log.warning(
            json.dumps(
                {
                    "event": "max_connections_lowered",
                    "max_connections": fitting,
                    "open_file_limit": soft,
                }
            )
        )
        return replace(self, max_connections=fitting)


class BodyCost:
    """What a request's body has cost so far, in bytes (see the module's docstring)."""

    __slots__ = ("bytes",)

    def __init__(self) -> None:
        self.bytes = 0


class Door:
    """What every connection of one server shares: how many are open, from which addresses, and
    which ones are still sending their request, by address, oldest first."""

    def __init__(self, limits: Limits, reached: LimitsReached) -> None:
        self.limits, self.reached = limits, reached
        self.open = 0
        self.by_client: Counter[str] = Counter()
        self.sending: dict[str, dict[GuardedProtocol, None]] = {}  # insertion order: by age
        reached.metrics.connections_open.set_function(lambda: self.open)

    def admit(self, connection: GuardedProtocol) -> bool:
        """Count ``connection`` in, making room if it must; False: it is to be closed."""
        limits, address = self.limits, connection.address
        per_client = limits.max_connections_per_client
        if per_client and self.by_client[address] >= per_client:
            self.reached("max_connections_per_client")
            return False
        if self.open >= limits.max_connections:
            self.reached("max_connections")
            if not self.sending:
                return False
            # The address with the most connections gives up its oldest still sending: a burst
            # of new connections from the many closes theirs, never a client's single one.
            crowded = max(self.sending, key=self.by_client.__getitem__)
            oldest = next(iter(self.sending[crowded]))
            self.leave(oldest)
            oldest.close()
        self.open += 1
        self.by_client[address] += 1
        connection.counted = True
        return True

    def leave(self, connection: GuardedProtocol) -> None:
        if connection.counted:
            connection.counted = False
            self.open -= 1
            self.by_client[connection.address] -= 1
            if not self.by_client[connection.address]:
                del self.by_client[connection.address]
        self.waits(connection, False)

    def waits(self, connection: GuardedProtocol, sending: bool) -> None:
        """Whether ``connection`` is still sending its request (it keeps its age if it was)."""
        address = connection.address
        if sending:
            self.sending.setdefault(address, {}).setdefault(connection)
        elif connection in self.sending.get(address, ()):
            del self.sending[address][connection]
            if not self.sending[address]:
                del self.sending[address]


REFUSED = json.dumps(
    error_body("too many connections: retry shortly", "too_many_connections")
).encode()
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    + b"content-length: %d\r\nretry-after: 1\r\nconnection: close\r\n\r\n" % len(REFUSED)
    + REFUSED
)


class CostedConnection(h11.Connection):
    """h11's connection, charging a chunked request's body to its ``cost`` (a body of known
    length has no framing: its payload, which observe.py counts, is what arrives); past
    ``limit`` it hands over no more events: the application answers 413, and the rest is never
    parsed."""

    def __init__(self, limit: int, max_incomplete_event_size: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size)
        self.limit = limit
        self.cost = BodyCost()
        self.chunked = False

    def receive_data(self, data: bytes) -> None:
        if self.chunked and self.their_state is h11.SEND_BODY:
            self.cost.bytes += len(data)
        super().receive_data(data)

    def next_event(self) -> Any:
        if self.chunked and self.their_state is h11.SEND_BODY and self.cost.bytes > self.limit:
            return h11.NEED_DATA
        event = super().next_event()
        if isinstance(event, h11.Request):
            self.cost = BodyCost()
            self.chunked = (b"transfer-encoding", b"chunked") in event.headers
            if self.chunked:  # what came with the headers, unparsed: the body's beginning
                self.cost.bytes = len(self.trailing_data[0])
        elif isinstance(event, h11.Data) and self.chunked:
            self.cost.bytes += PIECE_BYTES
        return event


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol under the door's limits; ``guarded_protocol`` makes one per
    server, for its ``Door``."""

    door: ClassVar[Door]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = self.door.limits
        size = self.config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        self.conn = self.costed = CostedConnection(limits.max_body_bytes, size)  # for uvicorn's
        self.address = ""
        self.counted = False
        self.header_timer: asyncio.TimerHandle | None = None
        self.send_timer: asyncio.TimerHandle | None = None
        self.lingering = False  # closed on our side, reading until the client closes its own

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.address = self.client[0] if self.client else ""
        if not self.door.admit(self):
            transport.write(REFUSAL)
            transport.close()
            return
        self.watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self.door.leave(self)
        for timer in (self.header_timer, self.send_timer):
            if timer is not None:
                timer.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # sent before our FIN arrived: dropped, the client sees the connection closed
        if not self.over_body_limit():
            super().data_received(data)
        if self.over_body_limit() and self.cycle is not None:
            # The rest of the body is dropped unparsed; the application, woken, answers 413
            # (observe.py), and the header timer closes the connection.
            self.flow.pause_reading()
            self.cycle.message_event.set()
        self.watch()

    def over_body_limit(self) -> bool:
        conn = self.costed
        return conn.chunked and conn.their_state is h11.SEND_BODY and conn.cost.bytes > conn.limit

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.watch()

    def watch(self) -> None:
        """Arm or disarm the header timer, and keep ``Door.sending`` true, for the state the
        connection is in now."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        waiting = cycle is None or cycle.response_complete  # for a request's headers
        self.door.waits(self, waiting or (cycle.more_body and not cycle.response_started))
        if waiting and self.header_timer is None:
            timeout = self.door.limits.header_timeout
            self.header_timer = self.loop.call_later(timeout, self.expire, "header_timeout")
        elif not waiting and self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None
        if cycle is not None and BODY_COST not in cycle.scope.get("extensions", {}):
            # Before the application's task first runs: it was only created.
            extensions: dict[str, Any] = cycle.scope.setdefault("extensions", {})  # type: ignore[assignment]
            extensions[BODY_COST] = self.costed.cost

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.send_timer is None:
            timeout = self.door.limits.send_timeout
            self.send_timer = self.loop.call_later(timeout, self.expire, "send_timeout")

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.send_timer is not None:
            self.send_timer.cancel()
            self.send_timer = None

    def expire(self, limit: str) -> None:
        if limit == "header_timeout":
            self.header_timer = None
        else:
            self.send_timer = None
        if not self.transport.is_closing():
            self.door.reached(limit)
            self.close()

    def timeout_keep_alive_handler(self) -> None:
        if self.transport.get_write_buffer_size():
            self.close()  # an answer nobody read: close() would wait for it forever
        elif self.bytes_waiting():
            # A request came while the loop was busy: its bytes wait in the socket, unread, and
            # closing now would answer them with a reset (the client had seen the connection
            # open, sent on it, and lost the request). It is read next; data_received cancels
            # this timer.
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )
        elif not self.transport.is_closing():
            self.linger()

    def linger(self) -> None:
        """Close an idle connection in stages (RFC 9112 section 9.6): our FIN at once, in this
        callback (``transport.close()`` closes the socket only after the loop's other work, and
        a request arriving meanwhile was answered with a reset), so that a client looks before
        it reuses the connection and sees it closed; what still comes, sent before our FIN
        reached the client, is read and dropped until the client closes its side or
        ``LINGER_SECONDS`` pass. The socket is closed with nothing unread: no reset."""
        self.conn.send(h11.ConnectionClosed())
        self.lingering = True
        try:
            self.transport.write_eof()  # shuts the socket's sending side now: nothing is buffered
        except (OSError, RuntimeError):
            self.transport.close()
            return
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def bytes_waiting(self) -> bool:
        """Whether the socket holds bytes (or the client's close) this protocol has not read."""
        sock = self.transport.get_extra_info("socket")
        if sock is None or self.transport.is_closing():
            return False
        poll = select.poll()
        poll.register(sock.fileno(), select.POLLIN)
        return bool(poll.poll(0))

    def close(self) -> None:
        """Closed now: what is left unsent is dropped (a client that never reads would keep a
        gently closed connection, and its descriptor, forever)."""
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.transport.close()


def guarded_protocol(door: Door) -> type[GuardedProtocol]:
    """The protocol class for uvicorn's ``Config(http=...)``: it makes one per connection."""
    return type("GuardedH11Protocol", (GuardedProtocol,), {"door": door})
