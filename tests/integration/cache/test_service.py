"""CacheService through a real gRPC channel with the typed stubs, for both backends.

The in-process variant uses MemoryBackend + InProcessBus; the Redis variant the real Redis
(unique namespace) for both the backend and the bus, so WatchPrices goes through Redis pub/sub.
Oracles: values written by the test (hand-derived snapshots), the documented limits, and the
status codes the API contract names.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from google.rpc import error_details_pb2, status_pb2

from aiots.services.cache.app import CacheApp, create_app
from aiots.services.cache.prices import PriceBook, price_book_for
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.v1 import cache_pb2, cache_pb2_grpc

pytestmark = pytest.mark.timeout(60)

T0 = 1_767_364_200_000_000_000  # 2026-01-02 09:30:00 America/New_York (14:30 UTC), ns


@dataclass
class Env:
    app: CacheApp
    stub: cache_pb2_grpc.CacheServiceAsyncStub
    prices: PriceBook
    settings: Settings


@pytest.fixture(params=["memory", "redis"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    ns = request.getfixturevalue("redis_ns")
    kw: dict[str, Any] = {"redis": {"namespace": ns}, "symbols": ["AAPL", "MSFT"], "cache": {"watch_heartbeat_s": 0.3}}
    if request.param == "redis":
        kw["redis_url"] = request.getfixturevalue("redis_url")
    settings = Settings(**kw)
    rt = Runtime(settings=settings)
    app = await create_app(rt, port=0)
    await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield Env(app, cache_pb2_grpc.CacheServiceStub(channel), price_book_for(rt), settings)
    finally:
        await channel.close()
        await app.stop()


def details(err: grpc.aio.AioRpcError) -> list[Any]:
    raw = dict(err.trailing_metadata() or ()).get("grpc-status-details-bin")
    out: list[Any] = []
    if raw:
        for a in status_pb2.Status.FromString(raw).details:
            for t in (error_details_pb2.BadRequest, error_details_pb2.ErrorInfo):
                if a.Is(t.DESCRIPTOR):
                    m = t()
                    a.Unpack(m)
                    out.append(m)
    return out


async def until(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for ``cond`` (a server-side effect) instead of sleeping a guessed time."""
    async with asyncio.timeout(timeout_s):
        while not cond():
            await asyncio.sleep(0.01)


async def expect(code: grpc.StatusCode, call: Any, *needles: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await call
    err = ei.value
    assert err.code() == code, err.details()
    for n in needles:
        assert n in (err.details() or ""), (n, err.details())
    return err


async def test_get_stock_price_hand_derived(env: Env) -> None:
    p = env.prices
    await p.set_prev_close("aapl", 200.0)
    await p.on_trade("AAPL", T0, 201.0, 100)
    await p.on_trade("AAPL", T0 + 1_000, 203.0, 50)
    await p.on_trade("AAPL", T0 + 2_000, 199.5, 25)
    await p.on_quote("AAPL", T0 + 3_000, 199.4, 199.6, 3, 4)
    r = await env.stub.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol="aapl"))
    s = r.price
    assert s.symbol == "AAPL"
    assert (s.last, s.open, s.high, s.low, s.prev_close, s.volume) == (199.5, 201.0, 203.0, 199.5, 200.0, 175.0)
    assert (s.bid, s.ask) == (199.4, 199.6)
    assert s.change == pytest.approx(-0.5)
    assert s.change_pct == pytest.approx(-0.25)
    assert s.as_of.ToNanoseconds() == T0 + 3_000


async def test_get_stock_price_bad_input_and_not_found(env: Env) -> None:
    err = await expect(
        grpc.StatusCode.NOT_FOUND, env.stub.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol="ZZZZ")), "ZZZZ", "AAPL"
    )
    assert "MSFT" in (err.details() or "")
    err = await expect(
        grpc.StatusCode.INVALID_ARGUMENT, env.stub.GetStockPrice(cache_pb2.GetStockPriceRequest()), "symbol"
    )
    (bad, _info) = details(err)
    assert bad.field_violations[0].field == "symbol"
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        env.stub.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol="AA\x00PL")),
        "symbol",
    )


