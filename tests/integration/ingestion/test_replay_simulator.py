"""Replay of real DBN samples and the simulator, end to end into PostgreSQL (and the bus)."""

from __future__ import annotations

import datetime as dt
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import asyncpg
import databento as db
import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest

from aiots.core import conventions as cv
from aiots.services.bus.in_process import InProcessBus
from aiots.services.cache.backends import MemoryBackend
from aiots.services.cache.backends.base import Keyspace
from aiots.services.cache.prices import PriceBook
from aiots.services.common.settings import Settings
from aiots.services.ingestion.manager import IngestionManager
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.replay import replay_files
from aiots.services.ingestion.sources.simulator import SimulatorSource, seed_history
from aiots.services.storage import queries
from aiots.services.storage.writer import Writer

warnings.filterwarnings("ignore", module="databento")
DP = "dbn/databento-python"


async def test_replay_real_samples_twice_stores_once(
    shared_data: Path, make_database: Callable[..., str], tmp_path: Path
) -> None:
    # Its own database: it counts every NVDA trade/bar and AAPL option quote, which other areas' tests
    # also write into the shared session database.
    pg_dsn = make_database(migrated=True)
    files = [shared_data / f"{DP}/XNAS.ITCH/test_data.{s}.dbn.zst" for s in ("trades", "tbbo", "ohlcv-1m")]
    files.append(shared_data / f"{DP}/OPRA.PILLAR/test_data.cbbo-1s.dbn.zst")
    w = Writer(pg_dsn, spill_dir=tmp_path / "spill", flush_interval_s=0.01)
    await w.start()
    bus = InProcessBus()
    p = Pipeline(writer=w, bus=bus, source=3, build_bars=False)
    r1 = await replay_files(files, p)
    r2 = await replay_files(files, p, speed=1000.0)  # paced path, same records again
    await w.close()
    assert r1.records == r2.records > 0
    oracle = db.DBNStore.from_file(files[0]).to_df()
    got = await queries.get_trades(
        pg_dsn_pool := await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2), "NVDA", limit=100
    )
    # trades file + tbbo (trades too) -> union by natural key
    tbbo = db.DBNStore.from_file(files[1]).to_df()
    keys = {(int(t.value), int(s)) for t, s in zip(oracle["ts_event"], oracle["sequence"], strict=True)}
    keys |= {(int(t.value), int(s)) for t, s in zip(tbbo["ts_event"], tbbo["sequence"], strict=True)}
    assert len(got) == len(keys)
    bars = await queries.get_bars(pg_dsn_pool, "NVDA", "1m")
    m = db.DBNStore.from_file(files[2]).to_df()
    np.testing.assert_allclose(bars.close, m["close"].to_numpy(), atol=1e-9)
    chain_rows = await pg_dsn_pool.fetchval("SELECT count(*) FROM option_quotes WHERE underlying = 'AAPL'")
    assert chain_rows == len(db.DBNStore.from_file(files[3]).to_df())
    await pg_dsn_pool.close()
    assert p.published > 0


async def test_malformed_and_truncated_dbn_are_quarantined(shared_data: Path, pg_dsn: str, tmp_path: Path) -> None:
    good = (shared_data / "dbn/dbn-repo/test_data.trades.dbn").read_bytes()
    trunc = tmp_path / "trunc.dbn"
    trunc.write_bytes(good[:-20])
    junk = tmp_path / "junk.dbn"
    junk.write_bytes(b"DBN\x03" + b"\xff" * 300)
    w = Writer(pg_dsn, spill_dir=tmp_path / "spill", flush_interval_s=0.01)
    await w.start()
    p = Pipeline(writer=w, source=3, build_bars=False)
    res = await replay_files([junk, trunc, shared_data / "dbn/dbn-repo/test_data.trades.dbn"], p)
    await w.close()
    assert res.quarantined >= 2 and res.files == 3
    c = await asyncpg.connect(pg_dsn)
    try:
        assert await c.fetchval("SELECT count(*) FROM quarantine") >= 2
        assert await c.fetchval("SELECT count(*) FROM trades WHERE symbol = 'ESH1'") == 2  # pipeline went on
    finally:
        await c.close()


