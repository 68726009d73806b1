"""The writer stores exactly what was sent: idempotent on replay, nothing lost when PostgreSQL
terminates its connections mid-stream or refuses connections for a while (spill + write-back)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import asyncpg
import numpy as np

from aiots.services.ingestion import normalize as nz
from aiots.services.storage.writer import SpillStore, Writer

T0 = 1_709_906_400_000_000_000  # 2024-03-08 14:00 UTC


def trade_batch(symbol: str, start: int, n: int, day_offset: int = 0) -> nz.Batch:
    """n trades with distinct sequence numbers start..start+n-1."""
    seq = np.arange(start, start + n, dtype=np.int64)
    b = nz.Batch()
    b.add(
        "trades",
        {
            "sym": np.full(n, nz.SYMBOLS.code(symbol), np.int32),
            "ts_event": T0 + day_offset * 86_400 * 10**9 + seq * 1000,
            "price": 100 + (seq % 100) / 100.0,
            "size": np.ones(n),
            "side": np.full(n, ord("B"), np.int16),
            "publisher_id": np.ones(n, np.int32),
            "sequence": seq,
            "ts_recv": np.zeros(n, np.int64),
            "source": np.full(n, 3, np.int16),
        },
    )
    return b


async def _count(dsn: str, symbol: str) -> tuple[int, int]:
    c = await asyncpg.connect(dsn)
    try:
        r = await c.fetchrow("SELECT count(*), count(DISTINCT sequence) FROM trades WHERE symbol = $1", symbol)
        return int(r[0]), int(r[1])
    finally:
        await c.close()


async def test_write_and_replay_is_idempotent(pg_dsn: str, tmp_path: Path) -> None:
    w = Writer(pg_dsn, spill_dir=tmp_path / "spill", batch_records=1000, flush_interval_s=0.05)
    await w.start()
    for i in range(5):
        await w.put(trade_batch("WRTA", i * 1000, 1000, day_offset=i % 2))
    await w.flush()
    for i in range(5):  # the same records again: nothing inserted twice
        await w.put(trade_batch("WRTA", i * 1000, 1000, day_offset=i % 2))
    await w.close()
    assert await _count(pg_dsn, "WRTA") == (5000, 5000)
    assert w.stats.written["trades"] == 5000 and w.stats.received["trades"] == 10_000
    c = await asyncpg.connect(pg_dsn)
    try:
        kind = await c.fetchval("SELECT kind FROM instruments WHERE symbol = 'WRTA'")
        ts_ok = await c.fetchval(
            "SELECT bool_and(abs(extract(epoch FROM ts) * 1e9 - ts_event) < 1000) FROM trades WHERE symbol = 'WRTA'"
        )
    finally:
        await c.close()
    assert kind == nz.KIND_STOCK and ts_ok


async def test_terminated_connections_mid_stream_lose_nothing(pg_dsn: str, tmp_path: Path) -> None:
    w = Writer(
        pg_dsn,
        spill_dir=tmp_path / "spill",
        batch_records=2000,
        flush_interval_s=0.01,
        application_name="aiots-writer-kill",
        max_backoff_s=0.2,
    )
    await w.start()
    admin = await asyncpg.connect(pg_dsn)
    killed = 0

    async def killer() -> None:
        nonlocal killed
        for _ in range(6):
            await asyncio.sleep(0.15)
            killed += await admin.fetchval(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'aiots-writer-kill') x"
            )

    k = asyncio.create_task(killer())
    n_batches = 0
    while not k.done():
        await w.put(trade_batch("WRTB", n_batches * 500, 500))
        n_batches += 1
        await asyncio.sleep(0.005)
    await k
    await admin.close()
    assert await w.drained(30)
    await w.close()
    assert killed >= 1 and w.stats.reconnects >= 2
    assert await _count(pg_dsn, "WRTB") == (n_batches * 500, n_batches * 500)


async def test_refused_connections_spill_then_write_back(
    make_database: Callable[..., str], tmp_path: Path, pg_server_dsn: str
) -> None:
    dsn = make_database(True)
    db = dsn.rsplit("/", 1)[1]
    w = Writer(
        dsn,
        spill_dir=tmp_path / "spill",
        batch_records=1000,
        flush_interval_s=0.01,
        max_backoff_s=0.2,
        connect_timeout_s=1.0,
    )
    await w.start()
    await w.put(trade_batch("WRTC", 0, 1000))
    await w.flush()
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db)
        for i in range(1, 11):
            await w.put(trade_batch("WRTC", i * 1000, 1000))
        await w.flush()
        assert w.stats.spilled_records > 0 and SpillStore(tmp_path / "spill").segments()
        await asyncio.sleep(0.5)  # still refused: stays on disk
        assert w.pending_records > 0
    finally:
        await admin.execute(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true')
        await admin.close()
    assert await w.drained(30)
    await w.close()
    assert await _count(dsn, "WRTC") == (11_000, 11_000)
    assert not SpillStore(tmp_path / "spill").segments()


async def test_spill_left_by_previous_process_is_written_at_start(pg_dsn: str, tmp_path: Path) -> None:
    store = SpillStore(tmp_path / "spill")
    store.append(trade_batch("WRTD", 0, 300))
    store.append(trade_batch("WRTD", 300, 300))
    w = Writer(pg_dsn, spill_dir=tmp_path / "spill", flush_interval_s=0.01)
    await w.start()
    assert await w.drained(10)
    await w.close()
    assert await _count(pg_dsn, "WRTD") == (600, 600)


async def test_direct_copy_and_dedup_path_store_identical_rows(pg_dsn: str, tmp_path: Path) -> None:
    """The optimistic binary COPY into the table (streamed in chunks of 256 rows: 700 rows make three)
    and the staging + ON CONFLICT path agree column by column."""
    rows = {}
    for sym, optimistic in (("WRTE", True), ("WRTF", False)):
        w = Writer(pg_dsn, spill_dir=tmp_path / sym, flush_interval_s=0.01, optimistic=optimistic, copy_chunk_rows=256)
        await w.start()
        b = trade_batch(sym, 0, 700)
        q = nz.Batch()
        q.add(
            "quotes",
            {
                "sym": np.full(3, nz.SYMBOLS.code(sym), np.int32),
                "ts_event": T0 + np.arange(3),
                "bid": np.array([1.0, np.nan, 2.0]),
                "ask": np.array([1.1, 2.0, 2.1]),
                "bid_size": np.ones(3),
                "ask_size": np.ones(3),
                "publisher_id": np.ones(3, np.int32),
                "sequence": np.arange(3, dtype=np.int64),
                "source": np.full(3, 1, np.int16),
            },
        )
        b.extend(q)
        await w.put(b)
        await w.close()
        assert w.stats.dedup_batches == 0
        c = await asyncpg.connect(pg_dsn)
        try:
            rows[sym] = [
                tuple(r)
                for r in await c.fetch(
                    "SELECT ts_event, ts, price, size, side, publisher_id, sequence, ts_recv, source FROM trades "
                    "WHERE symbol = $1 ORDER BY ts_event",
                    sym,
                )
            ]
            rows[sym + "q"] = [
                tuple(r)
                for r in await c.fetch("SELECT ts_event, bid, ask FROM quotes WHERE symbol = $1 ORDER BY ts_event", sym)
            ]
        finally:
            await c.close()
    assert rows["WRTE"] == rows["WRTF"] and len(rows["WRTE"]) == 700
    assert rows["WRTEq"] == rows["WRTFq"] and rows["WRTEq"][1][1] is None  # NaN bid stored as NULL
