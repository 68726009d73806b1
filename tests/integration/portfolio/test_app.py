"""The service process as ``aiots up`` wires it: option quotes and signals arrive on the bus
(in-process transport), orders fill at the quote seen on the bus at the feed's market time, a
following account enters on a published signal.

Oracle: the prices published on the bus (buy at the published ask, $0.65 per contract)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import grpc
import pytest

from aiots.core import conventions as cv
from aiots.services.bus.in_process import InProcessBus
from aiots.services.cache.backends.memory import MemoryBackend
from aiots.services.common.runtime import FeedSpec, Runtime
from aiots.services.common.settings import Settings
from aiots.services.portfolio.app import create_app
from aiots.v1 import common_pb2, events_pb2, portfolio_pb2_grpc
from aiots.v1 import portfolio_pb2 as pb
from aiots.v1 import signals_pb2 as spb

from .conftest import AAPL_C, T0


def quote(occ: str, bid: float, ask: float, ts: int) -> events_pb2.OptionQuoteEvent:
    return events_pb2.OptionQuoteEvent(
        symbol=occ, ts_event=ts, bid=bid, ask=ask, bid_size=50, ask_size=50, underlying_price=228.0,
        contract=common_pb2.OptionContract(occ_symbol=occ, underlying="AAPL", strike=230.0, expiry="2026-03-20"),
    )  # fmt: skip


async def wait_for(pred: Callable[[], object]) -> None:
    async with asyncio.timeout(10):
        while not pred():
            await asyncio.sleep(0.05)


async def test_bus_quotes_fill_orders_and_signals_are_followed(make_database: Callable[..., str]) -> None:
    s = Settings(symbols=["AAPL"], portfolio={"port": 0, "mark_interval_s": 0.2, "poll_interval_s": 0.05})
    pool = await asyncpg.create_pool(make_database(True), min_size=1, max_size=4)
    bus = InProcessBus(s.redis)
    rt = Runtime(settings=s, db=pool, cache=MemoryBackend(1 << 24), bus=bus, feed=FeedSpec(kind="simulator"))
    app = await create_app(rt)
    await app.start()
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    stub = portfolio_pb2_grpc.PortfolioServiceStub(ch)
    try:
        await bus.publish("options:quotes", "AAPL", quote(AAPL_C, 5.00, 5.20, T0))
        await wait_for(lambda: app.book.get(AAPL_C) is not None)
        acct = (await stub.CreateAccount(pb.CreateAccountRequest(name="bus", cash=10_000))).account.id
        o = (
            await stub.PlaceOrder(
                pb.PlaceOrderRequest(account_id=acct, client_order_id="1", contract=AAPL_C, side="BUY", quantity=1)
            )
        ).order
        assert (o.fill_price, o.fees) == (5.20, 0.65)
        assert o.filled_at.ToNanoseconds() == T0  # the feed's market time (a replayed session)

        # a newer quote moves the mark
        await bus.publish("options:quotes", "AAPL", quote(AAPL_C, 5.40, 5.60, T0 + cv.NS_PER_S))
        await wait_for(lambda: app.book.latest_ns == T0 + cv.NS_PER_S)
        a = (await stub.GetAccount(pb.GetAccountRequest(account_id=acct))).account
        assert a.positions[0].mark == pytest.approx(5.50)
        assert a.unrealized_pnl == pytest.approx(550 - 520.65)

        # following: a signal published by the signals service is entered at its ask
        await stub.SetFollowRule(pb.SetFollowRuleRequest(account_id=acct, rule=pb.FollowRule(enabled=True)))
        sig = spb.Signal(
            id="01BUSSIGNAL", symbol="AAPL", strategy="s", confidence=0.8, bid=5.40, ask=5.60, underlying_price=228.0,
            status=spb.SIGNAL_STATUS_OPEN, contract=common_pb2.OptionContract(occ_symbol=AAPL_C, underlying="AAPL"),
        )  # fmt: skip
        sig.created_at.FromNanoseconds(T0 + cv.NS_PER_S)
        await bus.publish("signals", "AAPL", events_pb2.SignalEvent(symbol="AAPL", signal=sig))

        async def followed() -> list[pb.Order]:
            return [x for x in (await stub.ListOrders(pb.ListOrdersRequest(account_id=acct))).orders if x.signal_id]

        async with asyncio.timeout(10):
            while not (got := await followed()):
                await asyncio.sleep(0.05)
        assert [(x.side, x.fill_price, x.source) for x in got] == [("BUY", 5.60, "follow")]
    finally:
        await ch.close()
        await app.stop()
        await bus.close()
        await pool.close()
