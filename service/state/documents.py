"""DeepL's document jobs in the state store, so that any replica answers a job's status and hands
over its result: the record of each job and its result bytes, in SQLite by default
(``documents.sqlite3`` in the data directory: the result a BLOB beside its record, so taking
one is one transaction and expiring one is one DELETE) or in Redis (``redis_documents.py``).

A job is added with its bounds checked in the same step (``add``: per owner count and bytes, all
bytes), so replicas racing cannot pass them; its result is taken once (``take``: read and deleted
in one step, a second taker finds nothing, a 404 as DeepL). Every record carries an absolute
expiry (seconds since the epoch) and is gone after it. The process that translates a job (its
``runner``) writes a heartbeat into the record; a job still queued or translating whose beat is
older than ``LEASE`` lost its runner (a crash, a kill, a Redis cut off) and reads as an error.
Blocking calls, run off the event loop; a store that cannot be reached, read or written raises
``StateUnavailable`` (503).
"""

from __future__ import annotations

import sqlite3
from dataclasses import astuple, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Literal, Protocol

from service.state.sqlite import SQLiteFile

DOCUMENTS_FILE = "documents.sqlite3"  # in the data directory, beside keys and glossaries
HEARTBEAT = 2.0  # seconds between a runner's writes of its jobs' beat and progress
LEASE = 10.0  # seconds without a beat after which a job's runner is taken for dead
Refusal = Literal["count", "owner_bytes", "all_bytes"]


class State(StrEnum):
    QUEUED = "queued"
    TRANSLATING = "translating"
    DONE = "done"
    ERROR = "error"


UNFINISHED = (State.QUEUED, State.TRANSLATING)


@dataclass(frozen=True)
class DocumentRecord:
    """One job as every replica sees it. ``key_digest``: SHA-256 of its document key (the key
    itself is never stored). ``size``: bytes held, the upload's until it is translated, then
    the result's (0 after an error). ``done``/``total``: segments translated and known so far,
    as of ``beat``, with ``started`` when translating began (for an estimate of the rest)."""

    id: str
    owner: str
    key_digest: str
    media_type: str
    filename: str
    size: int
    created: float
    expires: float
    runner: str
    state: State = State.QUEUED
    billed: int | None = None
    error: str | None = None
    beat: float = 0.0
    started: float | None = None
    done: int = 0
    total: int = 0

    def orphaned(self, now: float) -> bool:
        return self.state in UNFINISHED and self.beat < now - LEASE


@dataclass(frozen=True)
class Bounds:
    per_owner: int  # jobs
    owner_bytes: int
    all_bytes: int


class DocumentStore(Protocol):
    """The jobs of every replica (``stores.open_documents``); each call may raise
    StateUnavailable."""

    def add(self, record: DocumentRecord, bounds: Bounds, now: float) -> Refusal | None:
        """Adds ``record`` unless its owner's jobs or all jobs would pass ``bounds`` (which
        one, then); expired jobs are dropped first."""
        ...

    def find(self, job_id: str, now: float) -> DocumentRecord | None: ...
    def update(self, job_id: str, **changes: object) -> bool:
        """Changes a queued or translating job's fields; False if it is gone or finished (a
        runner taken for dead writes nothing more)."""
        ...

    def finish(self, job_id: str, result: bytes, billed: int) -> bool:
        """Keeps ``result`` and marks the job done, if it is still queued or translating."""
        ...

    def abandon(self, job_id: str, before: float, message: str) -> bool:
        """Marks a queued or translating job whose last beat is older than ``before`` as an
        error (its runner is gone); False if it was not (or is gone)."""
        ...

    def take(self, job_id: str, owner: str, key_digest: str) -> bytes | None:
        """The result of ``owner``'s done job with that key, deleted with its record in the
        same step; None (nothing deleted) if there is no such job or it is not done."""
        ...

    def ping(self) -> None: ...
    def close(self) -> None: ...


COLUMNS = ", ".join(f.name for f in fields(DocumentRecord))
MIGRATIONS = {
    1: """
    CREATE TABLE job (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, key_digest TEXT NOT NULL,
        media_type TEXT NOT NULL, filename TEXT NOT NULL, size INTEGER NOT NULL,
        created REAL NOT NULL, expires REAL NOT NULL, runner TEXT NOT NULL, state TEXT NOT NULL,
        billed INTEGER, error TEXT, beat REAL NOT NULL, started REAL, done INTEGER NOT NULL,
        total INTEGER NOT NULL);
    CREATE INDEX job_owner ON job(owner);
    CREATE INDEX job_expires ON job(expires);
    CREATE TABLE result (id TEXT PRIMARY KEY, data BLOB NOT NULL);
    """,
}
CHANGEABLE = frozenset({"state", "billed", "error", "beat", "started", "done", "total", "size"})


