"""Analytics' live state is the one owner of the streaming features: each closed bar on the bus is
folded in once and published once on ``features:1m``, warm-up happens here (from stored bars), and
the signal engine's decisions from the published features equal its decisions from computing the
features in-process on the same bars (the backtest's path).

Oracles: TA-Lib over the same bars (real SPY 1-minute bars from the data fixture, and the stored
bars), and the engine's in-process path on those bars."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib

from aiots.core import conventions as cv
from aiots.services.analytics.live_state import LiveState
from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.features.conversions import snapshot_from_event
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.engine import SignalEngine
from aiots.services.signals.models import Bar
from aiots.services.storage.migrate import ensure_partitions
from aiots.v1 import common_pb2, events_pb2

pytestmark = pytest.mark.integration

MIN = cv.NS_PER_MIN
T0 = 1_760_016_600 * 10**9  # 2025-10-09 13:30 UTC = 09:30 New York
N_SPY = 1200  # three regular sessions and a bit


def _event(sym: str, ts: int, o: float, h: float, lo: float, c: float, v: float) -> events_pb2.BarEvent:
    bar = common_pb2.Bar(symbol=sym, interval="1m", open=o, high=h, low=lo, close=c, volume=v)
    bar.ts.FromNanoseconds(ts)
    return events_pb2.BarEvent(bar=bar, ts_event=ts, closed=True)


def _spy(shared_data: Path) -> pd.DataFrame:
    df = pd.read_csv(shared_data / "ohlcv" / "SPY_1m_2024-02-20_2024-05-17.csv")
    local = pd.to_datetime(df["datetime"]).dt.tz_localize(cv.NY)
    df["ts"] = local.dt.tz_convert("UTC").astype("int64")  # ns since the epoch
    t = local.dt.time
    regular = (t >= dt.time(9, 30)) & (t < dt.time(16, 0))
    return df[regular].head(N_SPY).reset_index(drop=True)


async def _collect(bus: InProcessBus, n: int, timeout_s: float = 20.0) -> list[events_pb2.FeatureEvent]:
    out: list[events_pb2.FeatureEvent] = []

    async def read() -> None:
        async for d in bus.consume("features:1m", ["SPY"], group="test", consumer="test", start="0"):
            out.append(events_pb2.FeatureEvent.FromString(d.payload))
            await bus.ack(d, group="test")
            if len(out) >= n:
                return

    await asyncio.wait_for(read(), timeout_s)
    return out


async def test_one_bar_one_computation_and_the_same_decisions(shared_data: Path) -> None:
    df = _spy(shared_data)
    settings = Settings(symbols=["SPY"], analytics={"live_intervals": ["1m"]})
    bus = InProcessBus(settings.redis)
    live = LiveState(Runtime(settings=settings, bus=bus))
    await live.start()
    try:
        rows = list(df.itertuples())
        events = [("SPY", _event("SPY", int(r.ts), r.open, r.high, r.low, r.close, r.volume)) for r in rows]
        await bus.publish_many("bars:1m", events)
        published = await _collect(bus, len(rows))
        assert live.computed == len(rows) and len(published) == len(rows)  # one computation, one event per bar
        # the same bar again (a redelivery): no second computation, no second event
        await bus.publish("bars:1m", "SPY", events[-1][1])
        for _ in range(50):
            await asyncio.sleep(0.01)
        assert live.computed == len(rows)
        assert len(bus._stream("features:1m", "SPY").entries) == len(rows)
    finally:
        await live.stop()
        await bus.close()

    # features: TA-Lib over the same bars
    h, lo, c = (df[k].to_numpy(float) for k in ("high", "low", "close"))
    last = published[-1]
    assert [e.ts_event for e in published] == df["ts"].tolist()
    assert last.atr == pytest.approx(talib.ATR(h, lo, c, 14)[-1], rel=1e-12)
    assert last.rsi == pytest.approx(talib.RSI(c, 14)[-1], rel=1e-12)
    assert last.adx == pytest.approx(talib.ADX(h, lo, c, 14)[-1], rel=1e-12)
    assert last.ema_slow == pytest.approx(talib.EMA(c, 50)[-1], rel=1e-12)
    assert last.bb_middle == pytest.approx(talib.SMA(c, 20)[-1], rel=1e-12)

    # decisions: the engine on the published features == the engine computing them in-process
    cfg = SignalsConfig()
    from_bus, in_process = SignalEngine(cfg), SignalEngine(cfg)
    got = [from_bus.decide(snapshot_from_event(e)) for e in published]
    want = [in_process.evaluate(Bar("SPY", int(r.ts), r.open, r.high, r.low, r.close, r.volume)) for r in rows]
    assert got == want
    assert sum(len(ideas) for ideas, _ in got) >= 3, "no strategy fired: the comparison would be empty"


async def _store_bars(pg_pool: Any, sym: str, ts: np.ndarray, o: Any, h: Any, lo: Any, c: Any) -> None:
    await pg_pool.execute("DELETE FROM bars_1m WHERE symbol = $1", sym)
    day = dt.datetime.fromtimestamp(T0 / 1e9, dt.UTC).date()
    await ensure_partitions(pg_pool, ["bars_1m"], day - dt.timedelta(days=1), day)
    await pg_pool.executemany(
        "INSERT INTO bars_1m (symbol, ts_event, ts, open, high, low, close, volume, vwap, trade_count)"
        " VALUES ($1, $2::bigint, to_timestamp($2::bigint / 1e9), $3, $4, $5, $6, 1000, $6, 10)",
        [(sym, int(t), float(a), float(b), float(d), float(e)) for t, a, b, d, e in zip(ts, o, h, lo, c, strict=True)],
    )


def _walk(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = 300 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    o = np.r_[c[0], c[:-1]]
    return o, np.maximum(o, c) + 0.05, np.minimum(o, c) - 0.05, c


async def test_start_warms_the_features_once_from_stored_bars(pg_pool: Any) -> None:
    """After a restart the features are ready from stored 1m bars, not after 50 live minutes; the
    first live bar's published features continue the warmed state."""
    n = 120
    o, h, lo, c = _walk(3, n + 1)
    ts = T0 - (n - np.arange(n + 1)) * MIN  # the session before T0, then one live bar at T0
    await _store_bars(pg_pool, "MSFT", ts[:n], o[:n], h[:n], lo[:n], c[:n])
    settings = Settings(symbols=["MSFT"], analytics={"live_intervals": ["1m"], "live_warmup_bars": 100})
    bus = InProcessBus(settings.redis)
    live = LiveState(Runtime(settings=settings, db=pg_pool, bus=bus))
    await live.start()
    try:
        feats = live.state["MSFT", "1m"]
        assert feats.last_ts_ns == int(ts[n - 1]) and feats.bars == 100
        # warm-up used the latest 100 bars: the EMA(50) equals TA-Lib's over exactly those bars
        assert float(feats.ema_slow.value) == pytest.approx(talib.EMA(c[n - 100 : n], 50)[-1], rel=1e-12)
        assert feats.adx.ready and feats.ema_slow.ready
        await bus.publish("bars:1m", "MSFT", _event("MSFT", int(ts[n]), o[n], h[n], lo[n], c[n], 1000.0))
        (ev,) = await _collect_msft(bus)
        assert ev.ts_event == int(ts[n]) and ev.prev_bar.close == pytest.approx(c[n - 1])
        assert ev.ema_slow == pytest.approx(talib.EMA(c[n - 100 : n + 1], 50)[-1], rel=1e-12)
    finally:
        await live.stop()
        await bus.close()
        await pg_pool.execute("DELETE FROM bars_1m WHERE symbol = 'MSFT'")