async def test_get_stock_prices_mixed_and_bad_input(env: Env) -> None:
    await env.prices.on_trade("MSFT", T0, 400.0, 10)
    await env.prices.on_trade("AAPL", T0, 200.0, 10)
    r = await env.stub.GetStockPrices(cache_pb2.GetStockPricesRequest(symbols=["msft,NOPE", "AAPL", "msft"]))
    assert [p.symbol for p in r.prices] == ["MSFT", "AAPL"]
    assert list(r.missing) == ["NOPE"]
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT, env.stub.GetStockPrices(cache_pb2.GetStockPricesRequest()), "symbols"
    )
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        env.stub.GetStockPrices(cache_pb2.GetStockPricesRequest(symbols=[",".join(f"S{i}" for i in range(1001))])),
        "1001",
        "1000",
    )


async def test_analytics_set_get_delete(env: Env) -> None:
    data = json_format.ParseDict({"rsi": 61.5, "levels": [1, 2.5], "ok": True, "name": "x"}, struct_pb2.Value())
    r = await env.stub.SetAnalytics(cache_pb2.SetAnalyticsRequest(key="rsi:AAPL:1m", data=data, ttl=120))
    assert r.key == "rsi:AAPL:1m"
    g = await env.stub.GetAnalytics(cache_pb2.GetAnalyticsRequest(key="rsi:AAPL:1m"))
    assert json_format.MessageToDict(g.data) == {"rsi": 61.5, "levels": [1, 2.5], "ok": True, "name": "x"}
    assert 118 <= g.ttl_remaining <= 120
    d = await env.stub.DeleteAnalytics(cache_pb2.DeleteAnalyticsRequest(key="rsi:AAPL:1m"))
    assert d.deleted
    d = await env.stub.DeleteAnalytics(cache_pb2.DeleteAnalyticsRequest(key="rsi:AAPL:1m"))
    assert not d.deleted
    await expect(
        grpc.StatusCode.NOT_FOUND,
        env.stub.GetAnalytics(cache_pb2.GetAnalyticsRequest(key="rsi:AAPL:1m")),
        "rsi:AAPL:1m",
    )
    # ttl 0 = default
    await env.stub.SetAnalytics(cache_pb2.SetAnalyticsRequest(key="k0", data=data, ttl=0))
    g = await env.stub.GetAnalytics(cache_pb2.GetAnalyticsRequest(key="k0"))
    assert env.settings.cache.default_ttl_s - 2 <= g.ttl_remaining <= env.settings.cache.default_ttl_s


async def test_analytics_expiry(env: Env) -> None:
    data = struct_pb2.Value(number_value=1.0)
    await env.stub.SetAnalytics(cache_pb2.SetAnalyticsRequest(key="short", data=data, ttl=1))
    await asyncio.sleep(1.3)
    await expect(grpc.StatusCode.NOT_FOUND, env.stub.GetAnalytics(cache_pb2.GetAnalyticsRequest(key="short")))


async def test_analytics_bad_input(env: Env) -> None:
    data = struct_pb2.Value(number_value=1.0)
    s = env.stub
    err = await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        s.SetAnalytics(cache_pb2.SetAnalyticsRequest(key="k" * 257, data=data)),
        "257",
        "256",
    )
    assert details(err)[0].field_violations[0].field == "key"
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        s.SetAnalytics(cache_pb2.SetAnalyticsRequest(key="a\nb", data=data)),
        "control",
    )
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT, s.SetAnalytics(cache_pb2.SetAnalyticsRequest(key="", data=data)), "key"
    )
    await expect(grpc.StatusCode.INVALID_ARGUMENT, s.SetAnalytics(cache_pb2.SetAnalyticsRequest(key="k")), "data")
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        s.SetAnalytics(cache_pb2.SetAnalyticsRequest(key="k", data=data, ttl=-1)),
        "ttl",
        "-1",
    )
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        s.SetAnalytics(cache_pb2.SetAnalyticsRequest(key="k", data=data, ttl=86_401)),
        "86401",
        "86400",
    )
    big = struct_pb2.Value(string_value="x" * (1 << 20))
    await expect(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        s.SetAnalytics(cache_pb2.SetAnalyticsRequest(key="big", data=big)),
        "data",
        str(1 << 20),
    )
    await expect(grpc.StatusCode.INVALID_ARGUMENT, s.GetAnalytics(cache_pb2.GetAnalyticsRequest(key="")), "key")
    await expect(grpc.StatusCode.INVALID_ARGUMENT, s.GetAnalytics(cache_pb2.GetAnalyticsRequest(key="\x07")), "key")
    await expect(grpc.StatusCode.INVALID_ARGUMENT, s.DeleteAnalytics(cache_pb2.DeleteAnalyticsRequest(key="")), "key")
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT, s.DeleteAnalytics(cache_pb2.DeleteAnalyticsRequest(key="x" * 300)), "300"
    )


