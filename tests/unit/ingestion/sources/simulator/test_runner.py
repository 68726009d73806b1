"""The simulator source feeds the PriceBook (``prev_close`` is the previous session's close) and,
lockstep, lets its consumers decide each bar before later quotes exist."""

from __future__ import annotations

import asyncio
import datetime as dt

import exchange_calendars as xcals
import pandas as pd
import pytest

from aiots.core import conventions as cv
from aiots.services.bus.consume import handle_each
from aiots.services.bus.in_process import InProcessBus
from aiots.services.cache.backends import MemoryBackend
from aiots.services.cache.backends.base import Keyspace
from aiots.services.cache.prices import PriceBook
from aiots.services.common.settings import RedisSettings
from aiots.services.common.topics import BARS_1M, OPTION_QUOTES
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.replay import bus_settle
from aiots.services.ingestion.sources.simulator import SimulatorSource, history
from aiots.v1 import events_pb2

XNYS = xcals.get_calendar("XNYS", start="2025-01-01", end="2027-12-31")


async def test_prev_close_across_sessions() -> None:
    book = PriceBook(MemoryBackend(1 << 22), None, keyspace=Keyspace("t"), channel="p", tracked=["SPY"])
    start = cv.ny_ns(dt.date(2025, 11, 26), dt.time(15, 0))
    src = SimulatorSource(Pipeline(prices=book, build_bars=False), ["SPY"], seed=2, start_ns=start, tick_s=300.0)
    await src.setup()
    await src.run_steps(1)
    snap = await book.get("SPY")
    assert snap.prev_close == pytest.approx(history.daily_path(2, "SPY", dt.date(2025, 11, 26)).closes[-1], abs=0.01)
    # run to Friday 2025-11-28 (after Thanksgiving): prev_close = the last price before Wednesday's close
    last_before_close = 0.0
    close_wed = XNYS.schedule.loc[pd.Timestamp("2025-11-26"), "close"].value
    while src.sim.now_ns < cv.ny_ns(dt.date(2025, 11, 28), dt.time(10, 0)):
        if src.sim.now_ns <= close_wed:
            last_before_close = src.sim.state["SPY"].price
        await src.run_steps(1)
    snap = await book.get("SPY")
    assert cv.ny_date(snap.ts_ns) == dt.date(2025, 11, 28)
    assert snap.prev_close == pytest.approx(last_before_close, abs=1e-9)
    assert snap.change == pytest.approx(snap.last - last_before_close)


async def _newest_quote_seen_per_bar(lockstep: bool) -> list[tuple[int, int]]:
    """Run the simulator into an in-process bus whose bar consumer decides slowly (as analytics and
    the signal engine do at x60 on a loaded machine); per bar: (its close, the newest option quote
    the consumers had seen when the bar was decided)."""
    bus = InProcessBus(RedisSettings(namespace="u", read_batch=100))
    src = SimulatorSource(
        Pipeline(bus=bus), ["SPY"], seed=7, session=dt.date(2026, 12, 1), settle=bus_settle(bus) if lockstep else None
    )
    newest = 0
    decided: list[tuple[int, int]] = []

    async def on_quote(payload: bytes) -> None:
        nonlocal newest
        newest = max(newest, events_pb2.OptionQuoteEvent.FromString(payload).ts_event)

    async def on_bar(payload: bytes) -> None:
        ev = events_pb2.BarEvent.FromString(payload)
        await asyncio.sleep(0.02)  # the decision takes a while
        decided.append((ev.ts_event + cv.NS_PER_MIN, newest))

    quotes = bus.consume(OPTION_QUOTES, ["SPY"], group="q", consumer="c")
    bars = bus.consume(BARS_1M, ["SPY"], group="b", consumer="c")
    tasks = [
        asyncio.create_task(handle_each(bus, quotes, "q", on_quote, "test")),
        asyncio.create_task(handle_each(bus, bars, "b", on_bar, "test")),
    ]
    await asyncio.sleep(0)
    await src.setup()
    await src.run_steps(4 * 60)
    await asyncio.sleep(0.1)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await bus.close()
    return decided


async def test_lockstep_decides_each_bar_on_the_quotes_known_at_its_close() -> None:
    """With ``settle`` every bar is decided before a quote from after its close exists (what the
    harness and the backtest feed the engine); without it a slow consumer sees later quotes."""
    decided = await _newest_quote_seen_per_bar(lockstep=True)
    assert len(decided) >= 3
    assert all(0 < seen <= close for close, seen in decided), decided
    paced = await _newest_quote_seen_per_bar(lockstep=False)
    assert any(seen > close for close, seen in paced), paced  # the control: the defect lockstep removes
