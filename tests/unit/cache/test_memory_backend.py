"""In-process backend: TTL and LRU within the memory budget, with a controlled clock (hand-derived)."""

from __future__ import annotations

import pytest

from aiots.services.cache.backends.memory import ENTRY_OVERHEAD_BYTES, MemoryBackend
from aiots.services.common.errors import ResourceExhausted


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_lru_eviction_keeps_recently_used_within_budget() -> None:
    entry = 1 + 100 + ENTRY_OVERHEAD_BYTES  # key "a" + 100-byte value
    b = MemoryBackend(3 * entry)
    for k in "abc":
        await b.set(k, b"x" * 100, None)
    assert await b.get("a") is not None  # a becomes most recently used; b is now the LRU
    await b.set("d", b"x" * 100, None)  # over budget by one entry -> evict b
    assert await b.get("b") is None
    assert all([await b.get(k) for k in "acd"])
    st = await b.stats()
    assert (st.keys, st.memory_bytes, st.evictions) == (3, 3 * entry, 1)


async def test_expired_entries_go_before_live_ones() -> None:
    clock = Clock()
    entry = 1 + 10 + ENTRY_OVERHEAD_BYTES
    b = MemoryBackend(2 * entry, clock=clock)
    await b.set("a", b"0" * 10, None)
    await b.set("b", b"0" * 10, 5.0)
    clock.t += 5.0  # b expires exactly now
    await b.set("c", b"0" * 10, None)
    assert await b.get("a") is not None and await b.get("c") is not None
    assert (await b.stats()).evictions == 0


async def test_replace_updates_size_and_oversized_entry_is_refused() -> None:
    b = MemoryBackend(1 << 20)
    await b.set("k", b"x" * 1000, None)
    await b.set("k", b"x" * 10, None)
    assert (await b.stats()).memory_bytes == 1 + 10 + ENTRY_OVERHEAD_BYTES
    with pytest.raises(ResourceExhausted, match="budget"):
        await b.set("big", b"x" * (1 << 20), None)