async def test_stats(env: Env) -> None:
    await env.prices.on_trade("AAPL", T0, 200.0, 1)
    before = await env.stub.GetStats(cache_pb2.GetStatsRequest())
    await env.stub.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol="AAPL"))
    with pytest.raises(grpc.aio.AioRpcError):
        await env.stub.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol="NONE"))
    after = await env.stub.GetStats(cache_pb2.GetStatsRequest())
    assert after.hits - before.hits == 1
    assert after.misses - before.misses == 1
    assert after.keys >= 1 and after.memory_bytes > 0
    assert after.backend == ("redis" if env.settings.redis_url else "memory")
    assert after.hit_ratio == pytest.approx(after.hits / (after.hits + after.misses))
    # GetStats takes no input: any request is valid; a bad-input case does not exist for it.


async def test_watch_prices_stream(env: Env) -> None:
    await env.prices.on_trade("AAPL", T0, 200.0, 1)
    call = env.stub.WatchPrices(cache_pb2.WatchPricesRequest(symbols=["AAPL,MSFT"]))
    first = await asyncio.wait_for(call.read(), 5)
    assert first.price.symbol == "AAPL" and first.price.last == 200.0  # current snapshot first
    for i in range(1, 6):
        await env.prices.on_trade("MSFT" if i % 2 else "AAPL", T0 + i, 200.0 + i, 1)
    await env.prices.on_trade("TSLA", T0, 300.0, 1)  # not watched
    got = []
    while len(got) < 5:
        m = await asyncio.wait_for(call.read(), 5)
        if m.HasField("price"):
            got.append((m.price.symbol, m.price.last))
    assert got == [("MSFT", 201.0), ("AAPL", 202.0), ("MSFT", 203.0), ("AAPL", 204.0), ("MSFT", 205.0)]
    hb = await asyncio.wait_for(call.read(), 5)  # idle: heartbeat without a price
    assert not hb.HasField("price") and hb.sent_at.seconds > 0
    call.cancel()
    assert env.app.hub is not None
    hub = env.app.hub
    await until(lambda: hub.subscribers == 0)  # the server ends the stream's watcher


async def test_watch_prices_bad_input(env: Env) -> None:
    call = env.stub.WatchPrices(cache_pb2.WatchPricesRequest(symbols=[]))
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await call.read()
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    call = env.stub.WatchPrices(cache_pb2.WatchPricesRequest(symbols=["AAPL", "B@D"]))
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await call.read()
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "symbols[1]" in (ei.value.details() or "")


async def test_watch_prices_across_replicas(redis_url: str, redis_ns: str) -> None:
    """Two cache service replicas on one Redis: a price written via one streams from the other."""
    apps, channels = [], []
    for _ in range(2):
        rt = Runtime(settings=Settings(redis_url=redis_url, redis={"namespace": redis_ns}))
        app = await create_app(rt, port=0)
        await app.start()
        apps.append((app, rt))
    try:
        ch = grpc.aio.insecure_channel(f"127.0.0.1:{apps[1][0].port}")
        channels.append(ch)
        call = cache_pb2_grpc.CacheServiceStub(ch).WatchPrices(cache_pb2.WatchPricesRequest(symbols=["NVDA"]))
        hub = apps[1][0].hub
        assert hub is not None
        await until(lambda: hub.subscribers == 1)  # subscribed server side before the price is written
        await price_book_for(apps[0][1]).on_trade("NVDA", T0, 150.0, 5)
        m = await asyncio.wait_for(call.read(), 5)
        assert m.price.symbol == "NVDA" and m.price.last == 150.0
        call.cancel()
    finally:
        for ch in channels:
            await ch.close()
        for app, _ in apps:
            await app.stop()
