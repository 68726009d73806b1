"""VersionedCache: one computation per (key, version) across concurrent callers; new versions replace."""

from __future__ import annotations

import asyncio

import pytest

from aiots.services.analytics.store import VersionedCache


async def test_single_flight_versions_and_lru() -> None:
    cache = VersionedCache(entries=2)
    runs: list[tuple[str, int]] = []

    def maker(key: str, version: int):  # type: ignore[no-untyped-def]
        async def make() -> str:
            runs.append((key, version))
            await asyncio.sleep(0.01)
            return f"{key}@{version}"

        return make

    got = await asyncio.gather(*(cache.get("a", 1, maker("a", 1)) for _ in range(20)))
    assert got == ["a@1"] * 20 and runs == [("a", 1)]
    assert await cache.get("a", 1, maker("a", 1)) == "a@1" and len(runs) == 1
    assert await cache.get("a", 2, maker("a", 2)) == "a@2" and runs[-1] == ("a", 2)
    await cache.get("b", 1, maker("b", 1))
    await cache.get("c", 1, maker("c", 1))  # evicts "a" (least recently used)
    await cache.get("a", 2, maker("a", 2))
    assert runs.count(("a", 2)) == 2


async def test_errors_propagate_and_cancelled_owner_hands_over() -> None:
    cache = VersionedCache(entries=4)

    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise ValueError("bad")

    results = await asyncio.gather(*(cache.get("k", 1, boom) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)

    started = asyncio.Event()

    async def slow() -> int:
        started.set()
        await asyncio.sleep(10)
        return 1

    async def fast() -> int:
        return 2

    owner = asyncio.create_task(cache.get("x", 1, slow))
    await started.wait()
    waiter = asyncio.create_task(cache.get("x", 1, fast))
    await asyncio.sleep(0)
    owner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await owner
    assert await asyncio.wait_for(waiter, 2) == 2
