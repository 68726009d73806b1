"""The writer's take wakes when the queue reaches ``batch_records`` (puts below it no longer wake
it: a live feed's ~1,000 small batches a second each did), and when a caller flushes (it waited for
the flush interval before)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiots.services.storage.writer import Writer
from tests.integration.storage.test_writer import _count, trade_batch


async def test_take_wakes_at_batch_records_and_on_flush(pg_dsn: str, tmp_path: Path) -> None:
    w = Writer(pg_dsn, spill_dir=tmp_path, batch_records=100, flush_interval_s=30.0)
    await w.start()
    try:
        for i in range(9):  # 90 records: below batch_records, nothing is due before the 30-s interval
            await w.put(trade_batch("WKUP", i * 10, 10))
        await asyncio.sleep(0.3)
        assert w.stats.received["trades"] == 0
        await w.put(trade_batch("WKUP", 90, 10))  # 100: the take is woken now
        t = time.monotonic()
        while w.stats.received["trades"] < 100 and time.monotonic() - t < 10:
            await asyncio.sleep(0.01)
        assert w.stats.received["trades"] == 100
        assert await _count(pg_dsn, "WKUP") == (100, 100)
        # 10 records, far below batch_records: flush() takes them now, not after the 30-s interval
        await w.put(trade_batch("WKUP", 100, 10))
        assert await w.flush(timeout=10.0)
        assert await _count(pg_dsn, "WKUP") == (110, 110)
    finally:
        await w.close()
