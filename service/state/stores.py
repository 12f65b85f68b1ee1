"""The stores the settings name: Redis for ``redis://`` (shared by replicas), else SQLite files
under the data directory. The one place that chooses, for the keys, the glossaries and the
document jobs, so that all three are always in the same place."""

from __future__ import annotations

from pathlib import Path

from service.state.documents import DOCUMENTS_FILE, DocumentStore, SQLiteDocumentStore
from service.state.glossaries import GLOSSARIES_FILE, GlossaryStore, SQLiteGlossaryStore
from service.state.keys import KEYS_FILE, KeyStore, SQLiteKeyStore


def is_redis(url: str | None) -> bool:
    return url is not None and url.startswith(("redis://", "rediss://", "unix://"))


def open_store(url: str | None, data_path: Path) -> KeyStore:
    """``redis://...`` (``Settings.state_url``), else SQLite under the data directory."""
    if is_redis(url):
        from service.state.redis_keys import RedisKeyStore

        return RedisKeyStore(str(url))
    return SQLiteKeyStore(data_path / KEYS_FILE)


def open_glossaries(url: str | None, data_path: Path) -> GlossaryStore:
    """The glossaries where the keys are: Redis for ``redis://...``, else SQLite beside them."""
    if is_redis(url):
        from service.state.redis_glossaries import RedisGlossaryStore

        return RedisGlossaryStore(str(url))
    return SQLiteGlossaryStore(data_path / GLOSSARIES_FILE)


def open_documents(url: str | None, data_path: Path) -> DocumentStore:
    """The document jobs where the keys are: Redis for ``redis://...``, else SQLite beside them."""
    if is_redis(url):
        from service.state.redis_documents import RedisDocumentStore

        return RedisDocumentStore(str(url))
    return SQLiteDocumentStore(data_path / DOCUMENTS_FILE)
