"""The translation cache keeps the most recent entries within its entry AND byte budgets."""

from __future__ import annotations

import sys
from collections.abc import Hashable

from contract.options import SearchOptions
from service.usecase.cache import LRUCache
from service.usecase.schemas import Translation
from service.usecase.translate import cached_bytes


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


def test_astral_texts_cannot_exceed_the_byte_budget() -> None:
    """One astral character makes CPython store a whole str at 4 bytes per character: the
    budget counts what Python holds (before: UTF-8 bytes, about a quarter of it)."""
    budget = 200_000
    cache: LRUCache[Translation] = LRUCache(10_000, budget, cached_bytes)
    for i in range(200):
        value = Translation(
            text="b" * 500 + "😀", score=-1.0, tokens=9, finish_reason="eos", alternatives=["c😀"]
        )
        cache.put(("model", SearchOptions(), f"{i} " + "a" * 500 + "😀"), value)
    held = sum(
        sum(sys.getsizeof(t) for t in (key[-1], value.text, *value.alternatives))  # type: ignore[index]
        for key, (value, _) in cache.entries.items()
    )
    assert 10 < len(cache) < 200 and held <= budget, (len(cache), held)
