"""SignalService through a real gRPC channel, real PostgreSQL and the in-process bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.signals.app import SignalsApp
from aiots.services.signals.conversions import signal_to_proto
from aiots.services.signals.ids import signal_id
from aiots.services.signals.models import Direction, GreeksTU, OptionQuote, Reason, Signal, Status, StatusChange
from aiots.v1 import common_pb2, signals_pb2, signals_pb2_grpc

pytestmark = pytest.mark.integration
BASE_NS = 1_760_000_000 * 10**9


def make_signal(i: int, symbol: str = "AAPL", strategy: str = "momentum_breakout", conf: float = 0.7) -> Signal:
    created = BASE_NS + i * 60 * 10**9
    q = OptionQuote(
        occ_symbol=f"{symbol:<6}251219C00200000",
        underlying=symbol,
        expiry="2025-12-19",
        expiry_ns=created + 10 * 86_400 * 10**9,
        strike=200.0,
        is_call=True,
        bid=2.0,
        ask=2.1,
        volume=100,
        open_interest=1000,
        ts_ns=created,
    )
    return Signal(
        id=signal_id(created, symbol, strategy, str(i)),
        created_ns=created,
        symbol=symbol,
        underlying_price=199.5,
        direction=Direction.BULLISH,
        strategy=strategy,
        contract=q,
        entry_price=2.05,
        target_price=2.05 * 1.08,
        stop_price=2.05 * 0.95,
        horizon_ns=created + 3600 * 10**9,
        confidence=conf,
        expected_return_pct=12.0,
        reward_risk=1.6,
        greeks=GreeksTU(0.5, 0.05, -0.1, 0.2, 0.03),
        iv=0.3,
        iv_rank=40.0,
        reasons=(Reason("volume / avg", 2.0, 1.5, "heavy volume"),),
        projected_move=3.0,
        history=[StatusChange(Status.OPEN, created, 2.05, "opened")],
    )


@pytest.fixture
async def app(pg_pool: Any) -> AsyncIterator[SignalsApp]:
    settings = Settings(signals={"port": 0, "heartbeat_s": 0.5, "subscriber_queue": 8})
    bus = InProcessBus(settings.redis)
    await pg_pool.execute("DELETE FROM signals")
    a = SignalsApp(Runtime(settings=settings, db=pg_pool, bus=bus), port=0)
    await a.start()
    yield a
    await a.stop()
    await bus.close()


@pytest.fixture
async def stub(app: SignalsApp) -> AsyncIterator[signals_pb2_grpc.SignalServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield signals_pb2_grpc.SignalServiceStub(ch)


async def _collect(call: Any, n: int, limit_s: float = 10.0) -> list[signals_pb2.SubscribeSignalsResponse]:
    out: list[signals_pb2.SubscribeSignalsResponse] = []

    async def run() -> None:
        async for m in call:
            if m.WhichOneof("event") == "heartbeat":
                continue
            out.append(m)
            if len(out) >= n:
                return

    await asyncio.wait_for(run(), limit_s)
    return out


async def _wait_subscribers(app: SignalsApp, n: int) -> None:
    for _ in range(200):
        if app.broker.subscribers >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {app.broker.subscribers} subscribers registered")


@pytest.mark.parametrize(
    "req,field",
    [
        (signals_pb2.SubscribeSignalsRequest(symbols=["NOPE"]), "symbols"),
        (signals_pb2.SubscribeSignalsRequest(strategies=["astrology"]), "strategies"),
        (signals_pb2.SubscribeSignalsRequest(min_confidence=1.5), "min_confidence"),
        (signals_pb2.SubscribeSignalsRequest(since="yesterday"), "since"),
    ],
)
async def test_invalid_subscription_filters(
    stub: signals_pb2_grpc.SignalServiceStub, req: signals_pb2.SubscribeSignalsRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        async for _ in stub.SubscribeSignals(req):
            pass
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (ei.value.details() or "")


async def test_bad_unary_requests(stub: signals_pb2_grpc.SignalServiceStub) -> None:
    for call, code in [
        (stub.GetSignal(signals_pb2.GetSignalRequest(id="")), grpc.StatusCode.INVALID_ARGUMENT),
        (stub.GetSignal(signals_pb2.GetSignalRequest(id="01JAAAAAAAAAAAAAAAAAAAAAAA")), grpc.StatusCode.NOT_FOUND),
        (
            stub.ListSignals(signals_pb2.ListSignalsRequest(min_confidence=-0.1)),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            stub.GetSignalStats(signals_pb2.GetSignalStatsRequest(symbols=["ZZZZ"])),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as ei:
            await call
        assert ei.value.code() == code


async def test_live_delivery_filter_and_lookup(app: SignalsApp, stub: signals_pb2_grpc.SignalServiceStub) -> None:
    call = stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest(symbols=["AAPL,MSFT"], min_confidence=0.6))
    await _wait_subscribers(app, 1)
    low = make_signal(1, conf=0.3)
    other = make_signal(2, symbol="TSLA")
    good = make_signal(3)
    await app._emit([low, other, good], [])
    (msg,) = await _collect(call, 1)
    call.cancel()
    assert msg.signal.id == good.id and msg.signal.contract.occ_symbol == good.contract.occ_symbol
    got = await stub.GetSignal(signals_pb2.GetSignalRequest(id=good.id))
    assert got.signal.target_price == pytest.approx(good.target_price)
    assert [h.status for h in got.signal.history] == [signals_pb2.SIGNAL_STATUS_OPEN]
    page = await stub.ListSignals(signals_pb2.ListSignalsRequest(page=common_pb2.PageRequest(page_size=2)))
    assert [s.id for s in page.signals] == sorted([low.id, other.id, good.id], reverse=True)[:2]
    assert page.page.next_page_token


async def test_since_replays_missed_signals_then_goes_live_without_gap_or_duplicate(
    app: SignalsApp, stub: signals_pb2_grpc.SignalServiceStub
) -> None:
    sigs = [make_signal(i) for i in range(10, 14)]
    await app._emit(sigs[:3], [])
    call = stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest(since=sigs[0].id))
    await _wait_subscribers(app, 1)
    await app._emit(sigs[2:], [])  # sigs[2] is re-announced: must not be delivered twice
    got = await _collect(call, 3)
    call.cancel()
    assert [m.signal.id for m in got] == [s.id for s in sigs[1:]]


async def test_hundred_subscribers_each_get_every_signal_once_in_order(
    app: SignalsApp, stub: signals_pb2_grpc.SignalServiceStub
) -> None:
    calls = [stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest()) for _ in range(100)]
    await _wait_subscribers(app, 100)
    sigs = [make_signal(100 + i, symbol=("AAPL", "MSFT", "SPY")[i % 3]) for i in range(6)]
    collectors = [asyncio.ensure_future(_collect(c, len(sigs), limit_s=30)) for c in calls]
    for s in sigs:
        await app._emit([s], [])
    results = await asyncio.gather(*collectors)
    for c in calls:
        c.cancel()
    for got in results:
        assert [m.signal.id for m in got] == [s.id for s in sigs]


async def test_stalled_subscriber_gets_resource_exhausted_others_keep_up(
    app: SignalsApp, stub: signals_pb2_grpc.SignalServiceStub
) -> None:
    fast = stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest())
    await _wait_subscribers(app, 1)
    (fast_sub,) = app.broker._subs
    # A client with a small receive window and no BDP probing: its buffers fill quickly.
    slow_ch = grpc.aio.insecure_channel(
        f"127.0.0.1:{app.port}", options=[("grpc.http2.lookahead_bytes", 16384), ("grpc.http2.bdp_probe", 0)]
    )
    slow = signals_pb2_grpc.SignalServiceStub(slow_ch).SubscribeSignals(signals_pb2.SubscribeSignalsRequest())
    await _wait_subscribers(app, 2)
    # The slow client never reads: once gRPC's flow-control windows are full its queue (8) overflows.
    n = 4000
    protos = [signal_to_proto(make_signal(200 + i)) for i in range(n)]
    fast_task = asyncio.ensure_future(_collect(fast, n, limit_s=60))
    for p in protos:
        while fast_sub.queue.qsize() > 4:  # a healthy client reads at the production rate
            await asyncio.sleep(0.001)
        app.broker.publish(p, False)
    assert [m.signal.id for m in await fast_task] == [p.id for p in protos]
    fast.cancel()
    assert not fast_sub.overflowed
    assert sum(s.overflowed for s in app.broker._subs) == 1
    got: list[signals_pb2.SubscribeSignalsResponse] = []
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        async for m in slow:
            got.append(m)
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The stream's last message says why it ends and where to resume (issue 18): an unbroken
    # prefix of what was published, then ``error`` naming the last id of that prefix.
    *delivered, last = got
    ids = [m.signal.id for m in delivered if m.WhichOneof("event") == "signal"]
    assert ids and ids == [p.id for p in protos[: len(ids)]] and len(ids) < n
    assert last.WhichOneof("event") == "error"
    assert last.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert last.error.message.endswith(f"resume with since={ids[-1]}")
    assert (ei.value.details() or "") == last.error.message
    await slow_ch.close()


async def test_status_updates_are_streamed_persisted_and_counted(
    app: SignalsApp, stub: signals_pb2_grpc.SignalServiceStub
) -> None:
    call = stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest(include_updates=True))
    await _wait_subscribers(app, 1)
    s = make_signal(300)
    app.engine.track(s)
    await app._emit([s], [])
    q = s.contract
    hit = OptionQuote(**{**q.__dict__, "bid": s.target_price + 0.01, "ts_ns": s.created_ns + 60 * 10**9})
    updates = app.engine.on_option_quote(hit)
    assert [u.status for u in updates] == [Status.TARGET_HIT]
    await app._emit([], updates)
    await app._emit([], updates)  # a second replica's identical exit is not announced twice
    got = await _collect(call, 2)
    call.cancel()
    assert got[0].WhichOneof("event") == "signal"
    assert got[1].WhichOneof("event") == "update"
    assert got[1].update.status == signals_pb2.SIGNAL_STATUS_TARGET_HIT
    assert got[1].update.outcome.pnl_pct == pytest.approx((hit.bid / s.entry_price - 1) * 100)
    full = await stub.GetSignal(signals_pb2.GetSignalRequest(id=s.id))
    assert [h.status for h in full.signal.history] == [
        signals_pb2.SIGNAL_STATUS_OPEN,
        signals_pb2.SIGNAL_STATUS_TARGET_HIT,
    ]
    stats = await stub.GetSignalStats(signals_pb2.GetSignalStatsRequest(symbols=["AAPL"]))
    row = next(r for r in stats.rows if r.strategy == "momentum_breakout")
    assert row.target_hit == 1 and row.hit_rate == pytest.approx(1.0)


async def test_idle_stream_gets_heartbeats(app: SignalsApp, stub: signals_pb2_grpc.SignalServiceStub) -> None:
    call = stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest())
    first = await asyncio.wait_for(call.read(), 5)
    call.cancel()
    assert first.WhichOneof("event") == "heartbeat"


async def test_open_streams_are_limited_per_subject(app: SignalsApp, stub: signals_pb2_grpc.SignalServiceStub) -> None:
    limit = app.cfg.max_streams_per_subject
    alice = (("x-aiots-subject", "alice"),)
    calls = [stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest(), metadata=alice) for _ in range(limit)]
    await _wait_subscribers(app, limit)
    extra = stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest(), metadata=alice)
    with pytest.raises(grpc.aio.AioRpcError) as ei:
        await extra.read()
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "alice" in (ei.value.details() or "")
    bob = stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest(), metadata=(("x-aiots-subject", "bob"),))
    await _wait_subscribers(app, limit + 1)  # another subject is not affected
    calls[0].cancel()
    for _ in range(200):  # a closed stream frees its slot
        if app.broker.subscribers == limit:
            break
        await asyncio.sleep(0.01)
    again = stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest(), metadata=alice)
    await _wait_subscribers(app, limit + 1)
    for c in [*calls[1:], bob, again]:
        c.cancel()
