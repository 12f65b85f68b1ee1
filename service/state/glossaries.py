"""Glossaries kept per API key in an embedded SQLite database, as DeepL keeps them per account.

One file under the data directory (``Settings.data_dir``), in WAL mode so that readers never wait
for a writer; a glossary and its entries are written in one transaction, so a crash leaves it
whole or absent. A file that cannot be opened, read or written (a read-only or full disk, a
corrupt file) is ``StateUnavailable``, a 503, as for the keys; no file yet is no glossaries.
Only a hash of the key that owns a glossary is stored. Entries are parsed and bounded here, by
DeepL's rules: TSV or CSV, no empty side, no control characters, one target per source term,
limits on their count and size and on glossaries per key.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from service.errors import InvalidRequest, NotFound
from service.state.sqlite import SQLiteFile

MAX_GLOSSARIES = 100  # per key
MAX_ENTRIES = 10_000  # per dictionary
MAX_ENTRY_BYTES = 1024  # per side, UTF-8, as DeepL
MAX_ENTRIES_BYTES = 2 * 1024 * 1024  # the entries as sent, per request
MAX_NAME_CHARS = 256
GLOSSARIES_FILE = "glossaries.sqlite3"  # in the data directory
ENTRY_FORMATS = ("tsv", "csv")


class GlossaryError(InvalidRequest):
    """Entries or a glossary DeepL would refuse: a 400 naming what is wrong."""

    status, error_type = 400, "invalid_glossary"


@dataclass(frozen=True)
class Dictionary:
    """One language pair's entries: source term -> target term."""

    source_lang: str
    target_lang: str
    entries: dict[str, str]


@dataclass(frozen=True)
class Glossary:
    glossary_id: str
    name: str
    created: float  # seconds since the epoch
    dictionaries: tuple[Dictionary, ...]

    def for_pair(self, source: str, target: str) -> Dictionary | None:
        return next(
            (d for d in self.dictionaries if (d.source_lang, d.target_lang) == (source, target)),
            None,
        )


def owner_of(key: str | None) -> str:
    """What a glossary's owner is stored as: a hash of the key (``anonymous`` without keys)."""
    return "anonymous" if key is None else hashlib.sha256(key.encode()).hexdigest()


def parse_entries(text: str, entries_format: str) -> dict[str, str]:
    """DeepL's entries (``source<TAB>target`` lines, or CSV rows ``source,target[,src,tgt]``)."""
    if entries_format not in ENTRY_FORMATS:
        raise GlossaryError(
            f"entries_format must be one of {ENTRY_FORMATS}, got {entries_format!r}"
        )
    if len(text.encode("utf-8", "surrogatepass")) > MAX_ENTRIES_BYTES:
        raise GlossaryError(f"the entries are larger than {MAX_ENTRIES_BYTES} bytes")
    rows: list[list[str]] = (
        [line.split("\t") for line in text.splitlines()]
        if entries_format == "tsv"
        else list(csv.reader(io.StringIO(text)))
    )
    entries: dict[str, str] = {}
    for number, row in enumerate(rows, 1):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank lines are allowed
        if len(row) < 2 or (entries_format == "tsv" and len(row) != 2):
            raise GlossaryError(f"entry {number}: expected a source and a target term")
        source, target = row[0].strip(), row[1].strip()
        for side, term in (("source", source), ("target", target)):
            if not term:
                raise GlossaryError(f"entry {number}: the {side} term is empty")
            if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in term):
                raise GlossaryError(f"entry {number}: the {side} term has a control character")
            try:
                size = len(term.encode("utf-8"))
            except UnicodeEncodeError:
                raise GlossaryError(f"entry {number}: not valid Unicode text") from None
            if size > MAX_ENTRY_BYTES:
                raise GlossaryError(
                    f"entry {number}: the {side} term exceeds {MAX_ENTRY_BYTES} bytes"
                )
        if source in entries:
            raise GlossaryError(f"entry {number}: the source term {source!r} is listed twice")
        entries[source] = target
        if len(entries) > MAX_ENTRIES:
            raise GlossaryError(f"more than {MAX_ENTRIES} entries")
    if not entries:
        raise GlossaryError("a glossary needs at least one entry")
    return entries


class GlossaryStore(Protocol):
    """The glossaries of every key: SQLite here, or Redis (``redis_glossaries.py``) where the
    settings name one (``stores.open_glossaries``). Blocking calls, run off the event loop; a
    store that cannot be reached raises ``StateUnavailable`` (503)."""

    def create(self, owner: str, name: str, dictionaries: list[Dictionary]) -> Glossary: ...
    def get(self, owner: str, glossary_id: str) -> Glossary: ...
    def list(self, owner: str) -> list[Glossary]: ...
    def delete(self, owner: str, glossary_id: str) -> None: ...
    def close(self) -> None: ...


