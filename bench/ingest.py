"""Ingestion benchmark (not a test): DBN file -> decode -> normalise -> PostgreSQL, end to end.

Compares, on the same machine and run, for N trade records (default 1,000,000, 9 symbols):

1. ours: ``replay_files`` (DBN decode to arrays, vectorised normalisation, binary COPY built in
   NumPy straight into the partitioned ``trades`` table inside a savepoint), timed until the writer
   has committed everything; then the same file again, where every batch hits duplicates and takes
   the dedup path (staging COPY + INSERT ... ON CONFLICT DO NOTHING);
2. ceiling: ``asyncpg.copy_records_to_table`` of the same rows prebuilt in memory as Python tuples
   (building them is not timed) straight into the same (emptied) table;
3. naive: ``DBNStore.to_df()`` + ``pandas.DataFrame.to_sql`` (SQLAlchemy + psycopg, method="multi")
   on a smaller N (``--naive-n``) into a plain table, scaled to records/s;
4. replay to the bus: the same file through the pipeline to the in-process bus only (no storage).

Usage: ``.venv/bin/python bench/ingest.py [--n 1000000] [--naive-n 100000]``. Needs PostgreSQL on
127.0.0.1:5432 (user postgres, trust) or ``--server DSN``; creates and drops its own database.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import databento as db
import databento_dbn as dbn
import numpy as np
import zstandard

from aiots.services.bus.in_process import InProcessBus
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.replay import replay_files
from aiots.services.storage.migrate import ensure_partitions, migrate
from aiots.services.storage.writer import Writer

warnings.filterwarnings("ignore")
NS = 1_000_000_000
SYMBOLS = ["AAPL", "GOOGL", "MSFT", "AMZN", "TSLA", "NVDA", "META", "SPY", "QQQ"]


def make_file(path: Path, n: int, seed: int = 1) -> int:
    """A zstd DBN v3 trades file with n records over one RTH session; returns the start ns."""
    rng = np.random.default_rng(seed)
    start = int(dt.datetime(2024, 6, 3, 13, 30, tzinfo=dt.UTC).timestamp()) * NS
    dtype = np.dtype(dbn.TradeMsg._dtypes)  # type: ignore[attr-defined]
    a = np.zeros(n, dtype=dtype)
    a["length"] = dtype.itemsize // 4
    a["rtype"] = 0
    a["publisher_id"] = 1
    a["instrument_id"] = rng.integers(0, len(SYMBOLS), n) + 1000
    ts = start + np.sort(rng.integers(0, 6 * 3600 * NS, n))
    a["ts_event"] = ts
    a["ts_recv"] = ts + 1000
    a["price"] = (rng.uniform(100, 500, n) * 100).astype(np.int64) * 10_000_000
    a["size"] = rng.integers(1, 500, n)
    a["action"] = b"T"
    a["side"] = rng.choice(np.array([b"A", b"B", b"N"]), n)
    a["sequence"] = np.arange(n) + 1
    d0 = dt.date(2024, 6, 3)
    maps = [
        SimpleNamespace(
            raw_symbol=s,
            intervals=[SimpleNamespace(start_date=d0, end_date=d0 + dt.timedelta(days=1), symbol=str(1000 + i))],
        )
        for i, s in enumerate(SYMBOLS)
    ]
    meta = dbn.Metadata(
        dataset="XNAS.ITCH",
        start=start,
        end=start + 6 * 3600 * NS,
        schema=dbn.Schema.TRADES,
        stype_in=dbn.SType.RAW_SYMBOL,
        stype_out=dbn.SType.INSTRUMENT_ID,
        symbols=SYMBOLS,
        partial=[],
        not_found=[],
        mappings=maps,
    )
    path.write_bytes(zstandard.ZstdCompressor(level=3).compress(bytes(meta) + a.tobytes()))
    return start


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--naive-n", type=int, default=100_000)
    ap.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    args = ap.parse_args()
    name = f"aiots_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{args.server}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"{args.server}/{name}"
    tmp = Path(tempfile.mkdtemp())
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn, timescale="off")
        f = tmp / "trades.dbn.zst"
        t = time.perf_counter()
        start = make_file(f, args.n)
        print(f"generated {args.n:,} TradeMsg ({f.stat().st_size:,} B zstd) in {time.perf_counter() - t:.2f}s")
        day = dt.datetime.fromtimestamp(start / NS, dt.UTC).date()
        await ensure_partitions(conn, ["trades"], day, day)

        # 1. ours, end to end
        w = Writer(dsn, spill_dir=tmp / "spill", queue_records=400_000, batch_records=250_000, flush_interval_s=0.05)
        await w.start()
        t = time.perf_counter()
        await replay_files([f], Pipeline(writer=w, source=3, build_bars=False, publish=False))
        await w.drained(600)
        ours_s = time.perf_counter() - t
        await w.close()
        stored = await conn.fetchval("SELECT count(*) FROM trades")
        assert stored == args.n, stored

        # 1b. the same file again: every batch hits duplicates -> staging + INSERT ON CONFLICT DO NOTHING
        w = Writer(dsn, spill_dir=tmp / "spill", queue_records=400_000, batch_records=250_000, flush_interval_s=0.05)
        await w.start()
        t = time.perf_counter()
        await replay_files([f], Pipeline(writer=w, source=3, build_bars=False, publish=False))
        await w.drained(600)
        dup_s = time.perf_counter() - t
        await w.close()
        assert await conn.fetchval("SELECT count(*) FROM trades") == args.n and w.stats.dedup_batches > 0

        # 2. ceiling: prebuilt tuples, COPY straight into the emptied table
        rows = await conn.fetch(
            "SELECT symbol, ts_event, ts, price, size, side, publisher_id, sequence, ts_recv, source FROM trades"
        )
        tuples = [tuple(r) for r in rows]
        del rows
        await conn.execute("TRUNCATE trades")
        t = time.perf_counter()
        await conn.copy_records_to_table(
            "trades",
            records=tuples,
            columns=[
                "symbol",
                "ts_event",
                "ts",
                "price",
                "size",
                "side",
                "publisher_id",
                "sequence",
                "ts_recv",
                "source",
            ],
        )
        raw_s = time.perf_counter() - t
        del tuples

        # 3. naive: to_df + to_sql on a smaller N, scaled
        import sqlalchemy

        small = tmp / "small.dbn.zst"
        make_file(small, args.naive_n, seed=2)
        eng = sqlalchemy.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
        t = time.perf_counter()
        df = db.DBNStore.from_file(small).to_df()
        df.to_sql("trades_naive", eng, if_exists="append", index=True, method="multi", chunksize=2000)
        naive_s = time.perf_counter() - t
        eng.dispose()

        # 4. replay to the bus only
        bus = InProcessBus()
        t = time.perf_counter()
        p = Pipeline(bus=bus, source=3, build_bars=False)
        await replay_files([f], p)
        bus_s = time.perf_counter() - t
        await bus.close()
        await conn.close()

        ours, raw = args.n / ours_s, args.n / raw_s
        naive, busr = args.naive_n / naive_s, args.n / bus_s
        print()
        print("| path | records | seconds | records/s | vs raw COPY |")
        print("|---|---:|---:|---:|---:|")
        print(
            f"| ours, end to end: DBN file -> decode -> normalise -> binary COPY into the table (fresh data) | {args.n:,} | {ours_s:.2f} | {ours:,.0f} | {ours / raw:.2f} |"
        )
        print(
            f"| ours, same file again (all duplicates: staging COPY + INSERT ON CONFLICT DO NOTHING) | {args.n:,} | {dup_s:.2f} | {args.n / dup_s:,.0f} | {args.n / dup_s / raw:.2f} |"
        )
        print(
            f"| asyncpg copy_records_to_table, prebuilt tuples (ceiling) | {args.n:,} | {raw_s:.2f} | {raw:,.0f} | 1.00 |"
        )
        print(
            f"| DBNStore.to_df() + DataFrame.to_sql (naive, N={args.naive_n:,}, scaled) | {args.naive_n:,} | {naive_s:.2f} | {naive:,.0f} | {naive / raw:.2f} |"
        )
        print(
            f"| DBN file -> pipeline -> in-process bus (TradeEvent protobufs) | {args.n:,} | {bus_s:.2f} | {busr:,.0f} | - |"
        )
        print()
        print(f"ours / raw COPY = {ours / raw:.2f} (target >= 0.5); ours / naive = {ours / naive:.1f}x (target >= 10x)")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
