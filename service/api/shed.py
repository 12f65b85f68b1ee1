"""Load shedding at the door: bounds on the requests in flight, answered 429 before any work.

Under sustained overload the scheduler's queue limit comes too late: every request is still read,
parsed, split and tokenized on the event loop before the queue refuses it, and on 2 cores the
event loop fell behind (3x capacity on the shipped model: answers two minutes late, resident
memory growing ~4.8 MB/s with the backlog; docs/decisions.md #22). Past its budget a request is
answered at once with the project's JSON 429 and Retry-After.

A request is counted once its body has arrived (observe.py reads it, bounded in size and time):
one still sending holds a connection, never a slot (520 bodies that never came held all 512
slots for 10 s, and a keyed client got 429). Two budgets, so that work nobody vouched for can
never shut keyed clients out (docs/decisions.md #48):

- ``max_unauthenticated_requests`` for the routes that check no key (the page, its files, the
  docs' scripts, a path no route has), taken at the door;
- ``max_inflight_requests`` for the routes that check one, taken by the key check itself once it
  has admitted the request (``promote``, from ``deps.authorize``): a missing or wrong key is
  answered at once and holds no slot, and a key in the body counts like one in a header. Without
  keys the check admits everyone.

Liveness, readiness and metrics are never shed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.types import Scope

from service.errors import Overloaded
from service.metrics import Metrics

NEVER_SHED = frozenset({"/healthz", "/readyz", "/metrics"})
SLOT = "tongyeok.slot"  # the scope's key of the request's ``Slot``
HELD_SECONDS = 10.0  # how long /readyz names a limit after it was last reached


class LimitsReached:
    """Every limit of the door (here and api/connections.py) reached, counted in
    ``tongyeok_limit_hits_total{limit}`` under its setting's name, and when it last was."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.last: dict[str, float] = {}

    def __call__(self, limit: str) -> None:
        self.metrics.limit_hits.labels(limit).inc()
        self.last[limit] = time.monotonic()

    def held(self) -> list[str]:
        """The limits reached in the last ``HELD_SECONDS``: someone is holding the door, or
        the service is past its capacity (/readyz says which)."""
        since = time.monotonic() - HELD_SECONDS
        return sorted(name for name, when in self.last.items() if when >= since)


class Budget:
    def __init__(self, setting: str, limit: int, reached: LimitsReached) -> None:
        self.setting, self.limit, self.reached = setting, limit, reached
        self.in_flight = 0

    def take(self) -> None:
        """One more in flight, or Overloaded (429) when the budget is spent."""
        if self.in_flight >= self.limit:
            self.reached(self.setting)
            raise Overloaded(
                f"{self.in_flight} requests in flight, limit {self.setting}={self.limit}; "
                "retry shortly",
                {"Retry-After": "1"},
            )
        self.in_flight += 1


class Slot:
    """The budget one request is counted in: the unauthenticated one, or none until its key is
    checked; then the keyed one."""

    def __init__(self, budget: Budget | None, keyed: Budget) -> None:
        self.budget, self.keyed = budget, keyed

    def promote(self) -> None:
        if self.budget is not self.keyed:
            self.keyed.take()
            if self.budget is not None:
                self.budget.in_flight -= 1
            self.budget = self.keyed


class Admission:
    """The two budgets; ``checks_key(scope)`` tells a request whose route checks a key."""

    def __init__(
        self,
        max_inflight_requests: int,
        max_unauthenticated_requests: int,
        checks_key: Callable[[Scope], bool],
        reached: LimitsReached,
    ) -> None:
        self.keyed = Budget("max_inflight_requests", max_inflight_requests, reached)
        self.unauthenticated = Budget(
            "max_unauthenticated_requests", max_unauthenticated_requests, reached
        )
        self.checks_key, self.reached = checks_key, reached

    @asynccontextmanager
    async def slot(self, scope: Scope) -> AsyncIterator[None]:
        """The request counted in its budget while it runs; Overloaded if the budget is spent."""
        if scope["path"] in NEVER_SHED:
            yield
            return
        budget = None if self.checks_key(scope) else self.unauthenticated
        if budget is not None:
            budget.take()
        slot = scope[SLOT] = Slot(budget, self.keyed)
        try:
            yield
        finally:
            if slot.budget is not None:
                slot.budget.in_flight -= 1


def promote(scope: Scope) -> None:
    """The request's key was checked and admitted: it is counted in the keyed budget, or gets
    Overloaded (429) if that is spent. Idempotent; nothing outside ``Admission``."""
    slot: Slot | None = scope.get(SLOT)
    if slot is not None:
        slot.promote()
