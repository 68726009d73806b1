"""The server builder's one way to register a servicer: handlers from the service descriptor, and
pre-encoded RPCs whose bytes go out untouched. Oracle: the generated client stub (protobuf's own
parser) and the protobuf library's serialisation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from aiots.services.common.server import (
    ServiceRegistration,
    method_handlers,
    pre_encoded,
    pre_encoded_stream,
    service_descriptor,
    start_server,
)
from aiots.services.common.wire import len_field, varint
from aiots.v1 import cache_pb2, cache_pb2_grpc


class PreEncodedCache(cache_pb2_grpc.CacheServiceServicer):
    """GetStockPrice and WatchPrices answer bytes; GetStats is an ordinary typed RPC."""

    def __init__(self) -> None:
        self.encoded_calls = 0

    @pre_encoded(cache_pb2.GetStockPriceResponse)
    async def GetStockPrice(self, request: cache_pb2.GetStockPriceRequest, context: grpc.aio.ServicerContext) -> bytes:
        self.encoded_calls += 1
        price = cache_pb2.StockPrice(symbol=request.symbol, last=1.5).SerializeToString()
        # the price field written twice: protobuf merges repeated submessage occurrences, so a
        # client reading last=2.5 and symbol=X proves these bytes were not re-serialised on the way
        return len_field(1, price) + len_field(1, cache_pb2.StockPrice(last=2.5).SerializeToString())

    @pre_encoded_stream(cache_pb2.WatchPricesResponse)
    async def WatchPrices(
        self, request: cache_pb2.WatchPricesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        for s in request.symbols:
            yield cache_pb2.WatchPricesResponse(price=cache_pb2.StockPrice(symbol=s)).SerializeToString()

    async def GetStats(
        self, request: cache_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> cache_pb2.GetStatsResponse:
        return cache_pb2.GetStatsResponse(hits=7, backend="fake")


def test_descriptor_found_from_the_generated_base() -> None:
    assert service_descriptor(PreEncodedCache()).full_name == "aiots.v1.CacheService"
    with pytest.raises(TypeError, match="does not subclass a generated"):
        service_descriptor(object())


def test_pre_encoded_rpcs_get_an_identity_serializer_others_the_message_one() -> None:
    handlers = method_handlers(PreEncodedCache(), service_descriptor(PreEncodedCache()))
    assert set(handlers) == {m.name for m in cache_pb2.DESCRIPTOR.services_by_name["CacheService"].methods}
    assert handlers["GetStockPrice"].response_serializer(b"\x01\x02") == b"\x01\x02"
    assert handlers["WatchPrices"].response_streaming and handlers["WatchPrices"].response_serializer(b"x") == b"x"
    stats = cache_pb2.GetStatsResponse(hits=3)
    assert handlers["GetStats"].response_serializer(stats) == stats.SerializeToString()


async def test_called_from_python_a_pre_encoded_rpc_returns_the_message() -> None:
    svc = PreEncodedCache()
    resp = await svc.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol="AAPL"), None)  # type: ignore[arg-type]
    assert isinstance(resp, cache_pb2.GetStockPriceResponse)
    assert (resp.price.symbol, resp.price.last) == ("AAPL", 2.5)
    got = [m async for m in svc.WatchPrices(cache_pb2.WatchPricesRequest(symbols=["A", "B"]), None)]  # type: ignore[arg-type]
    assert [m.price.symbol for m in got] == ["A", "B"]


async def test_over_grpc_the_bytes_go_out_as_returned() -> None:
    svc = PreEncodedCache()
    gs = await start_server([ServiceRegistration.of(svc)], host="127.0.0.1", port=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{gs.port}") as ch:
            stub = cache_pb2_grpc.CacheServiceStub(ch)
            resp = await stub.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol="MSFT"))
            assert (resp.price.symbol, resp.price.last) == ("MSFT", 2.5)
            assert svc.encoded_calls == 1
            watched = [m.price.symbol async for m in stub.WatchPrices(cache_pb2.WatchPricesRequest(symbols=["X", "Y"]))]
            assert watched == ["X", "Y"]
            assert (await stub.GetStats(cache_pb2.GetStatsRequest())).backend == "fake"
    finally:
        await gs.stop(0)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16_383, 16_384, 2**35])
def test_varint_matches_protobuf(n: int) -> None:
    # oracle: protobuf writes a non-negative int64 field as its key byte then the varint
    msg = cache_pb2.GetStatsResponse(hits=n)
    raw = msg.SerializeToString()
    assert raw == (b"" if n == 0 else bytes([raw[0]]) + varint(n))
    with pytest.raises(ValueError):
        varint(-1)
