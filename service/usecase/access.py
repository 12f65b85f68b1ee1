"""Who may ask, how often and for how much: API keys, their request rate and character quota.

``Access.admit`` runs at the edge, in the key check every route but the probes runs, before the
body is parsed or any work is done: a key from the environment (``TONGYEOK_API_KEYS``) or from
the key store (``tongyeok keys add``); the key's rate (the ``limits`` library's moving window,
in memory, or in Redis where the store is, so that every replica counts one rate); and whether
its quota is already spent. It returns the request's ``Account``, set in ``ACCOUNT`` for the use
case, which charges each translation's characters before it queues (``charged``): an atomic
check-and-add in the store, so concurrent requests can never pass the quota together.

Billing, exactly once per accepted request: the charge is held in the request's ``Ledger``
(api/metering.py) and given back unless the request is answered 2xx, so a request refused,
failed, timed out or abandoned by its client is not billed. A request partly served and then
failed (a DeepL document whose later batch fails) is answered with an error: nothing is billed.
A document translated after its upload was answered has no open ledger: each of its batches is
billed once served, and a failing batch is given back.
"""

from __future__ import annotations

import contextlib
import hmac
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from pydantic import SecretStr

from service.errors import Forbidden, ServiceError, Unauthorized
from service.state.keys import KeyRecord, KeyStore, StateUnavailable, digest_of, period_of

Failure = Literal["closed", "open"]


class RateLimited(ServiceError):
    """More requests a minute than the key's limit."""

    status, error_type = 429, "rate_limited"


class QuotaExceeded(ServiceError):
    """The key's characters for this period are spent (DeepL's routes answer 456)."""

    status, error_type = 429, "quota_exceeded"


@dataclass
class Charge:
    account: Account
    period: str
    characters: int

    async def refund(self) -> None:
        # a refund lost errs for the client: the count is high, never low
        with contextlib.suppress(StateUnavailable):
            await self.account.store.refund(self.account.digest, self.period, self.characters)


@dataclass
class Account:
    """The key a request came with, and what it may spend."""

    store: KeyStore
    record: KeyRecord
    failure: Failure

    @property
    def digest(self) -> str:
        return self.record.digest

    @property
    def client(self) -> str:
        """Who the scheduler shares between (api/deps.py's ``key_digest``)."""
        return "key:" + self.digest[:16]

    async def charge(self, characters: int) -> Charge | None:
        """The charge; QuotaExceeded past the quota; None where the store is down and either
        the policy is ``open`` or the key has no quota to hold (an environment key: served,
        not billed, as in a read-only container)."""
        period, end = period_of(self.record.period, time.time())
        try:
            fits = await self.store.charge(self.digest, period, characters, self.record.characters)
        except StateUnavailable:
            if self.failure == "open" or self.record.characters is None:
                return None
            raise
        if not fits:
            raise quota_exceeded(self.record, end)
        return Charge(self, period, characters)


def quota_exceeded(record: KeyRecord, end: float) -> QuotaExceeded:
    wait = max(1, math.ceil(end - time.time()))
    return QuotaExceeded(
        f"quota of {record.characters} characters per {record.period} reached for key "
        f"{record.name!r}",
        {"Retry-After": str(wait)},
    )


@dataclass(frozen=True)
class Usage:
    name: str
    period: str  # 2026-12, or 2026-12-07
    period_end: float  # seconds since the epoch
    characters: int
    character_limit: int | None
    requests: int  # billed this period
    requests_per_minute: int | None
    expires: float | None


@dataclass
class Ledger:
    """One HTTP request's charges, given back unless it is answered 2xx (api/metering.py)."""

    held: list[Charge] = field(default_factory=list)
    closed: bool = False

    async def close(self, answered: bool) -> None:
        self.closed = True
        charges, self.held = self.held, []
        if not answered:
            for charge in charges:
                await charge.refund()


ACCOUNT: ContextVar[Account | None] = ContextVar("tongyeok_account", default=None)
LEDGER: ContextVar[Ledger | None] = ContextVar("tongyeok_ledger", default=None)


@asynccontextmanager
async def charged(characters: int) -> AsyncIterator[None]:
    """Charges the request's key ``characters`` around the work; given back if it fails."""
    account = ACCOUNT.get()
    charge = await account.charge(characters) if account is not None and characters else None
    try:
        yield
    except BaseException:
        if charge is not None:
            await charge.refund()
        raise
    ledger = LEDGER.get()
    if charge is not None and ledger is not None and not ledger.closed:
        ledger.held.append(charge)


