"""`aiots up --replay FILE` replays that file: the composition root hands the feed to ingestion.

Oracle: the trades in the real DBN sample as decoded by the official ``databento`` client.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from pathlib import Path

import asyncpg
import databento as db
import pytest

from aiots.services.common.settings import Settings
from aiots.services.stack.supervisor import Feed, Supervisor

warnings.filterwarnings("ignore", module="databento")
pytestmark = pytest.mark.integration

TRADES = "dbn/databento-python/XNAS.ITCH/test_data.trades.dbn.zst"


async def test_up_with_replay_feed_stores_the_files_trades(
    shared_data: Path, make_database: Callable[..., str], tmp_path: Path
) -> None:
    dsn = make_database(migrated=True)
    file = shared_data / TRADES
    base = Settings(database_url=dsn, data_dir=tmp_path)  # type: ignore[call-arg]
    settings = base.model_copy(
        update={
            "ingestion": base.ingestion.model_copy(update={"port": 0, "spill_dir": tmp_path / "spill"}),
        }
    )
    sup = Supervisor(
        settings,
        services=["ingestion"],
        gateway=False,
        metrics=False,
        feed=Feed(kind="auto", replay_files=[file], speed=0.0),
    )
    rt = await sup.start()
    try:
        assert rt.feed.kind == "replay" and rt.feed.replay_files == (file,)
        want = len(db.DBNStore.from_file(file).to_df())
        conn = await asyncpg.connect(dsn)
        try:
            got = 0
            for _ in range(100):
                got = int(await conn.fetchval("SELECT count(*) FROM trades WHERE symbol = 'NVDA'"))
                if got >= want:
                    break
                await asyncio.sleep(0.1)
            # nothing from the simulator: only the file's instrument was stored
            others = int(await conn.fetchval("SELECT count(*) FROM trades WHERE symbol <> 'NVDA'"))
        finally:
            await conn.close()
        assert got == want > 0
        assert others == 0
    finally:
        await sup.stop()
