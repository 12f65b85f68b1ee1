"""The key store the settings name: Redis for ``redis://`` (shared by replicas), else SQLite."""

from __future__ import annotations

from pathlib import Path

from service.state.keys import KEYS_FILE, KeyStore, SQLiteKeyStore


def open_store(url: str | None, data_path: Path) -> KeyStore:
    """``redis://...`` (``Settings.state_url``), else SQLite under the data directory."""
    if url is not None and url.startswith(("redis://", "rediss://", "unix://")):
        from service.state.redis_keys import RedisKeyStore

        return RedisKeyStore(url)
    return SQLiteKeyStore(data_path / KEYS_FILE)
