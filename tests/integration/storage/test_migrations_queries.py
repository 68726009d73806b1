"""Migrations apply idempotently; the query API answers with rolled-up bars that match pandas."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import asyncpg
import numpy as np
import pandas as pd
import pytest

from aiots.services.storage import queries
from aiots.services.storage.migrate import (
    PARTITIONED_TABLES,
    ensure_partitions,
    load_migrations,
    migrate,
    recorded_engine,
    status,
)

NS = 1_000_000_000


async def test_migrate_is_idempotent_and_status(make_database: Callable[..., str]) -> None:
    dsn = make_database(False)
    conn = await asyncpg.connect(dsn)
    try:
        before = await status(conn)
        assert all(s.applied_at is None for s in before)
        assert await recorded_engine(conn) == "-"  # nothing recorded before the first migration
        first = await migrate(conn, timescale="off")
        assert await recorded_engine(conn) == "plain"
        assert first == [m.version for m in load_migrations()]
        assert await migrate(conn, timescale="off") == []
        after = await status(conn)
        assert all(s.applied_at is not None and s.checksum_ok for s in after)
        # plain engine: tables are range-partitioned, with today's partition created ahead
        for t in PARTITIONED_TABLES:
            assert (
                await conn.fetchval("SELECT count(*) FROM pg_partitioned_table WHERE partrelid = $1::regclass", t) == 1
            )
        today = dt.datetime.now(dt.UTC).date()
        assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"trades_p{today:%Y%m%d}")
        # concurrent-safe and idempotent partition creation
        assert await ensure_partitions(conn, ["trades"], today, today) == 0
    finally:
        await conn.close()


async def test_timescale_branch(pg_server_dsn: str, make_database: Callable[..., str]) -> None:
    conn = await asyncpg.connect(pg_server_dsn)
    try:
        avail = await conn.fetchval("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'")
    finally:
        await conn.close()
    if not avail:
        pytest.skip("TimescaleDB extension not installed on this PostgreSQL (plain partitioning is tested instead)")
    dsn = make_database(False)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, timescale="on")
        n = await conn.fetchval("SELECT count(*) FROM timescaledb_information.hypertables")
        assert n == len(PARTITIONED_TABLES)
        assert await conn.fetchval("SELECT count(*) FROM timescaledb_information.continuous_aggregates") == 3
    finally:
        await conn.close()


def _minute_bars(symbol: str, day: dt.date, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(f"{day} 09:30", tz="America/New_York").tz_convert("UTC")
    idx = pd.date_range(start, periods=n, freq="1min")
    close = 100 + np.cumsum(rng.normal(0, 0.2, n))
    open_ = close + rng.normal(0, 0.05, n)
    high = np.maximum(open_, close) + rng.random(n) * 0.1
    low = np.minimum(open_, close) - rng.random(n) * 0.1
    vol = rng.integers(100, 10_000, n).astype(float)
    vwap = (high + low + close) / 3
    return pd.DataFrame(
        {
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": vol,
            "vwap": vwap,
            "trade_count": rng.integers(1, 50, n),
        },
        index=idx,
    )


async def test_get_bars_rollups_match_pandas_resample(pg_pool: asyncpg.Pool) -> None:
    sym = "QRYA"
    day = dt.date(2024, 3, 5)
    df = _minute_bars(sym, day, 390, 1)
    ts = (df.index.as_unit("ns").asi8).astype(np.int64)
    await ensure_partitions(pg_pool, ["bars_1m"], day, day)
    await pg_pool.copy_records_to_table(
        "bars_1m",
        records=[
            (sym, int(t), pd.Timestamp(t, tz="UTC").to_pydatetime(), *row)
            for t, row in zip(
                ts, df[["open", "high", "low", "close", "volume", "vwap"]].itertuples(index=False), strict=True
            )
        ],
        columns=["symbol", "ts_event", "ts", "open", "high", "low", "close", "volume", "vwap"],
    )
    got1 = await queries.get_bars(pg_pool, sym, "1m")
    np.testing.assert_array_equal(got1.ts, ts)
    np.testing.assert_allclose(got1.close, df["close"].to_numpy())
    for interval, rule in (("5m", "5min"), ("15m", "15min"), ("1h", "1h")):
        exp = (
            df.resample(rule, origin="epoch")
            .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
            .dropna()
        )
        got = await queries.get_bars(pg_pool, sym, interval)
        assert len(got) == len(exp), interval
        np.testing.assert_array_equal(got.ts, exp.index.as_unit("ns").asi8)
        for col in ("open", "high", "low", "close", "volume"):
            np.testing.assert_allclose(getattr(got, col), exp[col].to_numpy(), err_msg=f"{interval} {col}")
    # limit keeps the latest bars; start bound is inclusive
    last3 = await queries.get_bars(pg_pool, sym, "5m", limit=3)
    got5 = await queries.get_bars(pg_pool, sym, "5m")
    np.testing.assert_array_equal(last3.ts, got5.ts[-3:])
    win = await queries.get_bars(pg_pool, sym, "1m", start_ns=int(ts[10]), end_ns=int(ts[20]))
    np.testing.assert_array_equal(win.ts, ts[10:20])
    with pytest.raises(ValueError, match="interval"):
        await queries.get_bars(pg_pool, sym, "7m")


async def test_chain_iv_and_symbols(pg_pool: asyncpg.Pool) -> None:
    und = "QRYB"
    day = dt.date(2024, 3, 6)
    t0 = int(pd.Timestamp(f"{day} 10:00", tz="America/New_York").value)
    await ensure_partitions(pg_pool, ["option_quotes", "trades"], day, day)
    await pg_pool.execute("INSERT INTO instruments (symbol, kind, underlying) VALUES ($1, 1, $1)", und)
    occs = []
    for k, right in ((100.0, "C"), (100.0, "P"), (105.0, "C")):
        occ = f"{und:<6}240315{right}{int(k * 1000):08d}"
        occs.append(occ)
        await pg_pool.execute(
            """INSERT INTO instruments (symbol, kind, underlying, strike, expiry, option_right, multiplier)
               VALUES ($1, 2, $2, $3, $4, $5, 100)""",
            occ,
            und,
            k,
            dt.date(2024, 3, 15),
            right,
        )
    expired = f"{und:<6}240301C00100000"
    await pg_pool.execute(
        """INSERT INTO instruments (symbol, kind, underlying, strike, expiry, option_right)
                             VALUES ($1, 2, $2, 100, '2024-03-01', 'C')""",
        expired,
        und,
    )
    for i, occ in enumerate(occs[:2]):
        for j in range(2):
            await pg_pool.execute(
                """INSERT INTO option_quotes (symbol, underlying, ts_event, ts, bid, ask, underlying_price)
                   VALUES ($1, $2, $3, to_timestamp($3::bigint / 1e9), $4, $5, 101)""",
                occ,
                und,
                t0 + j * NS,
                2.0 + i + j,
                2.2 + i + j,
            )
    await pg_pool.execute(
        """INSERT INTO trades (symbol, ts_event, ts, price, size) VALUES
                 ($1, $2, to_timestamp($2::bigint / 1e9), 2.1, 5),
                 ($1, $3, to_timestamp($3::bigint / 1e9), 2.15, 7)""",
        occs[0],
        t0,
        t0 + 5 * NS,
    )
    await pg_pool.execute(
        """INSERT INTO option_stats (symbol, underlying, as_of, open_interest, ts_event)
                             VALUES ($1, $2, '2024-03-05', 1000, 0), ($1, $2, '2024-03-06', 1200, 0)""",
        occs[0],
        und,
    )
    chain = await queries.latest_option_chain(pg_pool, und)
    assert chain.occ == occs  # sorted by expiry, strike, right; expired contract left out
    np.testing.assert_allclose(chain.bid[:2], [3.0, 4.0])
    assert np.isnan(chain.bid[2])
    np.testing.assert_allclose(chain.last[:1], [2.15])
    np.testing.assert_allclose(chain.volume, [12.0, 0.0, 0.0])
    assert chain.open_interest[0] == 1200 and chain.oi_as_of[0] == np.datetime64("2024-03-06")
    assert np.isnat(chain.oi_as_of[1])
    assert list(chain.right) == ["C", "P", "C"]
    only = await queries.latest_option_chain(pg_pool, und, "2024-03-01")
    assert only.occ == [expired]

    for i in range(5):
        await pg_pool.execute(
            "INSERT INTO atm_iv_history VALUES ($1, $2, $3, 100)",
            und,
            dt.date(2024, 1, 1) + dt.timedelta(days=i),
            0.2 + i / 100,
        )
    h = await queries.atm_iv_history(pg_pool, und, days=3)
    np.testing.assert_allclose(h.iv, [0.22, 0.23, 0.24])
    assert h.dates[0] == np.datetime64("2024-01-03")
    assert und in await queries.known_symbols(pg_pool)