async def test_simulator_history_and_live_ticks(make_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dsn = make_database(True)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
    w = Writer(dsn, spill_dir=tmp_path / "spill", flush_interval_s=0.02)
    await w.start()
    syms = ["AAPL", "SPY"]
    # a fixed regular-hours start (wall-clock independent): Tuesday 2026-03-03 10:00 ET
    start = cv.ny_ns(dt.date(2026, 3, 3), dt.time(10, 0))
    src = SimulatorSource(Pipeline(writer=w, bus=InProcessBus(), source=4), syms, seed=11, start_ns=start)
    t0 = time.monotonic()
    assert await seed_history(pool, w, src.sim, sessions=30, seed=11)
    seeded_s = time.monotonic() - t0
    assert not await seed_history(pool, w, src.sim, sessions=30, seed=11)  # once per database
    await src.setup()
    await src.run_steps(65)
    await w.close()
    assert seeded_s < 30
    d = await queries.get_bars(pool, "AAPL", "1d", limit=1000)
    assert (
        len(d) >= 250 and np.all(d.high >= np.maximum(d.open, d.close)) and np.all(d.low <= np.minimum(d.open, d.close))
    )
    m = await queries.get_bars(pool, "AAPL", "1m", limit=100_000)
    assert len(m) >= 30 * 390
    h = await queries.get_bars(pool, "AAPL", "1h", limit=10)
    assert len(h) == 10
    iv = await queries.atm_iv_history(pool, "SPY")
    assert len(iv) == 252 and np.all((iv.iv > 0.03) & (iv.iv < 1.5))
    chain = await queries.latest_option_chain(pool, "AAPL")
    assert len(chain) > 100
    # asked on Saturday 2026-03-07, the chain comes from the last quoted session and says so
    saturday = cv.ny_ns(dt.date(2026, 3, 7), dt.time(12, 0))
    closed = await queries.latest_option_chain(pool, "AAPL", now_ns=saturday)
    assert closed.session == dt.date(2026, 3, 3) and closed.market_closed and len(closed) == len(chain)
    live = await queries.latest_option_chain(pool, "AAPL", now_ns=start + 3_600 * cv.NS_PER_S)
    assert live.session == dt.date(2026, 3, 3) and not live.market_closed
    # the listed expiries are NYSE sessions on the weekly/monthly schedule (exchange-calendars)
    xnys = xcals.get_calendar("XNYS", start="2024-01-01", end="2026-12-31")
    for e in {d.astype(object) for d in chain.expiry}:
        assert xnys.is_session(pd.Timestamp(e)) and cv.is_weekly_expiry(e)
    # OI is stamped at the previous session's close: 2026-03-02
    assert {d.astype(object) for d in chain.oi_as_of} == {dt.date(2026, 3, 2)}
    # daily bars only on sessions; 1-minute bars only in regular hours
    d_days = [cv.ny_date(int(t) + 12 * cv.NS_PER_HOUR) for t in d.ts]
    assert len(d_days) >= 250 and all(xnys.is_session(pd.Timestamp(x)) for x in d_days)
    assert all(cv.calendar().is_regular_hours(int(t)) for t in m.ts)
    quoted = ~np.isnan(chain.bid)
    assert quoted.mean() > 0.9 and np.all(chain.ask[quoted] >= chain.bid[quoted])
    assert np.all(chain.open_interest > 0)
    calls = chain.right == "C"
    # call prices fall with strike within an expiry (no-arbitrage monotonicity of the simulated chain)
    e0 = chain.expiry == chain.expiry[0]
    mid = (chain.bid + chain.ask) / 2
    assert np.all(np.diff(mid[calls & e0]) <= 1e-9)
    assert sorted(await queries.known_symbols(pool)) == syms
    # a live collection starting Tuesday 2026-03-03 gets Monday's close from the stored bars
    book = PriceBook(MemoryBackend(1 << 20), None, keyspace=Keyspace("t"), channel="p", tracked=syms)
    settings = Settings(database_url=dsn, symbols=syms, ingestion={"spill_dir": tmp_path / "spill2"})
    mgr = IngestionManager(settings, pool, dsn, prices=book)
    assert await mgr.seed_prev_closes(syms, now_ns=start) == 2
    monday = cv.datetime_to_ns(dt.datetime(2026, 3, 2, tzinfo=cv.UTC))
    assert (await book.get("AAPL")).prev_close == pytest.approx(float(d.close[d.ts == monday][0]), abs=1e-9)
    assert (await queries.get_bars(pool, "AAPL", "1s", limit=100)).volume.sum() > 0  # built from trades
    await pool.close()
