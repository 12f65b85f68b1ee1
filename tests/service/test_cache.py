"""The translation cache keeps the most recent entries within its entry AND byte budgets."""

from __future__ import annotations

from collections.abc import Hashable

from service.usecase.cache import LRUCache


def text_bytes(key: Hashable, value: str) -> int:
    return len(str(key).encode()) + len(value.encode())


def test_bounded_by_bytes_as_well_as_entries() -> None:
    cache: LRUCache[str] = LRUCache(max_entries=100, max_bytes=100, size=text_bytes)
    for i in range(10):
        cache.put(f"k{i}", "x" * 20)  # 22 bytes each: four fit in 100
    assert len(cache) == 4 and cache.bytes == 88
    assert cache.get("k5") is None and cache.get("k9") == "x" * 20
    cache.get("k6")  # used: k7 is now the oldest
    cache.put("k10", "y" * 20)
    assert cache.get("k7") is None and cache.get("k6") == "x" * 20
    cache.put("huge", "z" * 1000)  # larger than the whole budget: not kept, nothing evicted
    assert cache.get("huge") is None and len(cache) == 4
    cache.put("k6", "w")  # replacing an entry gives its bytes back
    assert cache.bytes == 22 * 2 + len("k10") + 20 + len("k6w")


def test_bounded_by_entries_and_off_at_zero() -> None:
    cache: LRUCache[str] = LRUCache(max_entries=2)
    for key in "abc":
        cache.put(key, key)
    assert len(cache) == 2 and cache.get("a") is None
    off: LRUCache[str] = LRUCache(max_entries=0)
    off.put("a", "a")
    assert off.get("a") is None
