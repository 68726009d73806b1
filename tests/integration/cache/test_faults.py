"""The cache service with its Redis killed and restarted: UNAVAILABLE while away, then recovery.

Private redis-server (AOF appendfsync always, so the snapshot written before the kill survives).
"""

from __future__ import annotations

import asyncio

import grpc
import pytest

from aiots.services.cache.app import create_app
from aiots.services.cache.prices import price_book_for
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.v1 import cache_pb2, cache_pb2_grpc
from tests.integration.bus.redis_fixtures import RedisProc

pytestmark = pytest.mark.timeout(90)

T0 = 1_767_364_200_000_000_000


async def test_redis_away_gives_unavailable_then_recovers(redis_proc: RedisProc) -> None:
    settings = Settings(
        redis_url=redis_proc.url,
        redis={
            "namespace": "fault",
            "socket_timeout_s": 1.0,
            "reconnect_initial_backoff_s": 0.02,
            "reconnect_max_backoff_s": 0.3,
            "read_block_ms": 100,
        },
    )
    rt = Runtime(settings=settings)
    app = await create_app(rt, port=0)
    await app.start()
    prices = price_book_for(rt)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    stub = cache_pb2_grpc.CacheServiceStub(channel)
    try:
        assert await prices.on_trade("AAPL", T0, 200.0, 10)
        watch = stub.WatchPrices(cache_pb2.WatchPricesRequest(symbols=["AAPL"]))
        assert (await asyncio.wait_for(watch.read(), 5)).price.last == 200.0

        redis_proc.kill()
        for call in (
            stub.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol="AAPL")),
            stub.GetStockPrices(cache_pb2.GetStockPricesRequest(symbols=["AAPL"])),
            stub.GetStats(cache_pb2.GetStatsRequest()),
            stub.GetAnalytics(cache_pb2.GetAnalyticsRequest(key="k")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as ei:
                await call
            assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "unreachable" in (ei.value.details() or "")
        assert await prices.on_trade("AAPL", T0 + 1, 201.0, 1) is False  # ingestion is not failed

        await asyncio.to_thread(redis_proc.start)
        async with asyncio.timeout(15):
            while True:
                try:
                    r = await stub.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol="AAPL"))
                    break
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE
                    await asyncio.sleep(0.1)
        assert r.price.last == 200.0  # persisted before the kill (AOF)
        # The next update writes the latest in-memory state (including the one that failed).
        async with asyncio.timeout(15):
            while not await prices.on_trade("AAPL", T0 + 2, 202.0, 1):
                await asyncio.sleep(0.1)
            while True:
                m = await asyncio.wait_for(watch.read(), 5)
                if m.HasField("price") and m.price.last == 202.0:
                    break
        assert m.price.volume >= 12.0  # 10 + 1 (kept in memory while away) + 1 per successful retry
        watch.cancel()
    finally:
        await channel.close()
        await app.stop()
