"""Glossaries in Redis (``TONGYEOK_STATE_URL=redis://...``): one set for every replica.

The same API as the SQLite store (``GlossaryStore``), the same owners (a hash of the key) and the
same bounds, checked by the same code before anything is written. Layout, under ``tongyeok:``:
``glossary:{id}`` a hash of ``owner``, ``name``, ``created`` and ``dictionaries`` (JSON: a list
of ``[source_lang, target_lang, [[source, target], ...]]``, the entries in their order), and
``glossaries:{owner}`` a sorted set of the owner's ids by creation time. Creating and deleting
are each one Lua script, atomic in Redis: the 100-per-key bound is checked and the glossary
added in one step, so two replicas cannot both add a key's 100th. The entries' bounds are
checked while they are parsed (``parse_entries``), before the script, and need no lock.

Blocking calls (a synchronous client, run off the event loop like SQLite's), each with a
one-second socket timeout: a Redis that is down or stalled is ``StateUnavailable``, a 503.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import Any

import redis
from redis.exceptions import RedisError

from service.errors import NotFound
from service.state.glossaries import (
    MAX_GLOSSARIES,
    Dictionary,
    Glossary,
    GlossaryError,
    checked,
)
from service.state.keys import StateUnavailable
from service.state.redis_keys import PREFIX, TIMEOUT

# KEYS[1] the owner's set, KEYS[2] the glossary; ARGV: limit, created, id, owner, name, JSON.
# 1 if added, 0 if the owner has ``limit`` already.
CREATE = """
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[2], 'owner', ARGV[4], 'name', ARGV[5], 'created', ARGV[2],
           'dictionaries', ARGV[6])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
return 1
"""
# KEYS[1] the owner's set, KEYS[2] the glossary; ARGV: owner, id. 1 if deleted, 0 if not theirs.
DELETE = """
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[2])
return 1
"""


def encoded(dictionaries: tuple[Dictionary, ...]) -> str:
    return json.dumps(
        [[d.source_lang, d.target_lang, list(d.entries.items())] for d in dictionaries],
        ensure_ascii=False,
    )


def decoded(glossary_id: str, fields: dict[bytes, bytes]) -> Glossary:
    dictionaries = tuple(
        Dictionary(source, target, {s: t for s, t in entries})
        for source, target, entries in json.loads(fields[b"dictionaries"])
    )
    return Glossary(glossary_id, fields[b"name"].decode(), float(fields[b"created"]), dictionaries)


class RedisGlossaryStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(
            url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, retry_on_timeout=False
        )

    def call(self, what: str, command: str, *args: Any) -> Any:
        try:
            return self.client.execute_command(command, *args)
        except (RedisError, OSError) as exc:
            where = self.url.split("@")[-1]  # never a password in a message
            raise StateUnavailable(f"glossary database {where}: {what}: {exc}") from None

    def create(self, owner: str, name: str, dictionaries: list[Dictionary]) -> Glossary:
        name = checked(name, dictionaries)
        glossary = Glossary(str(uuid.uuid4()), name, time.time(), tuple(dictionaries))
        keys = (f"{PREFIX}glossaries:{owner}", f"{PREFIX}glossary:{glossary.glossary_id}")
        added = self.call(
            "adding a glossary",
            "EVAL",
            CREATE,
            2,
            *keys,
            MAX_GLOSSARIES,
            repr(glossary.created),
            glossary.glossary_id,
            owner,
            name,
            encoded(glossary.dictionaries),
        )
        if not added:
            raise GlossaryError(f"a key may keep at most {MAX_GLOSSARIES} glossaries")
        return glossary

    def get(self, owner: str, glossary_id: str) -> Glossary:
        """The glossary, if ``owner`` has it (another key's is as absent as a missing one)."""
        fields = self.call("reading a glossary", "HGETALL", f"{PREFIX}glossary:{glossary_id}")
        if not fields or fields.get(b"owner", b"").decode() != owner:
            raise NotFound(f"no glossary {glossary_id!r}")
        return decoded(glossary_id, fields)

    def list(self, owner: str) -> list[Glossary]:
        ids = self.call("listing glossaries", "ZRANGE", f"{PREFIX}glossaries:{owner}", 0, -1)
        found = []
        for glossary_id in ids:
            with contextlib.suppress(NotFound):  # deleted by another replica meanwhile
                found.append(self.get(owner, glossary_id.decode()))
        return found

    def delete(self, owner: str, glossary_id: str) -> None:
        keys = (f"{PREFIX}glossaries:{owner}", f"{PREFIX}glossary:{glossary_id}")
        if not self.call("deleting a glossary", "EVAL", DELETE, 2, *keys, owner, glossary_id):
            raise NotFound(f"no glossary {glossary_id!r}")

    def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            self.client.close()
