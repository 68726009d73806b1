"""Analytics integration fixtures: a migrated test database filled through the ingestion path
(normalised ``Batch``es into the real storage ``Writer``: binary COPY, idempotent inserts), and a
started AnalyticsService on port 0 with typed stubs.

What is written: daily bars (AAPL), one-minute bars (NVDA), a real end-of-day option chain (A):
option definitions (instrument rows), quotes (option_quotes), open interest (option_stats) and
trades (volume/last), and a daily ATM-IV history (atm_iv_history).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import grpc
import numpy as np
import pytest

from aiots.services.analytics.app import AnalyticsApp
from aiots.services.cache.backends.memory import MemoryBackend
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.ingestion.normalize import KIND_OPTION, SYMBOLS, TABLES, Batch
from aiots.services.storage.writer import Writer
from aiots.v1 import analytics_pb2_grpc

NY = ZoneInfo("America/New_York")
NS = 1_000_000_000
SOURCE_TEST = 9
_seeded: set[str] = set()
_lock = asyncio.Lock()


def ny_ns(day: str, hour: int = 0, minute: int = 0) -> int:
    d = dt.date.fromisoformat(day)
    return int(dt.datetime(d.year, d.month, d.day, hour, minute, tzinfo=NY).timestamp()) * NS


def utc_day_ns(day: str) -> int:
    d = dt.date.fromisoformat(day)
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) * NS


def _columns(table: str, n: int, **values: Any) -> dict[str, np.ndarray]:
    """Columns of ``table`` (normalize.TABLES dtypes); unspecified columns are 0 (NaN for prices)."""
    out: dict[str, np.ndarray] = {}
    for name, dtype in TABLES[table]:
        default = np.nan if dtype == "f8" else 0
        out[name] = np.asarray(values.get(name, np.full(n, default)), dtype=dtype).reshape(n)
    return out


def bars_batch(table: str, symbol: str, ts: Sequence[int], o: Any, h: Any, lo: Any, c: Any, v: Any) -> Batch:
    """A normalised batch of bars of one symbol (``table``: bars_1m or bars_1d)."""
    n = len(ts)
    b = Batch()
    b.add(table, _columns(table, n, sym=np.full(n, SYMBOLS.code(symbol)), ts_event=ts, open=o, high=h, low=lo,
                          close=c, volume=v, vwap=np.full(n, np.nan), trade_count=np.zeros(n),
                          source=np.full(n, SOURCE_TEST)))  # fmt: skip
    return b


async def write(writer: Writer, *batches: Batch) -> None:
    """Through the writer into PostgreSQL; fails if anything was spilled instead of committed."""
    for b in batches:
        await writer.put(b)
    assert await writer.flush(30.0)
    assert writer.stats.spilled_records == 0 and writer.stats.errors == 0


async def seed_daily(writer: Writer, symbol: str, path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    cols = {k: [float(r[k]) for r in rows] for k in ("open", "high", "low", "close", "volume")}
    ts = [utc_day_ns(r["date"]) for r in rows]
    await write(writer, bars_batch("bars_1d", symbol, ts, cols["open"], cols["high"], cols["low"], cols["close"],
                                   cols["volume"]))  # fmt: skip
    return rows


async def seed_minute(writer: Writer, symbol: str, path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    cols = {k: [float(r[k]) for r in rows] for k in ("open", "high", "low", "close", "volume")}
    ts = [int(dt.datetime.fromisoformat(r["datetime"]).replace(tzinfo=NY).timestamp()) * NS for r in rows]
    await write(writer, bars_batch("bars_1m", symbol, ts, cols["open"], cols["high"], cols["low"], cols["close"],
                                   cols["volume"]))  # fmt: skip
    return rows


def chain_batch(underlying: str, quote_day: str, spot: float, rows: list[dict[str, Any]]) -> Batch:
    """A chain snapshot as the ingestion path stores it: option definitions, an underlying 1m bar
    (the spot), quotes at 15:59 New York, open interest as of the previous session, and one trade
    per contract with volume."""
    q_ns = ny_ns(quote_day, 15, 59)
    oi_day = dt.date.fromisoformat(quote_day) - dt.timedelta(days=1)
    n = len(rows)
    b = bars_batch("bars_1m", underlying, [q_ns - 60 * NS], [spot], [spot], [spot], [spot], [1.0])
    b.rows["instruments"].extend(
        (r["occ"], KIND_OPTION, underlying, r["strike"], dt.date.fromisoformat(r["expiry"]), r["right"], 100, "TEST")
        for r in rows
    )
    codes = np.array([SYMBOLS.code(r["occ"]) for r in rows])
    b.add("option_quotes", _columns(
        "option_quotes", n, sym=codes, und=np.full(n, SYMBOLS.code(underlying)), ts_event=np.full(n, q_ns),
        bid=[r["bid"] for r in rows], ask=[r["ask"] for r in rows], underlying_price=np.full(n, spot),
        sequence=np.arange(n), source=np.full(n, SOURCE_TEST),
    ))  # fmt: skip
    b.rows["option_stats"].extend((r["occ"], underlying, oi_day, r["oi"], None, None, q_ns - 86_400 * NS) for r in rows)
    traded = [i for i, r in enumerate(rows) if r["volume"] > 0]
    if traded:
        m = len(traded)
        b.add("trades", _columns(
            "trades", m, sym=codes[traded], ts_event=np.full(m, q_ns - NS),
            price=[rows[i]["last"] if rows[i]["last"] > 0 else rows[i]["ask"] for i in traded],
            size=[rows[i]["volume"] for i in traded], side=np.full(m, ord("N")), sequence=np.arange(m),
            source=np.full(m, SOURCE_TEST),
        ))  # fmt: skip
    return b


async def seed_chain(writer: Writer, underlying: str, quote_day: str, spot: float, rows: list[dict[str, Any]]) -> None:
    """rows: dicts with occ, expiry, right, strike, bid, ask, last, volume, oi."""
    await write(writer, chain_batch(underlying, quote_day, spot, rows))


def occ(root: str, expiry: str, right: str, strike: float) -> str:
    d = dt.date.fromisoformat(expiry)
    return f"{root:<6}{d:%y%m%d}{right}{round(strike * 1000):08d}"


def chain_rows_from_csv(path: Path, quote_date: str) -> tuple[float, list[dict[str, Any]]]:
    with path.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["quote_date"] == quote_date]
    spot = float(rows[0]["underlying_price"])
    out = [
        {
            "occ": occ(r["underlying"], r["expiration"], r["option_type"], float(r["strike"])),
            "expiry": r["expiration"],
            "right": r["option_type"],
            "strike": float(r["strike"]),
            "bid": float(r["bid"]),
            "ask": float(r["ask"]),
            "last": float(r["last"] or 0),
            "volume": float(r["volume"] or 0),
            "oi": float(r["open_interest"] or 0),
        }
        for r in rows
    ]
    return spot, out


async def seed_all(writer: Writer, shared: Path) -> None:
    await seed_daily(writer, "AAPL", shared / "ohlcv" / "AAPL_1d_2015-02-17_2017-02-16.csv")
    await seed_minute(writer, "NVDA", shared / "ohlcv" / "NVDA_1m_2024-03-01_2024-03-14.csv")
    spot, rows = chain_rows_from_csv(shared / "options" / "A_options_eod_2016-01-05.csv", "2016-01-05")
    hist = Batch()
    hist.rows["atm_iv_history"].extend(
        ("A", dt.date(2015, 1, 1) + dt.timedelta(days=i), 0.20 + 0.001 * i, spot) for i in range(100)
    )
    await write(writer, chain_batch("A", "2016-01-05", spot, rows), hist)


@pytest.fixture
async def writer(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Writer]:
    """The ingestion path's storage writer on the test database (its own spill directory)."""
    w = Writer(pg_dsn, spill_dir=tmp_path / "spill", flush_interval_s=0.01, application_name="aiots-analytics-test")
    await w.start()
    try:
        yield w
    finally:
        await w.close()


@pytest.fixture
async def seeded_pool(pg_dsn: str, shared_data: Path, writer: Writer) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    async with _lock:
        if pg_dsn not in _seeded:
            await seed_all(writer, shared_data)
            _seeded.add(pg_dsn)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def analytics(seeded_pool: asyncpg.Pool) -> AsyncIterator[tuple[analytics_pb2_grpc.AnalyticsServiceStub, Any]]:
    settings = Settings()
    rt = Runtime(settings=settings, db=seeded_pool, cache=MemoryBackend(64 << 20))
    app = AnalyticsApp(rt, port=0, live=False)
    await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
    try:
        yield analytics_pb2_grpc.AnalyticsServiceStub(channel), app
    finally:
        await channel.close()
        await app.stop()
