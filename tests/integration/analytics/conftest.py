"""Analytics integration fixtures: a migrated test database seeded with real bars and chains, and
a started AnalyticsService on port 0 with typed stubs.

Seeding writes the same tables, columns and conventions the ingestion writer fills (bars_1d,
bars_1m, instruments, option_quotes, option_stats, trades, atm_iv_history).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import grpc
import pytest

from aiots.services.analytics.app import AnalyticsApp
from aiots.services.cache.backends.memory import MemoryBackend
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.v1 import analytics_pb2_grpc

NY = ZoneInfo("America/New_York")
NS = 1_000_000_000
_seeded: set[str] = set()
_lock = asyncio.Lock()


def ny_ns(day: str, hour: int = 0, minute: int = 0) -> int:
    d = dt.date.fromisoformat(day)
    return int(dt.datetime(d.year, d.month, d.day, hour, minute, tzinfo=NY).timestamp()) * NS


def utc_day_ns(day: str) -> int:
    d = dt.date.fromisoformat(day)
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) * NS


async def _partitions(pool: asyncpg.Pool, table: str, first: str, last: str) -> None:
    await pool.execute(
        "SELECT aiots_ensure_partitions($1, $2::date, $3::date)",
        table,
        dt.date.fromisoformat(first),
        dt.date.fromisoformat(last),
    )


async def seed_daily(pool: asyncpg.Pool, symbol: str, path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    await pool.execute(
        "INSERT INTO instruments (symbol, kind, underlying) VALUES ($1, 1, $1) ON CONFLICT DO NOTHING", symbol
    )
    recs = []
    for r in rows:
        ts = utc_day_ns(r["date"])
        recs.append(
            (symbol, ts, dt.datetime.fromtimestamp(ts / NS, dt.UTC), float(r["open"]), float(r["high"]),
             float(r["low"]), float(r["close"]), float(r["volume"]))
        )  # fmt: skip
    await pool.copy_records_to_table(
        "bars_1d", records=recs, columns=["symbol", "ts_event", "ts", "open", "high", "low", "close", "volume"]
    )
    return rows


async def seed_minute(pool: asyncpg.Pool, symbol: str, path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    days = sorted({r["datetime"][:10] for r in rows})
    await _partitions(pool, "bars_1m", days[0], (dt.date.fromisoformat(days[-1]) + dt.timedelta(days=1)).isoformat())
    await pool.execute(
        "INSERT INTO instruments (symbol, kind, underlying) VALUES ($1, 1, $1) ON CONFLICT DO NOTHING", symbol
    )
    recs = []
    for r in rows:
        local = dt.datetime.fromisoformat(r["datetime"]).replace(tzinfo=NY)
        ts = int(local.timestamp()) * NS
        recs.append(
            (symbol, ts, local.astimezone(dt.UTC), float(r["open"]), float(r["high"]), float(r["low"]),
             float(r["close"]), float(r["volume"]))
        )  # fmt: skip
    await pool.copy_records_to_table(
        "bars_1m", records=recs, columns=["symbol", "ts_event", "ts", "open", "high", "low", "close", "volume"]
    )
    return rows


async def seed_chain(
    pool: asyncpg.Pool, underlying: str, quote_day: str, spot: float, rows: list[dict[str, Any]]
) -> None:
    """rows: dicts with occ, expiry, right, strike, bid, ask, last, volume, oi."""
    q_ns = ny_ns(quote_day, 15, 59)
    oi_day = (dt.date.fromisoformat(quote_day) - dt.timedelta(days=1)).isoformat()
    await _partitions(pool, "option_quotes", quote_day, quote_day)
    await _partitions(pool, "trades", quote_day, quote_day)
    await _partitions(pool, "bars_1m", quote_day, quote_day)
    await pool.execute(
        "INSERT INTO instruments (symbol, kind, underlying) VALUES ($1, 1, $1) ON CONFLICT DO NOTHING", underlying
    )
    await pool.execute(
        "INSERT INTO bars_1m (symbol, ts_event, ts, open, high, low, close, volume) VALUES ($1,$2,$3,$4,$4,$4,$4,1)",
        underlying, q_ns - 60 * NS, dt.datetime.fromtimestamp((q_ns - 60 * NS) / NS, dt.UTC), spot,
    )  # fmt: skip
    ts = dt.datetime.fromtimestamp(q_ns / NS, dt.UTC)
    inst, quotes, stats, trades = [], [], [], []
    for i, r in enumerate(rows):
        inst.append((r["occ"], 2, underlying, r["strike"], dt.date.fromisoformat(r["expiry"]), r["right"], 100, 1))
        quotes.append((r["occ"], underlying, q_ns, ts, r["bid"], r["ask"], spot))
        stats.append((r["occ"], underlying, dt.date.fromisoformat(oi_day), r["oi"], q_ns - 86_400 * NS))
        if r["volume"] > 0:
            trades.append((r["occ"], q_ns - NS, ts, r["last"] if r["last"] > 0 else r["ask"], r["volume"], "N", 0, i))
    await pool.executemany(
        """INSERT INTO instruments (symbol, kind, underlying, strike, expiry, option_right, multiplier, exercise_style)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT DO NOTHING""",
        inst,
    )
    await pool.copy_records_to_table(
        "option_quotes", records=quotes,
        columns=["symbol", "underlying", "ts_event", "ts", "bid", "ask", "underlying_price"],
    )  # fmt: skip
    await pool.copy_records_to_table(
        "option_stats", records=stats, columns=["symbol", "underlying", "as_of", "open_interest", "ts_event"]
    )
    if trades:
        await pool.copy_records_to_table(
            "trades", records=trades,
            columns=["symbol", "ts_event", "ts", "price", "size", "side", "publisher_id", "sequence"],
        )  # fmt: skip


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


async def seed_all(pool: asyncpg.Pool, shared: Path) -> None:
    await seed_daily(pool, "AAPL", shared / "ohlcv" / "AAPL_1d_2015-02-17_2017-02-16.csv")
    await seed_minute(pool, "NVDA", shared / "ohlcv" / "NVDA_1m_2024-03-01_2024-03-14.csv")
    spot, rows = chain_rows_from_csv(shared / "options" / "A_options_eod_2016-01-05.csv", "2016-01-05")
    await seed_chain(pool, "A", "2016-01-05", spot, rows)
    await pool.executemany(
        "INSERT INTO atm_iv_history (underlying, as_of, atm_iv) VALUES ('A', $1, $2)",
        [(dt.date(2015, 1, 1) + dt.timedelta(days=i), 0.20 + 0.001 * i) for i in range(100)],
    )


@pytest.fixture
async def seeded_pool(pg_dsn: str, shared_data: Path) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    async with _lock:
        if pg_dsn not in _seeded:
            await seed_all(pool, shared_data)
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