class Access:
    """The keys: from the environment (no limits) and from ``store`` (each its own)."""

    def __init__(
        self,
        static: list[SecretStr],
        store: KeyStore,
        rates: Storage,
        failure: Failure = "closed",
        wrong_per_minute: int = 0,
    ) -> None:
        self.static = [s.get_secret_value().encode() for s in static]
        self.store, self.failure = store, failure
        self.rates = rates
        self.limiter = MovingWindowRateLimiter(rates)
        # wrong keys an address may send a minute (none: unlimited)
        self.wrong = RateLimitItemPerMinute(wrong_per_minute) if wrong_per_minute else None

    @classmethod
    def build(
        cls,
        static: list[SecretStr],
        store: KeyStore,
        url: str | None,
        failure: Failure,
        wrong_per_minute: int = 0,
    ) -> Access:
        """Rates in the same Redis as the store (``url``), else in this process's memory."""
        rates: Storage = (
            RedisStorage(url, wrap_exceptions=True, implementation="redispy", socket_timeout=1.0)
            if url is not None and url.startswith(("redis://", "rediss://"))
            else MemoryStorage()
        )
        return cls(static, store, rates, failure, wrong_per_minute)

    async def admit(self, given: str | None, address: str = "") -> Account | None:
        """The request's account; None where the service has no keys at all (anyone may
        ask). Unauthorized (401) without a key, Forbidden (403) for a wrong, revoked or expired
        one, RateLimited (429) past the key's rate or the wrong keys ``address`` may send,
        QuotaExceeded, StateUnavailable (503)."""
        if given is None:
            if self.static or await self.store.any_keys():
                raise Unauthorized("missing API key (Authorization: Bearer KEY)")
            return None
        await self.check_guessing(address)
        return await self.account(given, address)

    async def account(self, given: str, address: str) -> Account | None:
        """``admit`` for a key that was given; a key that is none of ours counts against
        ``address`` (a revoked or expired one is not a guess)."""
        offered = given.encode("utf-8", "surrogatepass")
        digest = digest_of(given)
        # every environment key compared, in constant time, before the store is asked
        if any([hmac.compare_digest(offered, key) for key in self.static]):
            return Account(self.store, KeyRecord("environment", digest), self.failure)
        record = await self.store.find(digest)
        now = time.time()
        if record is None or not record.active(now):
            if record is None and not self.static and not await self.store.any_keys():
                return None  # no keys at all: a key is accepted and ignored, as before
            if record is None:
                await self.count_wrong(address)
                raise Forbidden("invalid API key")
            raise Forbidden(f"{'expired' if record.revoked is None else 'revoked'} API key")
        await self.check_rate(record)
        if record.characters is not None:
            period, end = period_of(record.period, now)
            characters, _ = await self.store.used(digest, period)
            if characters >= record.characters:
                raise quota_exceeded(record, end)
        return Account(self.store, record, self.failure)

    async def check_guessing(self, address: str) -> None:
        """RateLimited while ``address`` has sent its wrong keys for the minute: every key it
        sends is refused unchecked, the right one too (else its answer would tell a guess that
        hit). Behind a proxy every client shares it: the setting's 0 turns this off."""
        if self.wrong is None or not address:
            return
        try:
            if await self.limiter.test(self.wrong, "wrong-key", address):
                return
            stats = await self.limiter.get_window_stats(self.wrong, "wrong-key", address)
        except StorageError:
            return  # the key check itself reports the store (StateUnavailable)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"more than {self.wrong.amount} wrong API keys a minute from this address; retry "
            f"in {wait} s with the right one",
            {"Retry-After": str(wait)},
        )

    async def count_wrong(self, address: str) -> None:
        if self.wrong is None or not address:
            return
        with contextlib.suppress(StorageError):
            await self.limiter.hit(self.wrong, "wrong-key", address)

    async def check_rate(self, record: KeyRecord) -> None:
        if record.per_minute is None:
            return
        item = RateLimitItemPerMinute(record.per_minute)
        try:
            if await self.limiter.hit(item, record.digest):
                return
            stats = await self.limiter.get_window_stats(item, record.digest)
        except StorageError as exc:
            if self.failure == "open":
                return
            raise StateUnavailable(f"rate limits: {exc}") from None
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"more than {record.per_minute} requests a minute for key {record.name!r}",
            {"Retry-After": str(wait)},
        )

    async def usage(self, account: Account) -> Usage:
        """The key's own use this period (DeepL's /v2/usage, the native /v1/usage)."""
        record = account.record
        period, end = period_of(record.period, time.time())
        characters, requests = await self.store.used(record.digest, period)
        return Usage(
            record.name,
            period,
            end,
            characters,
            record.characters,
            requests,
            record.per_minute,
            record.expires,
        )

    async def ready(self) -> str | None:
        """None when the store answers, else why not (for /readyz)."""
        try:
            await self.store.ping()
        except StateUnavailable as exc:
            return exc.message
        return None

    async def close(self) -> None:
        await self.store.close()
