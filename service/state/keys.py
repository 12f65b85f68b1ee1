"""API keys and the characters each has used, in one store: SQLite by default, Redis to share.

A key is stored only as its SHA-256 (``digest``); its secret is shown once, when it is added.
Each key has a name, a character quota per period (a calendar month or day, UTC; None: no quota),
a request rate per minute (None: no limit) and an optional expiry. Characters are charged with
``charge``: one atomic check-and-add, so concurrent requests, in one process or many, can never
take a key past its quota (SQLite: ``BEGIN IMMEDIATE``, which serialises writers across
processes; Redis: a Lua script). A charge a request did not use is given back with ``refund``.

Every backend raises ``StateUnavailable`` (a 503, never a 500) when its database cannot be
reached, read or written; the caller decides what that means (``Settings.state_failure``).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, Protocol

from service.errors import ServiceError
from service.state.sqlite import SQLiteFile
from service.state.sqlite import StateUnavailable as StateUnavailable  # where callers import it

KEYS_FILE = "keys.sqlite3"  # in the data directory, beside the glossaries
Period = Literal["month", "day"]
PERIODS: tuple[Period, ...] = ("month", "day")
KEY_PREFIX = "ty-"  # a generated key's first characters, so that a leaked one is recognised


class KeyError_(ServiceError):
    """A key management request that cannot be done (a name taken, none such)."""

    status, error_type = 400, "invalid_key"


def digest_of(key: str) -> str:
    """What a key is stored and looked up as: its SHA-256, hex."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def period_of(period: Period, now: float) -> tuple[str, float]:
    """The period ``now`` falls in: its id (``2026-12``, ``2026-12-07``) and when it ends."""
    moment = datetime.fromtimestamp(now, UTC)
    if period == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), (start + timedelta(days=1)).timestamp()
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start.strftime("%Y-%m"), end.timestamp()


@dataclass(frozen=True)
class KeyRecord:
    name: str
    digest: str
    characters: int | None = None  # per period; None: no quota
    per_minute: int | None = None  # requests; None: no limit
    period: Period = "month"
    expires: float | None = None  # seconds since the epoch
    created: float = 0.0
    revoked: float | None = None

    def active(self, now: float) -> bool:
        return self.revoked is None and (self.expires is None or now < self.expires)


@dataclass(frozen=True)
class Limits:
    """What ``set-limits`` changes; a field left None is kept, ``clear`` names those removed."""

    characters: int | None = None
    per_minute: int | None = None
    period: Period | None = None
    expires: float | None = None
    clear: frozenset[str] = frozenset()

    def applied(self, record: KeyRecord) -> KeyRecord:
        changes: dict[str, object] = {
            name: value
            for name in ("characters", "per_minute", "period", "expires")
            if (value := getattr(self, name)) is not None
        }
        changes.update(dict.fromkeys(self.clear))
        return replace(record, **changes)  # type: ignore[arg-type]


class KeyStore(Protocol):
    """Keys and usage; every method may raise StateUnavailable."""

    async def find(self, digest: str) -> KeyRecord | None: ...
    async def any_keys(self) -> bool: ...
    async def charge(self, digest: str, period: str, characters: int, limit: int | None) -> bool:
        """Adds ``characters`` to the key's count for ``period`` unless that would pass
        ``limit``; False (nothing added) then. One request counted with them."""
        ...

    async def refund(self, digest: str, period: str, characters: int) -> None: ...
    async def used(self, digest: str, period: str) -> tuple[int, int]:
        """(characters, requests) charged in ``period``."""
        ...

    async def add(self, record: KeyRecord) -> None: ...
    async def all(self) -> list[KeyRecord]: ...
    async def update(self, name: str, limits: Limits) -> KeyRecord: ...
    async def revoke(self, name: str) -> KeyRecord: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


COLUMNS = "name, digest, characters, per_minute, period, expires, created, revoked"