async def _collect_msft(bus: InProcessBus) -> list[events_pb2.FeatureEvent]:
    async def read() -> list[events_pb2.FeatureEvent]:
        async for d in bus.consume("features:1m", ["MSFT"], group="test", consumer="test", start="0"):
            await bus.ack(d, group="test")
            return [events_pb2.FeatureEvent.FromString(d.payload)]
        return []

    return await asyncio.wait_for(read(), 10)


async def test_a_feed_behind_the_warm_up_re_warms_instead_of_dropping_bars(pg_pool: Any) -> None:
    """A restart while the simulator replays the last session: the stored bars reach further than
    the live feed. The first live bar behind the warmed state re-warms from the stored bars before
    it (oracle: TA-Lib's EMA over exactly those bars plus the live one), instead of every live bar
    being taken for a stale duplicate; the features published for it say so."""
    n = 200
    o, h, lo, c = _walk(5, n)
    ts = T0 + np.arange(n) * MIN  # 09:30 onwards, stored from an earlier run
    await _store_bars(pg_pool, "MSFT", ts, o, h, lo, c)
    settings = Settings(symbols=["MSFT"], analytics={"live_intervals": ["1m"], "live_warmup_bars": 100})
    bus = InProcessBus(settings.redis)
    live = LiveState(Runtime(settings=settings, db=pg_pool, bus=bus))
    await live.start()
    try:
        assert live.state["MSFT", "1m"].last_ts_ns == int(ts[-1])  # warmed to the end of the stored bars
        k = 120  # the replay is at bar 120 of the session: 80 bars behind
        await bus.publish("bars:1m", "MSFT", _event("MSFT", int(ts[k]), o[k], h[k], lo[k], c[k], 1000.0))
        (ev,) = await _collect_msft(bus)
        feats = live.state["MSFT", "1m"]
        assert feats.last_ts_ns == int(ts[k]) == ev.ts_event
        # re-warmed from the 100 stored bars before bar k, then bar k itself
        want = talib.EMA(c[k - 100 : k + 1], 50)[-1]
        assert float(feats.ema_slow.value) == pytest.approx(want, rel=1e-12)
        assert ev.ema_slow == pytest.approx(want, rel=1e-12)
        # a bar slightly behind the state is a duplicate: dropped, not a re-warm
        await bus.publish("bars:1m", "MSFT", _event("MSFT", int(ts[k - 1]), o[k], h[k], lo[k], c[k], 1.0))
        await asyncio.sleep(0.2)
        assert live.state["MSFT", "1m"] is feats and feats.last_ts_ns == int(ts[k]) and live.computed == 1
    finally:
        await live.stop()
        await bus.close()
        await pg_pool.execute("DELETE FROM bars_1m WHERE symbol = 'MSFT'")


