"""The simulator source feeds the PriceBook: ``prev_close`` is the previous session's close."""

from __future__ import annotations

import datetime as dt

import exchange_calendars as xcals
import pandas as pd
import pytest

from aiots.core import conventions as cv
from aiots.services.cache.backends import MemoryBackend
from aiots.services.cache.backends.base import Keyspace
from aiots.services.cache.prices import PriceBook
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.simulator import SimulatorSource, history

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