def record_of(row: tuple[object, ...]) -> DocumentRecord:
    record = DocumentRecord(*row)  # type: ignore[arg-type]
    return DocumentRecord(**{**record.__dict__, "state": State(record.state)})


class SQLiteDocumentStore:
    """The jobs in ``path``; its writes take SQLite's write lock first (``BEGIN IMMEDIATE``), so
    the uvicorn workers sharing the file check the bounds one at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = SQLiteFile(path, "document database", MIGRATIONS)

    def add(self, record: DocumentRecord, bounds: Bounds, now: float) -> Refusal | None:
        def add(db: sqlite3.Connection) -> Refusal | None:
            with transaction(db):
                expire(db, now)
                count, owner_bytes = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM job WHERE owner = ?",
                    (record.owner,),
                ).fetchone()
                all_bytes = db.execute("SELECT COALESCE(SUM(size), 0) FROM job").fetchone()[0]
                refusal = refused(bounds, count, owner_bytes, all_bytes, record.size)
                if refusal is None:
                    marks = ", ".join("?" * len(fields(DocumentRecord)))
                    db.execute(f"INSERT INTO job ({COLUMNS}) VALUES ({marks})", astuple(record))
                return refusal

        return self.file.locked("adding a document", add)

    def find(self, job_id: str, now: float) -> DocumentRecord | None:
        if self.file.absent():
            return None
        row = self.file.locked(
            "reading a document",
            lambda db: db.execute(
                f"SELECT {COLUMNS} FROM job WHERE id = ? AND expires > ?", (job_id, now)
            ).fetchone(),
        )
        return None if row is None else record_of(row)

    def update(self, job_id: str, **changes: object) -> bool:
        if not changes.keys() <= CHANGEABLE:
            raise ValueError(f"not changeable: {sorted(changes.keys() - CHANGEABLE)}")
        assignments = ", ".join(f"{name} = ?" for name in changes)
        return bool(
            self.file.locked(
                "updating a document",
                lambda db: (
                    db.execute(
                        f"UPDATE job SET {assignments} WHERE id = ? AND state IN (?, ?)",
                        (*changes.values(), job_id, *UNFINISHED),
                    ).rowcount
                ),
            )
        )

    def finish(self, job_id: str, result: bytes, billed: int) -> bool:
        def finish(db: sqlite3.Connection) -> bool:
            with transaction(db):
                changed = db.execute(
                    "UPDATE job SET state = ?, billed = ?, size = ? WHERE id = ? AND state IN "
                    "(?, ?)",
                    (State.DONE, billed, len(result), job_id, *UNFINISHED),
                ).rowcount
                if changed:
                    db.execute("INSERT OR REPLACE INTO result VALUES (?, ?)", (job_id, result))
                return bool(changed)

        return self.file.locked("keeping a document", finish)

    def abandon(self, job_id: str, before: float, message: str) -> bool:
        return bool(
            self.file.locked(
                "updating a document",
                lambda db: (
                    db.execute(
                        "UPDATE job SET state = ?, error = ?, size = 0 WHERE id = ? AND state IN "
                        "(?, ?) AND beat < ?",
                        (State.ERROR, message, job_id, *UNFINISHED, before),
                    ).rowcount
                ),
            )
        )

    def take(self, job_id: str, owner: str, key_digest: str) -> bytes | None:
        if self.file.absent():
            return None

        def take(db: sqlite3.Connection) -> bytes | None:
            with transaction(db):
                taken = db.execute(
                    "DELETE FROM job WHERE id = ? AND owner = ? AND key_digest = ? AND state = ?",
                    (job_id, owner, key_digest, State.DONE),
                ).rowcount
                if not taken:
                    return None
                data = db.execute("SELECT data FROM result WHERE id = ?", (job_id,)).fetchone()
                db.execute("DELETE FROM result WHERE id = ?", (job_id,))
                return None if data is None else bytes(data[0])

        return self.file.locked("handing over a document", take)

    def ping(self) -> None:
        self.file.ping()

    def close(self) -> None:
        self.file.forget()


class transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:
            self.db.execute("ROLLBACK")


def expire(db: sqlite3.Connection, now: float) -> None:
    db.execute("DELETE FROM result WHERE id IN (SELECT id FROM job WHERE expires <= ?)", (now,))
    db.execute("DELETE FROM job WHERE expires <= ?", (now,))


def refused(
    bounds: Bounds, count: int, owner_bytes: int, all_bytes: int, size: int
) -> Refusal | None:
    """Which bound one more job of ``size`` bytes would pass, if any (checked in this order)."""
    if count >= bounds.per_owner:
        return "count"
    if owner_bytes + size > bounds.owner_bytes:
        return "owner_bytes"
    if all_bytes + size > bounds.all_bytes:
        return "all_bytes"
    return None
