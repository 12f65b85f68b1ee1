"""The key store in Redis (``TONGYEOK_STATE_URL=redis://...``): one quota for every replica.

Layout, under ``tongyeok:``: ``key:{digest}`` a hash of the key's record, ``name:{name}`` its
digest, ``keys`` the set of digests, ``used:{digest}:{period}`` a hash of the period's
``characters`` and ``requests`` (expiring 40 days after its last charge). A charge is one Lua
script, atomic in Redis: the check and the add cannot be split by another replica's. Every call
has a one-second socket timeout, so a Redis that is down or stalled is a 503, never a hang.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, replace
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from service.state.keys import KeyError_, KeyRecord, Limits, StateUnavailable

PREFIX = "tongyeok:"
USAGE_TTL = 40 * 86400  # a month's count outlives its month, for /usage and the operator
TIMEOUT = 1.0  # seconds, to connect and for each reply

# KEYS[1] usage hash; ARGV: characters, limit (-1: none), ttl. 1 if charged, 0 if it would pass.
CHARGE = """
local used = tonumber(redis.call('HGET', KEYS[1], 'characters') or '0')
local limit = tonumber(ARGV[2])
if limit >= 0 and used + tonumber(ARGV[1]) > limit then return 0 end
redis.call('HINCRBY', KEYS[1], 'characters', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'requests', 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
REFUND = """
local used = tonumber(redis.call('HGET', KEYS[1], 'characters') or '0')
redis.call('HSET', KEYS[1], 'characters', math.max(used - tonumber(ARGV[1]), 0))
redis.call('HINCRBY', KEYS[1], 'requests', -1)
return 1
"""
# KEYS[1] name -> digest, KEYS[2] record, KEYS[3] set of digests; ARGV: digest, then fields.
ADD = """
if redis.call('SETNX', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""


def encoded(record: KeyRecord) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in asdict(record).items()}


def decoded(fields: dict[Any, Any]) -> KeyRecord:
    text = {(k.decode() if isinstance(k, bytes) else k): v.decode() for k, v in fields.items()}

    def number(name: str, kind: type[int] | type[float]) -> Any:
        return kind(text[name]) if text.get(name) else None

    return KeyRecord(
        name=text["name"],
        digest=text["digest"],
        characters=number("characters", int),
        per_minute=number("per_minute", int),
        period="day" if text.get("period") == "day" else "month",
        expires=number("expires", float),
        created=float(text.get("created") or 0),
        revoked=number("revoked", float),
    )


class RedisKeyStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry_on_timeout=False
        )

    def failed(self, what: str, exc: Exception) -> StateUnavailable:
        where = self.url.split("@")[-1]  # never a password in a message
        return StateUnavailable(f"key database {where}: {what}: {exc}")

    async def call(self, what: str, command: str, *args: Any) -> Any:
        try:
            return await self.client.execute_command(command, *args)
        except (RedisError, OSError) as exc:
            raise self.failed(what, exc) from None

    async def find(self, digest: str) -> KeyRecord | None:
        fields = await self.call("reading a key", "HGETALL", f"{PREFIX}key:{digest}")
        return decoded(fields) if fields else None

    async def any_keys(self) -> bool:
        return any(r.revoked is None for r in await self.all())

    async def charge(self, digest: str, period: str, characters: int, limit: int | None) -> bool:
        key = f"{PREFIX}used:{digest}:{period}"
        limit_arg = -1 if limit is None else limit
        done = await self.call("charging", "EVAL", CHARGE, 1, key, characters, limit_arg, USAGE_TTL)
        return bool(done)

    async def refund(self, digest: str, period: str, characters: int) -> None:
        await self.call(
            "refunding", "EVAL", REFUND, 1, f"{PREFIX}used:{digest}:{period}", characters
        )

    async def used(self, digest: str, period: str) -> tuple[int, int]:
        fields = await self.call("reading usage", "HGETALL", f"{PREFIX}used:{digest}:{period}")
        text = {k.decode(): int(v) for k, v in fields.items()}
        return text.get("characters", 0), text.get("requests", 0)

    async def add(self, record: KeyRecord) -> None:
        keys = (f"{PREFIX}name:{record.name}", f"{PREFIX}key:{record.digest}", f"{PREFIX}keys")
        if not await self.call("adding a key", "EVAL", ADD, 3, *keys, record.digest, *flat(record)):
            raise KeyError_(f"a key named {record.name!r} exists already")

    async def all(self) -> list[KeyRecord]:
        digests = await self.call("listing keys", "SMEMBERS", f"{PREFIX}keys")
        found = [await self.find(d.decode()) for d in digests]
        return sorted((r for r in found if r is not None), key=lambda r: r.created)

    async def named(self, name: str) -> KeyRecord:
        digest = await self.call("reading a key", "GET", f"{PREFIX}name:{name}")
        record = None if digest is None else await self.find(digest.decode())
        if record is None:
            raise KeyError_(f"no key named {name!r}")
        return record

    async def update(self, name: str, limits: Limits) -> KeyRecord:
        record = limits.applied(await self.named(name))
        await self.call("changing a key", "HSET", f"{PREFIX}key:{record.digest}", *flat(record))
        return record

    async def revoke(self, name: str) -> KeyRecord:
        record = replace(await self.named(name), revoked=time.time())
        await self.call("revoking a key", "HSET", f"{PREFIX}key:{record.digest}", *flat(record))
        return record

    async def ping(self) -> None:
        await self.call("checking", "PING")

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.client.aclose()


def flat(record: KeyRecord) -> list[str]:
    return [x for pair in encoded(record).items() for x in pair]