def checked(name: str, dictionaries: list[Dictionary]) -> str:
    """The glossary's name, stripped, if it and its language pairs are ones DeepL would take."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise GlossaryError(f"a glossary needs a name of 1 to {MAX_NAME_CHARS} characters")
    pairs = [(d.source_lang, d.target_lang) for d in dictionaries]
    if not pairs or len(set(pairs)) != len(pairs):
        raise GlossaryError("one dictionary per language pair, at least one")
    return name


MIGRATIONS = {
    1: """
    CREATE TABLE glossary (
        id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL);
    CREATE INDEX glossary_owner ON glossary(owner);
    CREATE TABLE entry (
        glossary TEXT NOT NULL REFERENCES glossary(id) ON DELETE CASCADE,
        source_lang TEXT NOT NULL, target_lang TEXT NOT NULL,
        source TEXT NOT NULL, target TEXT NOT NULL,
        PRIMARY KEY (glossary, source_lang, target_lang, source));
    """,
}


class SQLiteGlossaryStore:
    """The glossaries of every key, in ``path`` (created with its directory on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = SQLiteFile(path, "glossary database", MIGRATIONS, ("foreign_keys=ON",))

    def create(self, owner: str, name: str, dictionaries: list[Dictionary]) -> Glossary:
        name = checked(name, dictionaries)
        glossary = Glossary(str(uuid.uuid4()), name, time.time(), tuple(dictionaries))

        def create(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                count = db.execute(
                    "SELECT COUNT(*) FROM glossary WHERE owner = ?", (owner,)
                ).fetchone()[0]
                if count >= MAX_GLOSSARIES:
                    raise GlossaryError(f"a key may keep at most {MAX_GLOSSARIES} glossaries")
                db.execute(
                    "INSERT INTO glossary VALUES (?, ?, ?, ?)",
                    (glossary.glossary_id, owner, name, glossary.created),
                )
                db.executemany(
                    "INSERT INTO entry VALUES (?, ?, ?, ?, ?)",
                    [
                        (glossary.glossary_id, d.source_lang, d.target_lang, s, t)
                        for d in dictionaries
                        for s, t in d.entries.items()
                    ],
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

        self.file.locked("adding a glossary", create)
        return glossary

    def get(self, owner: str, glossary_id: str) -> Glossary:
        """The glossary, if ``owner`` has it (another key's is as absent as a missing one)."""

        def read(db: sqlite3.Connection) -> tuple[tuple[str, float] | None, list[tuple[str, ...]]]:
            row = db.execute(
                "SELECT name, created FROM glossary WHERE id = ? AND owner = ?",
                (glossary_id, owner),
            ).fetchone()
            if row is None:
                return None, []
            rows = db.execute(
                "SELECT source_lang, target_lang, source, target FROM entry WHERE glossary = ? "
                "ORDER BY source_lang, target_lang, rowid",
                (glossary_id,),
            ).fetchall()
            return row, rows

        row, rows = (
            (None, []) if self.file.absent() else self.file.locked("reading a glossary", read)
        )
        if row is None:
            raise NotFound(f"no glossary {glossary_id!r}")
        by_pair: dict[tuple[str, str], dict[str, str]] = {}
        for source_lang, target_lang, source, target in rows:
            by_pair.setdefault((source_lang, target_lang), {})[source] = target
        dictionaries = tuple(Dictionary(s, t, e) for (s, t), e in by_pair.items())
        return Glossary(glossary_id, row[0], row[1], dictionaries)

    def list(self, owner: str) -> list[Glossary]:
        if self.file.absent():
            return []
        ids = self.file.locked(
            "listing glossaries",
            lambda db: [
                r[0]
                for r in db.execute(
                    "SELECT id FROM glossary WHERE owner = ? ORDER BY created", (owner,)
                )
            ],
        )
        return [self.get(owner, glossary_id) for glossary_id in ids]

    def delete(self, owner: str, glossary_id: str) -> None:
        deleted = (
            0
            if self.file.absent()
            else self.file.locked(
                "deleting a glossary",
                lambda db: (
                    db.execute(
                        "DELETE FROM glossary WHERE id = ? AND owner = ?", (glossary_id, owner)
                    ).rowcount
                ),
            )
        )
        if not deleted:
            raise NotFound(f"no glossary {glossary_id!r}")

    def close(self) -> None:
        self.file.forget()
