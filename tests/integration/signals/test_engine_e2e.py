"""A scripted market on the bus -> analytics' live state (the features' one owner) -> features:1m ->
engine -> store -> fan-out -> typed gRPC client.

The bars are built so that a volume-confirmed breakout happens at a known minute (80); the
option chain is priced with the core's American pricer and quoted 10 s before the breakout bar
closes (quotes older than the execution model's 60 s never fill). The client subscribes before
the first bar and must receive exactly that signal, on a call inside the configured DTE/delta
window, entered at the ask with a bid target 5-10 % above it after fees and a stop at least two
spreads below, then its TARGET_HIT update.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import pytest

from aiots.core import options as opt
from aiots.services.analytics.live_state import LiveState
from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.local_feed import LocalFeed
from aiots.services.common.ports import Bus
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.signals.app import BAR_TOPIC, OPTION_TOPIC, SignalsApp, expiry_ns
from aiots.services.signals.config import SignalsConfig
from aiots.v1 import common_pb2, events_pb2, signals_pb2, signals_pb2_grpc

pytestmark = pytest.mark.integration

T0 = 1_760_016_600 * 10**9  # 2025-10-09 13:30 UTC = 09:30 New York
MIN = 60 * 10**9
BREAKOUT_MINUTE = 80
EXPIRY = "2025-10-17"
IV = 0.25
R = 0.045


def scripted_bars() -> list[events_pb2.BarEvent]:
    rng = np.random.default_rng(11)
    out = []
    price = 200.0
    for i in range(BREAKOUT_MINUTE + 1):
        o = price
        if i < BREAKOUT_MINUTE:
            c = 200.0 + 0.4 * np.sin(i / 3.0) + rng.normal(0, 0.05)
            hi, lo, vol = max(o, c) + 0.1, min(o, c) - 0.1, 1000.0
        else:  # the breakout: close well above the 20-bar high on 4x volume
            c = 201.2
            hi, lo, vol = c + 0.05, o - 0.05, 4000.0
        bar = common_pb2.Bar(symbol="AAPL", interval="1m", open=o, high=hi, low=lo, close=c, volume=vol)
        bar.ts.FromNanoseconds(T0 + i * MIN)
        out.append(events_pb2.BarEvent(bar=bar, ts_event=T0 + i * MIN, closed=True))
        price = c
    return out


def chain_events(spot: float, ts_ns: int) -> list[events_pb2.OptionQuoteEvent]:
    T = (expiry_ns(EXPIRY) - ts_ns) / (365 * 86_400e9)
    evs = []
    for k in range(190, 211):
        for is_call in (True, False):
            p = float(opt.american_price(spot, float(k), T, R, IV, 0.0, is_call))
            right = "C" if is_call else "P"
            c = common_pb2.OptionContract(
                occ_symbol=f"AAPL  251017{right}{k * 1000:08d}",
                underlying="AAPL",
                strike=float(k),
                expiry=EXPIRY,
                right=common_pb2.OPTION_RIGHT_CALL if is_call else common_pb2.OPTION_RIGHT_PUT,
                multiplier=100,
            )
            evs.append(
                events_pb2.OptionQuoteEvent(
                    symbol=c.occ_symbol,
                    ts_event=ts_ns,
                    contract=c,
                    bid=round(p * 0.99, 2),
                    ask=round(p * 1.01, 2),
                    volume=500,
                    open_interest=2000,
                    underlying_price=spot,
                )
            )
    return evs


@contextlib.asynccontextmanager
async def features_owner(settings: Settings, bus: Bus, feed: LocalFeed | None = None) -> AsyncIterator[LiveState]:
    """Analytics' live state on ``bus``, the one owner of the features (no storage: nothing to warm
    from, so the scripted bars are all it sees); ``feed``: this process's local feed (the signals
    service then takes the features in-process, as under ``aiots up``), else over the bus only."""
    rt = Runtime(settings=settings, bus=bus)
    if feed is not None:
        rt.register(feed)
    live = LiveState(rt)
    await live.start()
    try:
        yield live
    finally:
        await live.stop()


@pytest.fixture(params=["bus", "in-process"])
async def app(pg_pool: Any, request: pytest.FixtureRequest) -> AsyncIterator[tuple[SignalsApp, InProcessBus]]:
    """The signals service with the features over the bus (analytics in another process) or from
    analytics' live state in this process."""
    settings = Settings(signals={"port": 0, "heartbeat_s": 1.0}, symbols=["AAPL", "MSFT"])
    bus = InProcessBus(settings.redis)
    await pg_pool.execute("DELETE FROM signals WHERE symbol = 'AAPL'")
    rt = Runtime(settings=settings, db=pg_pool, bus=bus)
    local = request.param == "in-process"
    a = SignalsApp(rt, port=0)
    async with features_owner(settings, bus, LocalFeed.of(rt) if local else None):
        await a.start()
        assert (a._unlisten is not None) == local  # the path this case is about
        yield a, bus
        await a.stop()
    await bus.close()