async def test_a_new_group_does_not_replay_the_retained_bars(pg_pool: Any) -> None:
    """Bars already on the bus when analytics first starts are in storage, so the warm-up has them:
    the group starts at the newest entry and only the next live bar is computed and published (a
    replay of the stream's history would re-warm from its first bar and publish old features)."""
    n = 150
    o, h, lo, c = _walk(9, n + 1)
    ts = T0 + np.arange(n + 1) * MIN
    await _store_bars(pg_pool, "MSFT", ts[:n], o[:n], h[:n], lo[:n], c[:n])
    settings = Settings(symbols=["MSFT"], analytics={"live_intervals": ["1m"], "live_warmup_bars": 100})
    bus = InProcessBus(settings.redis)
    retained = [("MSFT", _event("MSFT", int(ts[i]), o[i], h[i], lo[i], c[i], 1000.0)) for i in range(n)]
    await bus.publish_many("bars:1m", retained)
    live = LiveState(Runtime(settings=settings, db=pg_pool, bus=bus))
    await live.start()
    try:
        await bus.publish("bars:1m", "MSFT", _event("MSFT", int(ts[n]), o[n], h[n], lo[n], c[n], 1000.0))
        (ev,) = await _collect_msft(bus)
        assert ev.ts_event == int(ts[n]) and live.computed == 1
        assert ev.ema_slow == pytest.approx(talib.EMA(c[n - 100 : n + 1], 50)[-1], rel=1e-12)
    finally:
        await live.stop()
        await bus.close()
        await pg_pool.execute("DELETE FROM bars_1m WHERE symbol = 'MSFT'")


async def test_a_restart_continues_the_checkpoint_with_the_bars_stored_meanwhile(pg_pool: Any) -> None:
    """Bars stored while analytics was down are folded into the restored checkpoint (oracle: TA-Lib's
    EMA over every bar from the first warm-up on); a checkpoint more than a warm-up behind storage
    is warmed afresh instead (TA-Lib over the last ``live_warmup_bars`` bars only)."""
    from aiots.services.cache.backends.memory import MemoryBackend

    n = 320
    o, h, lo, c = _walk(13, n)
    ts = T0 + np.arange(n) * MIN
    settings = Settings(symbols=["MSFT"], analytics={"live_intervals": ["1m"], "live_warmup_bars": 100})
    cache = MemoryBackend(1 << 20)

    async def restart(stored_to: int) -> LiveState:
        await _store_bars(pg_pool, "MSFT", ts[:stored_to], o[:stored_to], h[:stored_to], lo[:stored_to], c[:stored_to])
        live = LiveState(Runtime(settings=settings, db=pg_pool, cache=cache))
        await live.start()
        await live.stop()  # checkpoints
        return live

    try:
        first = await restart(120)  # warmed from bars 20..119
        assert first.state["MSFT", "1m"].bars == 100
        again = (await restart(160)).state["MSFT", "1m"]  # 40 bars stored while down
        assert again.bars == 140 and again.last_ts_ns == int(ts[159])
        assert float(again.ema_slow.value) == pytest.approx(talib.EMA(c[20:160], 50)[-1], rel=1e-12)
        stale = (await restart(n)).state["MSFT", "1m"]  # 160 more: over a warm-up's worth
        assert stale.bars == 100 and stale.last_ts_ns == int(ts[-1])
        assert float(stale.ema_slow.value) == pytest.approx(talib.EMA(c[n - 100 :], 50)[-1], rel=1e-12)
    finally:
        await pg_pool.execute("DELETE FROM bars_1m WHERE symbol = 'MSFT'")
