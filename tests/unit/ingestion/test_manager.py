"""IngestionManager.feed_status: a simulator replaying the last session (market closed) is quiet by
design, not a stale feed; a live simulated session is judged by its event times."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from aiots.core import conventions as cv
from aiots.services.common.settings import Settings
from aiots.services.ingestion.manager import IngestionManager, Job
from aiots.services.ingestion.normalize import SOURCE_SIMULATOR
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.simulator import SessionClock, SimulatorSource


async def test_feed_status_replay_is_not_stale(tmp_path: Path) -> None:
    settings = Settings(database_url="postgresql://unused/x", symbols=["AAPL"], ingestion={"spill_dir": tmp_path})
    mgr = IngestionManager(settings, None, "postgresql://unused/x")
    saturday = cv.ny_ns(dt.date(2026, 12, 5), dt.time(11, 0))
    src = SimulatorSource(Pipeline(), ["AAPL"], seed=1, start_ns=saturday)
    src.sim.clock = SessionClock(saturday)  # following the wall clock on a Saturday: replay of Friday
    task = asyncio.create_task(asyncio.sleep(0))
    mgr.jobs["j"] = Job("j", SOURCE_SIMULATOR, ["AAPL"], [], task, src)
    st = mgr.status()
    assert st.running and st.market_clock is not None and st.market_clock.mode == "replay"
    assert st.market_clock.session == dt.date(2026, 12, 4)
    assert not mgr.feed_status().running  # the freshness probe leaves it alone
    src.sim.clock = SessionClock(cv.ny_ns(dt.date(2026, 12, 4), dt.time(11, 0)))  # a live session
    assert mgr.feed_status().running
    await task
