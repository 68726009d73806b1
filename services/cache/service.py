"""CacheService servicer: validation and proto <-> domain only; the work is in
:class:`~aiots.services.cache.prices.PriceBook`, :class:`~aiots.services.cache.watch.PriceWatchHub`
and :class:`~aiots.services.cache.analytics_store.AnalyticsStore`.

GetStockPrice is :func:`~aiots.services.common.server.pre_encoded`: the cache already holds the
``StockPrice`` bytes, and a ``GetStockPriceResponse`` is those bytes behind one field header, so
the hot read path builds no message objects and serialises nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Sequence

import grpc

from aiots.services.cache import convert
from aiots.services.cache.analytics_store import AnalyticsStore
from aiots.services.cache.backends.base import CacheBackend
from aiots.services.cache.prices import PriceBook, PriceSnapshot
from aiots.services.cache.watch import PriceWatchHub
from aiots.services.common.errors import InvalidArgument
from aiots.services.common.server import pre_encoded
from aiots.services.common.settings import CacheSettings
from aiots.services.common.validation import require_ticker
from aiots.services.common.wire import len_field
from aiots.v1 import cache_pb2, cache_pb2_grpc

SERVICE_NAME = "aiots.v1.CacheService"


def price_response_bytes(stock_price: bytes) -> bytes:
    """A serialised ``GetStockPriceResponse`` around serialised ``StockPrice`` bytes (field 1, LEN)."""
    return len_field(cache_pb2.GetStockPriceResponse.PRICE_FIELD_NUMBER, stock_price)


def parse_symbols(values: Sequence[str], limit: int, field: str = "symbols") -> list[str]:
    """Tickers from a repeated field whose elements may be comma-separated; deduplicated in order."""
    out: list[str] = []
    seen: set[str] = set()
    for i, v in enumerate(values):
        for part in v.split(","):
            if not part.strip():
                continue
            s = require_ticker(f"{field}[{i}]", part)
            if s not in seen:
                seen.add(s)
                out.append(s)
    if not out:
        raise InvalidArgument(field, "give at least one ticker, e.g. ['AAPL'] or ['AAPL,MSFT']")
    if len(out) > limit:
        raise InvalidArgument(field, f"{len(out)} tickers requested; at most {limit} per request")
    return out


class CacheServicer(cache_pb2_grpc.CacheServiceServicer):
    """Thin gRPC layer over the cache domain objects."""

    def __init__(
        self,
        cfg: CacheSettings,
        backend: CacheBackend,
        prices: PriceBook,
        hub: PriceWatchHub,
        store: AnalyticsStore,
    ) -> None:
        self.cfg = cfg
        self.backend = backend
        self.prices = prices
        self.hub = hub
        self.store = store

    @pre_encoded(cache_pb2.GetStockPriceResponse)
    async def GetStockPrice(self, request: cache_pb2.GetStockPriceRequest, context: grpc.aio.ServicerContext) -> bytes:
        """The serialised response around the stored ``StockPrice`` bytes (see module docstring)."""
        require_ticker("symbol", request.symbol)
        return price_response_bytes(await self.prices.get_bytes(request.symbol))

    async def GetStockPrices(
        self, request: cache_pb2.GetStockPricesRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.GetStockPricesResponse:
        symbols = parse_symbols(request.symbols, self.cfg.max_symbols)
        found, missing = await self.prices.get_many(symbols)
        return cache_pb2.GetStockPricesResponse(prices=[convert.price_to_proto(s) for s in found], missing=missing)

    async def SetAnalytics(
        self, request: cache_pb2.SetAnalyticsRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.SetAnalyticsResponse:
        if not request.HasField("data"):
            raise InvalidArgument("data", "a JSON value is required (object, array, number, string, bool or null)")
        expires_ns = await self.store.set(request.key, convert.value_to_bytes(request.data), request.ttl)
        return cache_pb2.SetAnalyticsResponse(key=request.key, expires_at=convert.ts_from_ns(expires_ns))

    async def GetAnalytics(
        self, request: cache_pb2.GetAnalyticsRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.GetAnalyticsResponse:
        v = await self.store.get(request.key)
        ttl = 0 if v.ttl_remaining_s is None else max(0, math.ceil(v.ttl_remaining_s))
        return cache_pb2.GetAnalyticsResponse(key=v.key, data=convert.value_from_bytes(v.data), ttl_remaining=ttl)

    async def DeleteAnalytics(
        self, request: cache_pb2.DeleteAnalyticsRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.DeleteAnalyticsResponse:
        return cache_pb2.DeleteAnalyticsResponse(deleted=await self.store.delete(request.key))

    async def GetStats(
        self, request: cache_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.GetStatsResponse:
        st = await self.backend.stats()
        return cache_pb2.GetStatsResponse(
            hits=st.hits,
            misses=st.misses,
            hit_ratio=st.hit_ratio,
            keys=st.keys,
            memory_bytes=st.memory_bytes,
            evictions=st.evictions,
            backend=st.backend,
        )

    async def WatchPrices(  # type: ignore[override]
        self, request: cache_pb2.WatchPricesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[cache_pb2.WatchPricesResponse]:
        """Current snapshots first, then every change; a heartbeat (no price) when idle."""
        symbols = parse_symbols(request.symbols, self.cfg.max_symbols)
        watcher = self.hub.subscribe(symbols)  # subscribe before reading: no change slips between
        try:
            found, _missing = await self.prices.get_many(symbols)
            for snap in found:
                yield self._watch_msg(snap)
            while True:
                change = await watcher.next(self.cfg.watch_heartbeat_s)
                yield self._watch_msg(change)
        finally:
            watcher.close()

    @staticmethod
    def _watch_msg(snap: PriceSnapshot | None) -> cache_pb2.WatchPricesResponse:
        now = convert.ts_from_ns(time.time_ns())
        if snap is None:
            return cache_pb2.WatchPricesResponse(sent_at=now)
        return cache_pb2.WatchPricesResponse(price=convert.price_to_proto(snap), sent_at=now)
