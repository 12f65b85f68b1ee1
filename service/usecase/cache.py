"""An LRU cache of sentence translations: real traffic repeats itself (menus, UI strings, titles).

Keyed by model, decoding options and the exact text; bounded by entry count AND by bytes (5,000
characters of text per entry would otherwise let 20,000 entries hold ~500 MB). Look-ups may run
in a worker thread for large requests, so every operation holds a lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LRUCache(Generic[V]):
    def __init__(
        self,
        max_entries: int,
        max_bytes: int = 1 << 62,
        size: Callable[[Hashable, V], int] = lambda key, value: 1,
    ) -> None:
        self.max_entries, self.max_bytes, self.size = max_entries, max_bytes, size
        self.entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self.bytes = 0
        self.lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            self.entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: V) -> None:
        size = self.size(key, value)
        if self.max_entries <= 0 or size > self.max_bytes:
            return
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self.entries[key] = (value, size)
            self.bytes += size
            while len(self.entries) > self.max_entries or self.bytes > self.max_bytes:
                _, (_, dropped) = self.entries.popitem(last=False)
                self.bytes -= dropped

    def __len__(self) -> int:
        return len(self.entries)
