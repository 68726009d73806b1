"""Cache-aside: single-flight, jittered TTLs, typed values, fallback when the cache is down."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from aiots.services.cache.backends import MemoryBackend, RedisBackend
from aiots.services.cache.cache_aside import CacheAside, ProtoCodec
from aiots.services.common.settings import RedisSettings
from aiots.v1 import cache_pb2


def dead_redis_url() -> str:
    """A port nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


async def test_single_flight_100_callers_compute_once() -> None:
    aside = CacheAside(MemoryBackend(1 << 20))
    calls = 0

    async def compute() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return b"value"

    results = await asyncio.gather(*(aside.get_or_compute("aiots:v1:x:k", 10, compute) for _ in range(100)))
    assert calls == 1
    assert results == [b"value"] * 100
    assert await aside.get_or_compute("aiots:v1:x:k", 10, compute) == b"value"  # now a hit
    assert calls == 1


async def test_single_flight_error_reaches_every_waiter_and_is_not_cached() -> None:
    aside = CacheAside(MemoryBackend(1 << 20))
    calls = 0

    async def boom() -> bytes:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise RuntimeError("upstream down")

    res = await asyncio.gather(*(aside.get_or_compute("k", 10, boom) for _ in range(10)), return_exceptions=True)
    assert calls == 1 and all(isinstance(r, RuntimeError) for r in res)

    async def ok() -> bytes:
        return b"ok"

    assert await aside.get_or_compute("k", 10, ok) == b"ok"


async def test_cancelled_caller_does_not_cancel_the_fill_for_others() -> None:
    aside = CacheAside(MemoryBackend(1 << 20))

    async def slow() -> bytes:
        await asyncio.sleep(0.05)
        return b"v"

    first = asyncio.create_task(aside.get_or_compute("k", 10, slow))
    second = asyncio.create_task(aside.get_or_compute("k", 10, slow))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == b"v"


async def test_jittered_ttl_within_bounds_and_stored() -> None:
    backend = MemoryBackend(1 << 20)
    aside = CacheAside(backend, jitter=0.2, rng=random.Random(1))
    ttls = [aside.jittered(100.0) for _ in range(1000)]
    assert all(100.0 <= t <= 120.0 for t in ttls)
    assert max(ttls) - min(ttls) > 15  # actually spread

    async def compute() -> bytes:
        return b"v"

    await aside.get_or_compute("j", 100.0, compute)
    _, ttl = await backend.get_with_ttl("j")  # type: ignore[misc]
    assert 99.0 <= ttl <= 120.0


async def test_typed_protobuf_values() -> None:
    aside = CacheAside(MemoryBackend(1 << 20))
    codec = ProtoCodec(cache_pb2.StockPrice)

    async def compute() -> cache_pb2.StockPrice:
        return cache_pb2.StockPrice(symbol="SPY", last=500.5)

    a = await aside.get_or_compute("p", 10, compute, codec)
    b = await aside.get_or_compute("p", 10, compute, codec)
    assert a == b == cache_pb2.StockPrice(symbol="SPY", last=500.5)
    assert aside.computes == 1


async def test_backend_down_falls_back_to_compute() -> None:
    backend = RedisBackend(dead_redis_url(), RedisSettings(socket_timeout_s=0.5))
    aside = CacheAside(backend)
    calls = 0

    async def compute() -> bytes:
        nonlocal calls
        calls += 1
        return b"fresh"

    try:
        assert await aside.get_or_compute("k", 10, compute) == b"fresh"
        assert await aside.get_or_compute("k", 10, compute) == b"fresh"
        assert calls == 2 and aside.backend_errors >= 2
    finally:
        await backend.close()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="jitter"):
        CacheAside(MemoryBackend(1 << 20), jitter=0.9)


async def test_bad_ttl() -> None:
    aside = CacheAside(MemoryBackend(1 << 20))

    async def compute() -> bytes:
        return b""

    with pytest.raises(ValueError, match="ttl_s"):
        await aside.get_or_compute("k", 0, compute)
