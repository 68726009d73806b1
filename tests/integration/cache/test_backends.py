"""One suite for both cache backends (in-process and the real Redis, unique namespace).

Oracles: the values the test stores, the TTLs it sets, and Redis's own TTL semantics.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aiots.services.cache.backends import MemoryBackend, RedisBackend
from aiots.services.cache.backends.base import Keyspace
from aiots.services.common.settings import RedisSettings
from aiots.v1 import cache_pb2

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "redis":
        b: Any = RedisBackend(request.getfixturevalue("redis_url"), RedisSettings())
    else:
        b = MemoryBackend(8 << 20)
    yield b
    await b.close()


@pytest.fixture
def ks(redis_ns: str) -> Keyspace:
    return Keyspace(redis_ns)


async def test_typed_roundtrip_and_batch(backend: Any, ks: Keyspace) -> None:
    msg = cache_pb2.StockPrice(symbol="AAPL", last=201.25, volume=1e6)
    await backend.set(ks.key("price", "AAPL"), msg.SerializeToString(), None)
    raw = await backend.get(ks.key("price", "AAPL"))
    assert cache_pb2.StockPrice.FromString(raw) == msg
    await backend.set_many([(ks.key("price", s), s.encode(), 60.0) for s in ("MSFT", "NVDA")])
    got = await backend.get_many([ks.key("price", s) for s in ("MSFT", "NOPE", "NVDA")])
    assert got == [b"MSFT", None, b"NVDA"]
    assert await backend.get_many([]) == []


async def test_ttl_and_expiry(backend: Any, ks: Keyspace) -> None:
    k = ks.key("analytics", "x")
    await backend.set(k, b"v", 0.3)
    value, ttl = await backend.get_with_ttl(k)
    assert value == b"v" and 0 < ttl <= 0.3
    await backend.set(ks.key("analytics", "forever"), b"f", None)
    assert (await backend.get_with_ttl(ks.key("analytics", "forever"))) == (b"f", None)
    await asyncio.sleep(0.45)
    assert await backend.get(k) is None
    assert await backend.get_with_ttl(k) is None


async def test_delete_and_stats(backend: Any, ks: Keyspace) -> None:
    k = ks.key("analytics", "d")
    await backend.set(k, b"1", 10.0)
    h0, m0 = backend.hits, backend.misses
    assert await backend.get(k) == b"1"
    assert await backend.delete(k) is True
    assert await backend.delete(k) is False
    assert await backend.get(k) is None
    st = await backend.stats()
    assert (st.hits - h0, st.misses - m0) == (1, 1)
    assert st.backend == backend.name and st.memory_bytes >= 0 and st.keys >= 0
    assert await backend.ping()


def test_keyspace_is_namespaced_and_versioned() -> None:
    assert Keyspace("aiots").key("price", "AAPL") == "aiots:v1:price:AAPL"
    assert Keyspace("aiots").prefix("analytics") == "aiots:v1:analytics:"
