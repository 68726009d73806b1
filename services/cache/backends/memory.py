"""In-process cache backend: TTL + LRU bounded by a memory budget in bytes.

Each entry is charged ``len(key) + len(value) + ENTRY_OVERHEAD_BYTES`` (the dict slot, the tuple
and the two objects' headers, measured roughly with ``sys.getsizeof`` on CPython 3.11). When a
store would exceed the budget, expired entries go first, then the least recently used ones
(each counted as an eviction). Expiry is lazy on read plus a sweep before evicting. Times are
``time.monotonic()`` seconds (injectable ``clock`` for tests). Never blocks: every method is
O(1) amortised except ``stats`` (a sweep, O(n)).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from aiots.services.cache.backends.base import CacheStats
from aiots.services.common.errors import ResourceExhausted

#: Bookkeeping bytes charged per entry on top of key and value lengths.
ENTRY_OVERHEAD_BYTES = 160


class MemoryBackend:
    """See module docstring."""

    name = "memory"

    def __init__(self, memory_budget_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if memory_budget_bytes <= 0:
            raise ValueError(f"memory_budget_bytes must be > 0, got {memory_budget_bytes}")
        self.budget = memory_budget_bytes
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # key -> (value, expires_at)
        self._used = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @staticmethod
    def _cost(key: str, value: bytes) -> int:
        return len(key) + len(value) + ENTRY_OVERHEAD_BYTES

    def _lookup(self, key: str, now: float) -> tuple[bytes, float] | None:
        item = self._data.get(key)
        if item is None:
            return None
        if item[1] <= now:
            self._remove(key)
            return None
        self._data.move_to_end(key)
        return item

    def _remove(self, key: str) -> bool:
        item = self._data.pop(key, None)
        if item is None:
            return False
        self._used -= self._cost(key, item[0])
        return True

    def _sweep(self, now: float) -> None:
        for k in [k for k, (_, exp) in self._data.items() if exp <= now]:
            self._remove(k)

    async def get(self, key: str) -> bytes | None:
        item = self._lookup(key, self._clock())
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        return item[0]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [await self.get(k) for k in keys]

    async def get_with_ttl(self, key: str) -> tuple[bytes, float | None] | None:
        now = self._clock()
        item = self._lookup(key, now)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        return item[0], (None if math.isinf(item[1]) else item[1] - now)

    def _store(self, key: str, value: bytes, ttl_s: float | None, now: float) -> None:
        cost = self._cost(key, value)
        if cost > self.budget:
            raise ResourceExhausted(
                f"cache entry {key!r} of {cost} bytes exceeds the whole memory budget of {self.budget} bytes"
            )
        self._remove(key)
        if self._used + cost > self.budget:
            self._sweep(now)
            while self._used + cost > self.budget and self._data:
                old, _ = next(iter(self._data.items()))
                self._remove(old)
                self.evictions += 1
        expires = math.inf if ttl_s is None else now + ttl_s
        self._data[key] = (value, expires)
        self._used += cost

    async def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        self._store(key, value, ttl_s, self._clock())

    async def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> None:
        now = self._clock()
        for key, value, ttl in items:
            self._store(key, value, ttl, now)

    async def delete(self, key: str) -> bool:
        return self._remove(key)

    async def stats(self) -> CacheStats:
        self._sweep(self._clock())
        return CacheStats(
            hits=self.hits,
            misses=self.misses,
            keys=len(self._data),
            memory_bytes=self._used,
            evictions=self.evictions,
            backend=self.name,
        )

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()
        self._used = 0