class SQLiteKeyStore:
    """One SQLite file (``SQLiteFile``: WAL, migrations, failures as StateUnavailable), used
    from a worker thread (``BEGIN IMMEDIATE`` may wait for another process's write, up to its
    busy timeout; the event loop never does)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = SQLiteFile(path, "key database", MIGRATIONS)
        self.locked = self.file.locked
        self.absent = self.file.absent

    async def find(self, digest: str) -> KeyRecord | None:
        if self.absent():
            return None
        row = await asyncio.to_thread(
            self.locked,
            "reading a key",
            lambda db: db.execute(
                f"SELECT {COLUMNS} FROM api_key WHERE digest = ?", (digest,)
            ).fetchone(),
        )
        return None if row is None else KeyRecord(*row)

    async def any_keys(self) -> bool:
        if self.absent():
            return False
        return bool(
            await asyncio.to_thread(
                self.locked,
                "reading keys",
                lambda db: db.execute(
                    "SELECT EXISTS (SELECT 1 FROM api_key WHERE revoked IS NULL)"
                ).fetchone()[0],
            )
        )

    async def charge(self, digest: str, period: str, characters: int, limit: int | None) -> bool:
        return await asyncio.to_thread(
            self.locked, "charging", charge_sql, digest, period, characters, limit
        )

    async def refund(self, digest: str, period: str, characters: int) -> None:
        def refund(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE usage SET characters = MAX(characters - ?, 0), requests = requests - 1 "
                "WHERE digest = ? AND period = ?",
                (characters, digest, period),
            )

        await asyncio.to_thread(self.locked, "refunding", refund)

    async def used(self, digest: str, period: str) -> tuple[int, int]:
        if self.absent():
            return 0, 0
        row = await asyncio.to_thread(
            self.locked,
            "reading usage",
            lambda db: db.execute(
                "SELECT characters, requests FROM usage WHERE digest = ? AND period = ?",
                (digest, period),
            ).fetchone(),
        )
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    async def add(self, record: KeyRecord) -> None:
        def add(db: sqlite3.Connection) -> bool:
            try:
                db.execute(
                    f"INSERT INTO api_key ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.name,
                        record.digest,
                        record.characters,
                        record.per_minute,
                        record.period,
                        record.expires,
                        record.created,
                        record.revoked,
                    ),
                )
            except sqlite3.IntegrityError:
                return False
            return True

        if not await asyncio.to_thread(self.locked, "adding a key", add):
            raise KeyError_(f"a key named {record.name!r} exists already")

    async def all(self) -> list[KeyRecord]:
        rows = await asyncio.to_thread(
            self.locked,
            "listing keys",
            lambda db: db.execute(f"SELECT {COLUMNS} FROM api_key ORDER BY created").fetchall(),
        )
        return [KeyRecord(*row) for row in rows]

    async def update(self, name: str, limits: Limits) -> KeyRecord:
        record = limits.applied(await self.named(name))
        await asyncio.to_thread(
            self.locked,
            "changing a key",
            lambda db: db.execute(
                "UPDATE api_key SET characters = ?, per_minute = ?, period = ?, expires = ? "
                "WHERE name = ?",
                (record.characters, record.per_minute, record.period, record.expires, name),
            ),
        )
        return record

    async def revoke(self, name: str) -> KeyRecord:
        record = replace(await self.named(name), revoked=time.time())
        await asyncio.to_thread(
            self.locked,
            "revoking a key",
            lambda db: db.execute(
                "UPDATE api_key SET revoked = ? WHERE name = ?", (record.revoked, name)
            ),
        )
        return record

    async def named(self, name: str) -> KeyRecord:
        row = await asyncio.to_thread(
            self.locked,
            "reading a key",
            lambda db: db.execute(
                f"SELECT {COLUMNS} FROM api_key WHERE name = ?", (name,)
            ).fetchone(),
        )
        if row is None:
            raise KeyError_(f"no key named {name!r}")
        return KeyRecord(*row)

    async def ping(self) -> None:
        await asyncio.to_thread(self.file.ping)

    async def close(self) -> None:
        self.file.forget()


def charge_sql(
    db: sqlite3.Connection, digest: str, period: str, characters: int, limit: int | None
) -> bool:
    db.execute("BEGIN IMMEDIATE")  # the write lock first: no other writer between check and add
    try:
        row = db.execute(
            "SELECT characters FROM usage WHERE digest = ? AND period = ?", (digest, period)
        ).fetchone()
        used = 0 if row is None else int(row[0])
        if limit is not None and used + characters > limit:
            db.execute("ROLLBACK")
            return False
        db.execute(
            "INSERT INTO usage (digest, period, characters, requests) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (digest, period) DO UPDATE SET "
            "characters = characters + excluded.characters, requests = requests + 1",
            (digest, period, characters),
        )
        db.execute("COMMIT")
        return True
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


MIGRATIONS = {
    1: """
    CREATE TABLE api_key (
        name TEXT NOT NULL UNIQUE, digest TEXT PRIMARY KEY, characters INTEGER,
        per_minute INTEGER, period TEXT NOT NULL, expires REAL, created REAL NOT NULL,
        revoked REAL);
    CREATE TABLE usage (
        digest TEXT NOT NULL, period TEXT NOT NULL, characters INTEGER NOT NULL,
        requests INTEGER NOT NULL, PRIMARY KEY (digest, period));
    """,
}
