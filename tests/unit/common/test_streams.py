"""Stream trailers on a real grpc.aio server (start_server, as every service uses it): a stream that
ends abnormally after sending something ends with a last message whose ``error`` carries the code
and a message with the resume point, then the same gRPC status; a stream that sent nothing, or
ended normally, gets no trailer. Oracle: the generated client stub (protobuf's parser) and the
gRPC status the client library reports."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2

import aiots.v1 as v1
from aiots.services.common.errors import InvalidArgument, ResourceExhausted
from aiots.services.common.server import GrpcServer, ServiceRegistration, pre_encoded_stream, start_server
from aiots.services.common.streams import StreamTrailers, resume_from, trailer_class
from aiots.v1 import cache_pb2, cache_pb2_grpc, signals_pb2, signals_pb2_grpc

pytestmark = pytest.mark.timeout(60)


class Prices(cache_pb2_grpc.CacheServiceServicer):
    """WatchPrices (typed messages): ``symbols[0]`` picks how the stream ends after two prices."""

    def __init__(self) -> None:
        self.parked = asyncio.Event()
        self.closed = 0

    async def WatchPrices(
        self, request: cache_pb2.WatchPricesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[cache_pb2.WatchPricesResponse]:
        how = request.symbols[0]
        if how == "bad-at-once":
            raise InvalidArgument("symbols", "no such ticker")
        try:
            for s in ("AAPL", "MSFT"):
                yield cache_pb2.WatchPricesResponse(price=cache_pb2.StockPrice(symbol=s))
            if how == "slow":
                raise ResourceExhausted("subscriber queue overflowed (client too slow)")
            if how == "crash":
                raise RuntimeError("boom")
            if how == "park":
                self.parked.set()
                await asyncio.Event().wait()  # until drained
        finally:
            self.closed += 1


class Signals(signals_pb2_grpc.SignalServiceServicer):
    """SubscribeSignals pre-encoded (bytes, as the real fan-out), recording its resume point."""

    def __init__(self) -> None:
        self.parked = asyncio.Event()

    @pre_encoded_stream(signals_pb2.SubscribeSignalsResponse)
    async def SubscribeSignals(
        self, request: signals_pb2.SubscribeSignalsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        for sid in ("01JAAAAAAAAAAAAAAAAAAAAAAA", "01JBBBBBBBBBBBBBBBBBBBBBBB"):
            resume_from("since", sid)
            yield signals_pb2.SubscribeSignalsResponse(signal=signals_pb2.Signal(id=sid)).SerializeToString()
        if request.since == "overflow":
            raise ResourceExhausted("subscriber queue overflowed; resume with since=01JBBBBBBBBBBBBBBBBBBBBBBB")
        self.parked.set()
        await asyncio.sleep(3600)


@pytest.fixture
async def served() -> AsyncIterator[tuple[GrpcServer, Prices, Signals, grpc.aio.Channel]]:
    prices, signals = Prices(), Signals()
    gs = await start_server([ServiceRegistration.of(prices), ServiceRegistration.of(signals)], host="127.0.0.1", port=0)
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{gs.port}")
    try:
        yield gs, prices, signals, ch
    finally:
        await ch.close()
        await gs.server.stop(0)


async def _read(call: grpc.aio.UnaryStreamCall) -> tuple[list[object], grpc.StatusCode, str]:
    got: list[object] = []
    try:
        async for m in call:
            got.append(m)
    except grpc.aio.AioRpcError as e:
        return got, e.code(), e.details() or ""
    return got, await call.code(), await call.details()


def _info(status: object) -> error_details_pb2.ErrorInfo:
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)  # type: ignore[attr-defined]
    return info


def test_every_stream_response_of_the_api_has_the_trailer_field() -> None:
    """Oracle: every server-streaming RPC in the generated modules of the protos on disk."""
    streams = []
    for proto in sorted((Path(v1.__file__).parent).glob("*.proto")):
        mod = importlib.import_module(f"aiots.v1.{proto.stem}_pb2")
        for svc in mod.DESCRIPTOR.services_by_name.values():
            streams += [f"/{svc.full_name}/{m.name}" for m in svc.methods if m.server_streaming]
    assert len(streams) >= 5 and "/aiots.v1.IngestionService/Backfill" in streams
    for method in streams:
        assert trailer_class(method) is not None, method
    assert trailer_class("/aiots.v1.CacheService/GetStats") is None  # unary: never wrapped
    assert trailer_class("/grpc.health.v1.Health/Watch") is None  # no error field: left alone


async def test_slow_client_drop_sends_a_trailer_then_the_status(served: tuple) -> None:
    _gs, _p, _s, ch = served
    got, code, details = await _read(
        cache_pb2_grpc.CacheServiceStub(ch).WatchPrices(cache_pb2.WatchPricesRequest(symbols=["slow"]))
    )
    assert [m.price.symbol for m in got[:2]] == ["AAPL", "MSFT"]
    last = got[-1]
    assert len(got) == 3 and last.HasField("error") and not last.HasField("price")
    assert last.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] == code.value[0]
    assert last.error.message.startswith("subscriber queue overflowed") and "reconnect" in last.error.message
    assert details.startswith("subscriber queue overflowed")
    assert _info(last.error).reason == "RESOURCE_EXHAUSTED"


async def test_internal_failure_sends_a_trailer_without_internals(served: tuple) -> None:
    _gs, prices, _s, ch = served
    got, code, _details = await _read(
        cache_pb2_grpc.CacheServiceStub(ch).WatchPrices(cache_pb2.WatchPricesRequest(symbols=["crash"]))
    )
    assert code == grpc.StatusCode.INTERNAL
    assert got[-1].error.code == grpc.StatusCode.INTERNAL.value[0]
    assert "boom" not in got[-1].error.message and "internal error" in got[-1].error.message
    assert prices.closed == 1


async def test_no_trailer_before_the_first_message_nor_after_a_normal_end(served: tuple) -> None:
    _gs, _p, _s, ch = served
    stub = cache_pb2_grpc.CacheServiceStub(ch)
    got, code, details = await _read(stub.WatchPrices(cache_pb2.WatchPricesRequest(symbols=["bad-at-once"])))
    assert got == [] and code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("symbols:")
    got, code, _ = await _read(stub.WatchPrices(cache_pb2.WatchPricesRequest(symbols=["done"])))
    assert code == grpc.StatusCode.OK and len(got) == 2 and not any(m.HasField("error") for m in got)


async def test_drain_ends_open_streams_with_unavailable_and_the_resume_point(served: tuple) -> None:
    gs, prices, signals, ch = served
    sig_call = signals_pb2_grpc.SignalServiceStub(ch).SubscribeSignals(signals_pb2.SubscribeSignalsRequest())
    price_call = cache_pb2_grpc.CacheServiceStub(ch).WatchPrices(cache_pb2.WatchPricesRequest(symbols=["park"]))
    sig_task, price_task = asyncio.ensure_future(_read(sig_call)), asyncio.ensure_future(_read(price_call))
    await asyncio.wait_for(asyncio.gather(signals.parked.wait(), prices.parked.wait()), 10)
    assert gs.trailers is not None and gs.trailers.open_streams == 2
    await gs.set_serving(False)  # what every service's stop() does first
    assert await gs.trailers.ended(10)
    (sigs, scode, sdetails), (ps, pcode, _) = await asyncio.wait_for(asyncio.gather(sig_task, price_task), 10)
    assert scode == pcode == grpc.StatusCode.UNAVAILABLE
    assert [m.signal.id for m in sigs[:2]] == ["01JAAAAAAAAAAAAAAAAAAAAAAA", "01JBBBBBBBBBBBBBBBBBBBBBBB"]
    err = sigs[-1].error
    assert sigs[-1].WhichOneof("event") == "error" and err.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert err.message == "the server is shutting down; resume with since=01JBBBBBBBBBBBBBBBBBBBBBBB"
    assert sdetails == err.message
    assert _info(err).reason == "SHUTTING_DOWN" and dict(_info(err).metadata) == {"since": "01JBBBBBBBBBBBBBBBBBBBBBBB"}
    assert ps[-1].error.message == "the server is shutting down; reconnect"
    assert prices.closed == 1 and gs.trailers.open_streams == 0
    # a stream opened while stopping is refused with the status alone
    got, code, _ = await _read(
        cache_pb2_grpc.CacheServiceStub(ch).WatchPrices(cache_pb2.WatchPricesRequest(symbols=["park"]))
    )
    assert got == [] and code == grpc.StatusCode.UNAVAILABLE


async def test_a_domain_message_naming_the_resume_point_is_not_repeated(served: tuple) -> None:
    _gs, _p, _s, ch = served
    call = signals_pb2_grpc.SignalServiceStub(ch).SubscribeSignals(
        signals_pb2.SubscribeSignalsRequest(since="overflow")
    )
    got, code, _ = await _read(call)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert got[-1].error.message == "subscriber queue overflowed; resume with since=01JBBBBBBBBBBBBBBBBBBBBBBB"


async def test_resume_from_outside_a_stream_is_a_no_op() -> None:
    resume_from("since", "x")  # no served stream: nothing to record, nothing raised
    t = StreamTrailers()
    assert t.open_streams == 0 and await t.ended(0.01)
