"""One SQLite file of the state store: opened on first use (WAL, a busy timeout, its schema
brought up by versioned migrations), used by one thread at a time, every failure of the file
or its directory ``StateUnavailable`` (a 503, never a 500), and reopened at the next call after
a failure, so a database repaired or made writable again needs no restart. The keys, the
glossaries and the document jobs each keep their own file on it (each file's ``user_version``
numbers its own migrations: docs/decisions.md #53)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from service.errors import ServiceError

T = TypeVar("T")
BUSY_MS = 2000  # longer than any write takes; past it the store is called unavailable


class StateUnavailable(ServiceError):
    """The state store (keys, usage, glossaries, document jobs) cannot be reached, read or
    written."""

    status, error_type = 503, "state_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, {"Retry-After": "5"})


class SQLiteFile:
    """``path``, migrated by ``migrations`` (version -> SQL), named ``what`` in messages."""

    def __init__(
        self, path: Path, what: str, migrations: Mapping[int, str], pragmas: tuple[str, ...] = ()
    ) -> None:
        self.path, self.what, self.migrations, self.pragmas = path, what, migrations, pragmas
        self.lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=BUSY_MS / 1000
            )
            try:
                db.execute("PRAGMA journal_mode=WAL")
                for pragma in self.pragmas:  # a connection's own settings, e.g. foreign_keys
                    db.execute(f"PRAGMA {pragma}")
                migrate(db, self.path, self.migrations)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def locked(self, doing: str, fn: Callable[..., T], *args: object) -> T:
        """``fn(db, *args)`` under the lock; sqlite3's and the file system's errors as
        StateUnavailable naming the file."""
        try:
            with self.lock:
                return fn(self.db, *args)
        except sqlite3.Error as exc:
            self.forget()
            raise StateUnavailable(f"{self.what} {self.path}: {doing}: {exc}") from None
        except OSError as exc:
            raise StateUnavailable(f"{self.what} {self.path}: {doing}: {exc}") from None

    def forget(self) -> None:
        """Drop the connection, so the next call opens the file afresh."""
        with self.lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def absent(self) -> bool:
        """No file yet: nothing stored. Reads do not create it (a read-only data directory
        serves what needs no state), the first write does."""
        return self._db is None and not self.path.exists()

    def ping(self) -> None:
        """Reads and writes: a read-only or corrupt file fails here, not at a client's request
        (no file yet: nothing to check)."""
        if self.absent():
            return

        def check(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")

        self.locked("checking", check)


def migrate(db: sqlite3.Connection, path: Path, migrations: Mapping[int, str]) -> None:
    """Brings the schema to the last of ``migrations``, one versioned step per transaction."""
    latest = max(migrations)
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > latest:
        raise sqlite3.DatabaseError(
            f"{path}: written by a newer version (schema {version} > {latest})"
        )
    for step in range(version + 1, latest + 1):
        db.executescript(
            f"BEGIN IMMEDIATE; {migrations[step]} PRAGMA user_version = {step}; COMMIT;"
        )
