"""Document jobs in Redis (``TONGYEOK_STATE_URL=redis://...``): one set of jobs for every replica.

The same API as the SQLite store (``DocumentStore``). Layout, under ``tongyeok:``:
``document:{id}`` a hash of the record, ``document-result:{id}`` the result's bytes, both
expiring at the job's expiry (``PEXPIREAT``), so nothing outlives it even if every replica dies;
``documents`` and ``documents:{owner}`` sorted sets of ids by expiry, ``document-bytes`` a hash
of id -> bytes held. Adding (the bounds checked against those sums, expired ids dropped first),
finishing, abandoning and taking are each one Lua script, atomic in Redis: two replicas cannot
both pass a bound, and of two takers one gets the result and the other nothing. The sums are
loops in the script over the owner's jobs (at most its bound) and over every live job.

Blocking calls (a synchronous client, run off the event loop, as the glossaries'), each with a
one-second socket timeout: a Redis that is down or stalled is ``StateUnavailable``, a 503.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import redis
from redis.exceptions import RedisError

from service.state.documents import (
    CHANGEABLE,
    Bounds,
    DocumentRecord,
    Refusal,
    State,
)
from service.state.keys import StateUnavailable
from service.state.redis_keys import PREFIX, TIMEOUT

ALL, SIZES = f"{PREFIX}documents", f"{PREFIX}document-bytes"

# KEYS: all ids, the owner's ids, sizes, the record; ARGV: now, per owner, owner bytes, all
# bytes, size, id, expires (s), expires (ms), then the record's field/value pairs.
ADD = """
local now = tonumber(ARGV[1])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
  redis.call('HDEL', KEYS[3], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local size = tonumber(ARGV[5])
local mine = redis.call('ZRANGE', KEYS[2], 0, -1)
if #mine >= tonumber(ARGV[2]) then return 'count' end
local held = 0
for _, id in ipairs(mine) do held = held + tonumber(redis.call('HGET', KEYS[3], id) or '0') end
if held + size > tonumber(ARGV[3]) then return 'owner_bytes' end
local all = 0
for _, bytes in ipairs(redis.call('HVALS', KEYS[3])) do all = all + tonumber(bytes) end
if all + size > tonumber(ARGV[4]) then return 'all_bytes' end
redis.call('HSET', KEYS[4], unpack(ARGV, 9))
redis.call('PEXPIREAT', KEYS[4], ARGV[8])
redis.call('ZADD', KEYS[1], ARGV[7], ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[6])
redis.call('PEXPIREAT', KEYS[2], ARGV[8])
redis.call('HSET', KEYS[3], ARGV[6], size)
return 'ok'
"""
UNFINISHED = "local state = redis.call('HGET', KEYS[1], 'state')\n" + (
    "if state ~= 'queued' and state ~= 'translating' then return 0 end\n"
)
# KEYS: the record, sizes; ARGV: id, then field/value pairs. 1 if changed.
UPDATE = f"""{UNFINISHED}
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('HSET', KEYS[2], ARGV[1], redis.call('HGET', KEYS[1], 'size'))
return 1
"""
# KEYS: the record, sizes; ARGV: id, before, message. 1 if marked.
ABANDON = f"""{UNFINISHED}
if tonumber(redis.call('HGET', KEYS[1], 'beat')) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'state', 'error', 'error', ARGV[3], 'size', 0)
redis.call('HSET', KEYS[2], ARGV[1], 0)
return 1
"""
# KEYS: the record, the result, sizes; ARGV: id, result, billed. 1 if kept.
FINISH = f"""{UNFINISHED}
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
redis.call('HSET', KEYS[1], 'state', 'done', 'billed', ARGV[3], 'size', #ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], #ARGV[2])
return 1
"""
# KEYS: the record, the result, sizes, all ids, the owner's ids; ARGV: id, owner, key digest.
# The result, or nil (nothing deleted) if the job is not the owner's with that key, or not done.
TAKE = """
local found = redis.call('HMGET', KEYS[1], 'owner', 'key_digest', 'state')
if found[1] ~= ARGV[2] or found[2] ~= ARGV[3] or found[3] ~= 'done' then return false end
local result = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return result
"""

NUMBERS: dict[str, type[int] | type[float]] = {
    "size": int, "billed": int, "done": int, "total": int,
    "created": float, "expires": float, "beat": float, "started": float,
}  # fmt: skip
OPTIONAL = frozenset({"billed", "error", "started"})  # "" in Redis


def encoded(record: DocumentRecord) -> list[str]:
    return [
        x
        for name, value in dataclasses.asdict(record).items()
        for x in (name, "" if value is None else str(value))
    ]


def decoded(fields: dict[bytes, bytes]) -> DocumentRecord:
    text = {k.decode(): v.decode() for k, v in fields.items()}
    values: dict[str, Any] = {}
    for name in (f.name for f in dataclasses.fields(DocumentRecord)):
        value = text[name]
        if name in OPTIONAL and value == "":
            values[name] = None
        else:
            values[name] = NUMBERS[name](value) if name in NUMBERS else value
    return DocumentRecord(**{**values, "state": State(values["state"])})


class RedisDocumentStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry_on_timeout=False
        )

    def call(self, doing: str, command: str, *args: Any) -> Any:
        try:
            return self.client.execute_command(command, *args)
        except (RedisError, OSError) as exc:
            where = self.url.split("@")[-1]  # never a password in a message
            raise StateUnavailable(f"document database {where}: {doing}: {exc}") from None

    def add(self, record: DocumentRecord, bounds: Bounds, now: float) -> Refusal | None:
        keys = (ALL, f"{ALL}:{record.owner}", SIZES, f"{PREFIX}document:{record.id}")
        answer = self.call(
            "adding a document",
            "EVAL",
            ADD,
            len(keys),
            *keys,
            repr(now),
            bounds.per_owner,
            bounds.owner_bytes,
            bounds.all_bytes,
            record.size,
            record.id,
            repr(record.expires),
            int(record.expires * 1000),
            *encoded(record),
        ).decode()
        return None if answer == "ok" else answer  # type: ignore[return-value]

    def find(self, job_id: str, now: float) -> DocumentRecord | None:
        fields = self.call("reading a document", "HGETALL", f"{PREFIX}document:{job_id}")
        record = decoded(fields) if fields else None
        return record if record is not None and record.expires > now else None

    def update(self, job_id: str, **changes: object) -> bool:
        if not changes.keys() <= CHANGEABLE:
            raise ValueError(f"not changeable: {sorted(changes.keys() - CHANGEABLE)}")
        pairs = [x for k, v in changes.items() for x in (k, "" if v is None else str(v))]
        keys = (f"{PREFIX}document:{job_id}", SIZES)
        return bool(self.call("updating a document", "EVAL", UPDATE, 2, *keys, job_id, *pairs))

    def finish(self, job_id: str, result: bytes, billed: int) -> bool:
        keys = (f"{PREFIX}document:{job_id}", f"{PREFIX}document-result:{job_id}", SIZES)
        return bool(
            self.call("keeping a document", "EVAL", FINISH, 3, *keys, job_id, result, billed)
        )

    def abandon(self, job_id: str, before: float, message: str) -> bool:
        keys = (f"{PREFIX}document:{job_id}", SIZES)
        return bool(
            self.call(
                "updating a document", "EVAL", ABANDON, 2, *keys, job_id, repr(before), message
            )
        )

    def take(self, job_id: str, owner: str, key_digest: str) -> bytes | None:
        keys = (
            f"{PREFIX}document:{job_id}",
            f"{PREFIX}document-result:{job_id}",
            SIZES,
            ALL,
            f"{ALL}:{owner}",
        )
        result = self.call(
            "handing over a document", "EVAL", TAKE, 5, *keys, job_id, owner, key_digest
        )
        return None if result is None else bytes(result)

    def ping(self) -> None:
        self.call("checking", "PING")

    def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            self.client.close()