async def test_scripted_breakout_produces_the_expected_signal(app: tuple[SignalsApp, InProcessBus]) -> None:
    sig_app, bus = app
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sig_app.port}") as ch:
        stub = signals_pb2_grpc.SignalServiceStub(ch)
        call = stub.SubscribeSignals(
            signals_pb2.SubscribeSignalsRequest(
                symbols=["AAPL"], strategies=["momentum_breakout"], include_updates=True
            )
        )
        for _ in range(200):
            if sig_app.broker.subscribers:
                break
            await asyncio.sleep(0.01)
        quote_ts = T0 + (BREAKOUT_MINUTE + 1) * MIN - 10 * 10**9
        for ev in chain_events(200.0, quote_ts):
            await bus.publish(OPTION_TOPIC, "AAPL", ev)
        await asyncio.sleep(0.2)  # the chain is in before the bars (as in a live session)
        for ev in scripted_bars():
            await bus.publish(BAR_TOPIC, "AAPL", ev)

        msg = await asyncio.wait_for(_next_event(call), 20)
        assert msg.WhichOneof("event") == "signal"
        s = msg.signal
        cfg = SignalsConfig()
        assert s.strategy == "momentum_breakout" and s.direction == signals_pb2.DIRECTION_BULLISH
        assert s.created_at.ToNanoseconds() == T0 + (BREAKOUT_MINUTE + 1) * MIN  # close of the breakout bar
        assert s.underlying_price == pytest.approx(201.2)
        assert s.contract.right == common_pb2.OPTION_RIGHT_CALL and s.contract.expiry == EXPIRY
        # Entry is the published ask of the chosen contract (an executable buy).
        quotes = {e.symbol: e for e in chain_events(200.0, quote_ts)}
        q = quotes[s.contract.occ_symbol]
        assert s.entry_price == q.ask
        assert s.bid == q.bid and s.ask == q.ask
        sc = cfg.selection
        assert sc.delta_min <= s.greeks.delta <= sc.delta_max
        fee = s.fee_per_contract / 100
        assert s.fee_per_contract == 0.65
        gain = 100 * ((s.target_price - fee) / (s.entry_price + fee) - 1)  # sold at the bid, after fees
        assert sc.target_min_pct - 1e-9 <= gain <= sc.target_max_pct + 1e-9
        assert s.entry_price - s.stop_price >= 2 * (q.ask - q.bid) - 1e-9
        assert s.reward_risk >= sc.min_reward_risk - 1e-9 and s.suggested_contracts >= 1
        assert 0 < s.confidence <= 1
        assert {r.indicator for r in s.reasons} >= {"close vs resistance", "volume / avg"}
        vol = next(r for r in s.reasons if r.indicator == "volume / avg")
        assert vol.value == pytest.approx(4.0)

        # The contract's bid reaches the target: the subscriber sees TARGET_HIT.
        hit = quotes[s.contract.occ_symbol]
        hit.bid = round(s.target_price + 0.05, 2)
        hit.ask = hit.bid + 0.02
        hit.ts_event = T0 + (BREAKOUT_MINUTE + 5) * MIN
        await bus.publish(OPTION_TOPIC, "AAPL", hit)
        upd = await asyncio.wait_for(_next_event(call), 20)
        call.cancel()
        assert upd.WhichOneof("event") == "update"
        assert upd.update.id == s.id and upd.update.status == signals_pb2.SIGNAL_STATUS_TARGET_HIT
        assert upd.update.outcome.exit_price == pytest.approx(hit.bid)
        assert upd.update.updated_at.ToNanoseconds() == hit.ts_event  # stamped with the update's time


async def _next_event(call: Any) -> signals_pb2.SubscribeSignalsResponse:
    while True:
        m: signals_pb2.SubscribeSignalsResponse = await call.read()
        if m.WhichOneof("event") != "heartbeat":
            return m
