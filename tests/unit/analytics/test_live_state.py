"""Live state: bars from the in-process bus into core streams; checkpoint/restart resumes identically
(and only a checkpoint of the same feature periods).

Oracle: TA-Lib over the same bars (the streams must equal the batch functions)."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import numpy as np
import pytest
import talib

from aiots.services.analytics.indicators import SPECS, IndicatorCall
from aiots.services.analytics.live_state import LiveState, waited_ns
from aiots.services.bus.in_process import InProcessBus
from aiots.services.cache.backends.memory import MemoryBackend
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.features.params import FeatureParams
from aiots.services.features.state import Bar
from aiots.v1 import common_pb2, events_pb2

NS = 1_000_000_000


def nvda_bar_events(rows: list[dict[str, str]]) -> list[tuple[str, events_pb2.BarEvent]]:
    """(symbol, closed 1m BarEvent) per CSV row of NVDA minutes, one minute apart from a fixed start."""
    events = []
    for i, r in enumerate(rows):
        bar = common_pb2.Bar(
            symbol="NVDA", interval="1m", open=float(r["open"]), high=float(r["high"]), low=float(r["low"]),
            close=float(r["close"]), volume=float(r["volume"]),
        )  # fmt: skip
        events.append(("NVDA", events_pb2.BarEvent(bar=bar, ts_event=(1_700_000_000 + 60 * i) * NS, closed=True)))
    return events


def _calls() -> list[IndicatorCall]:
    return [IndicatorCall(n, dict(SPECS[n].params)) for n in ("sma", "ema", "rsi", "macd", "bbands")]


async def _wait_for(live: LiveState, key: tuple[str, str], bars: int) -> None:
    for _ in range(500):
        st = live.state.get(key)
        if st is not None and st.bars >= bars:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"live state saw {live.state[key].bars} bars, wanted {bars}")


async def test_follow_checkpoint_restart(shared_data: Path) -> None:
    with (shared_data / "ohlcv" / "NVDA_1m_2024-03-01_2024-03-14.csv").open() as fh:
        rows = list(csv.DictReader(fh))[:400]
    settings = Settings(symbols=["NVDA"], analytics={"live_intervals": ["1m"], "checkpoint_interval_s": 60})
    cache = MemoryBackend(16 << 20)
    bus = InProcessBus(settings.redis)
    rt = Runtime(settings=settings, cache=cache, bus=bus)
    live = LiveState(rt)
    await live.start()
    events = nvda_bar_events(rows)
    await bus.publish_many("bars:1m", events)
    await _wait_for(live, ("NVDA", "1m"), len(rows))
    before = live.latest("NVDA", "1m", _calls())
    assert before is not None
    close = np.array([float(r["close"]) for r in rows])
    vals = {v.name: dict(v.outputs) for v in before[1]}
    assert vals["sma"]["sma"][0] == pytest.approx(talib.SMA(close, 30)[-1], rel=1e-12)
    assert vals["rsi"]["rsi"][0] == pytest.approx(talib.RSI(close, 14)[-1], rel=1e-12)
    assert vals["macd"]["macd"][0] == pytest.approx(talib.MACD(close)[0][-1], rel=1e-12)
    # non-default parameters are not served from memory
    assert live.latest("NVDA", "1m", [IndicatorCall("sma", {"period": 7})]) is None
    await live.stop()

    # restart on the same cache: identical values without replaying a single bar
    live2 = LiveState(Runtime(settings=settings, cache=cache, bus=None))
    await live2.start()
    after = live2.latest("NVDA", "1m", _calls())
    await live2.stop()
    assert after is not None
    assert after[0].tolist() == before[0].tolist()
    for a, b in zip(after[1], before[1], strict=True):
        assert [(n, s.tolist()) for n, s in a.outputs] == [(n, s.tolist()) for n, s in b.outputs]
    await bus.close()


async def test_a_checkpoint_of_other_periods_is_not_resumed(tmp_path: Path) -> None:
    """The periods come from the strategy file: a checkpoint computed with others is warmed afresh
    (here: empty, no storage), never served or continued."""
    settings = Settings(symbols=["NVDA"], analytics={"live_intervals": ["1m"]})
    cache = MemoryBackend(1 << 20)
    live = LiveState(Runtime(settings=settings, cache=cache))
    await live.start()
    st = live.state["NVDA", "1m"]
    for i in range(60):
        st.update(Bar("NVDA", (1_700_000_000 + 60 * i) * NS, 10.0, 11.0, 9.0, 10.0 + i % 3, 100.0))
    await live.stop()
    again = LiveState(Runtime(settings=settings, cache=cache))
    await again.start()
    assert again.state["NVDA", "1m"].bars == 60  # same periods: resumed
    await again.stop()
    other = tmp_path / "s.yaml"
    other.write_text("strategies: {trend_pullback: {ema_slow: 30}}\n")
    changed = settings.model_copy(update={"signals": settings.signals.model_copy(update={"strategies_file": other})})
    fresh = LiveState(Runtime(settings=changed, cache=cache))
    await fresh.start()
    assert fresh.params == FeatureParams(ema_slow=30)
    assert fresh.state["NVDA", "1m"].bars == 0  # other periods: not resumed
    await fresh.stop()


def _bar_event(ts: int) -> events_pb2.BarEvent:
    bar = common_pb2.Bar(symbol="NVDA", interval="1m", open=10.0, high=11.0, low=9.0, close=10.5, volume=100.0)
    return events_pb2.BarEvent(bar=bar, ts_event=ts, closed=True)


async def test_a_far_behind_bar_re_warms_only_when_just_published() -> None:
    """The feed going back (a bar far behind, just published) re-warms; the same bar after waiting
    on the bus (reclaimed from a dead consumer, a backlog) is history and is dropped."""
    settings = Settings(symbols=["NVDA"], analytics={"live_intervals": ["1m"]})
    live = LiveState(Runtime(settings=settings))
    await live.start()
    try:
        t0 = 1_700_000_000 * NS
        for i in range(30):
            assert await live.on_bar(_bar_event(t0 + i * 60 * NS)) is not None
        st = live.state["NVDA", "1m"]
        behind = _bar_event(t0 + 10 * 60 * NS)  # 19 minutes behind the state
        assert await live.on_bar(behind, fresh=False) is None
        assert live.state["NVDA", "1m"] is st and live.computed == 30
        assert await live.on_bar(behind) is not None  # re-warmed (no storage here: from empty)
        assert live.state["NVDA", "1m"] is not st and live.computed == 31
    finally:
        await live.stop()


def test_waited_is_read_from_a_redis_stream_id() -> None:
    now = 1_700_000_000_000 * 1_000_000 + 7 * NS
    assert waited_ns("1700000000000-3", now) == 7 * NS
    assert waited_ns("0-42", now) == 0  # the in-process bus: no insertion time
