"""Two IngestionManagers (two replicas in one process) on the Redis bus share collection jobs
(services/ingestion/jobs.py): a start on one is run once, status and stop work from the other, and
a running job whose entry Redis no longer holds is queued again by the next start (autostart).
Oracles: ``collection_jobs`` rows and the stored trades of a fresh PostgreSQL database; XPENDING
of the jobs group on a private redis-server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
import ulid

from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common.settings import Settings
from aiots.services.ingestion import store
from aiots.services.ingestion.jobs import JOBS_GROUP
from aiots.services.ingestion.manager import IngestionManager
from aiots.services.ingestion.normalize import SOURCE_SIMULATOR
from tests.integration.bus.redis_fixtures import RedisProc, redis_proc
from tests.integration.wait import until

__all__ = ["redis_proc"]

pytestmark = pytest.mark.timeout(240)

#: slack for a loaded machine on each wait
SLACK_S = 60.0


@pytest.fixture
async def replicas(
    redis_proc: RedisProc, make_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[IngestionManager, IngestionManager, asyncpg.Pool, aioredis.Redis]]:
    monkeypatch.delenv("DATABENTO_API_KEY", raising=False)
    dsn = make_database(True)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
    made: list[tuple[IngestionManager, RedisStreamsBus]] = []
    for name in ("a", "b"):
        settings = Settings(
            database_url=dsn,
            symbols=["AAPL", "MSFT"],
            redis={"namespace": "mgr", "outbox_dir": tmp_path / f"outbox-{name}", "read_block_ms": 200},
            ingestion={
                "spill_dir": tmp_path / f"spill-{name}",
                "autostart": False,
                "simulator_speed": 50.0,
                "flush_interval_s": 0.02,
                "job_heartbeat_s": 0.3,
                "job_claim_idle_s": 1.5,
            },
        )
        bus = RedisStreamsBus(redis_proc.url, settings.redis)
        m = IngestionManager(settings, pool, dsn, bus=bus)
        await m.start()
        made.append((m, bus))
    r = aioredis.from_url(redis_proc.url, decode_responses=True)
    try:
        yield made[0][0], made[1][0], pool, r
    finally:
        for m, bus in made:
            await asyncio.wait_for(m.stop(), SLACK_S)
            await bus.close()
        await r.aclose()
        await pool.close()


async def _until(cond: Callable[[], Any], limit_s: float = SLACK_S) -> float:
    return await until(cond, limit_s)


async def test_a_job_started_anywhere_runs_once_and_stops_from_anywhere(replicas: Any) -> None:
    a, b, pool, r = replicas
    job_id, started, source, _ = await a.start_collection(["AAPL"], ["trades"])
    assert started and source == SOURCE_SIMULATOR
    again, started2, _, msg = await b.start_collection(["AAPL"], ["trades"])
    assert (again, started2) == (job_id, False) and msg.startswith("already collecting")
    await _until(lambda: job_id in a.jobs or job_id in b.jobs)
    owner, other = (a, b) if job_id in a.jobs else (b, a)
    assert job_id not in other.jobs
    await _until(lambda: pool.fetchval("SELECT count(*) FROM trades WHERE symbol = 'AAPL'"))
    # the other replica reports the job it does not run, from collection_jobs
    st = await other.cluster_status()
    assert st.running and ("AAPL", "trades") in {(s.symbol, s.schema) for s in st.streams}
    # a wider start replaces the job by one covering both symbols
    wide, started3, _, _ = await other.start_collection(["MSFT"], ["trades"])
    assert started3 and wide != job_id
    await _until(lambda: job_id not in owner.jobs)
    await _until(lambda: wide in a.jobs or wide in b.jobs)
    row = await store.get_job(pool, wide)
    assert row is not None and row.params["symbols"] == ["AAPL", "MSFT"]
    old = await store.get_job(pool, job_id)
    assert old is not None and old.status == "stopped"
    # stop from the replica that does not run it
    runner, idle = (a, b) if wide in a.jobs else (b, a)
    stopped, _ = await idle.stop_collection([])
    assert stopped == [wide]
    await _until(lambda: wide not in runner.jobs)
    assert runner.queue is not None
    await _until(lambda: _no_pending(r, runner.queue.stream))
    row = await store.get_job(pool, wide)
    assert row is not None and row.status == "stopped"


async def _no_pending(r: aioredis.Redis, stream: str) -> bool:
    return not await r.xpending_range(stream, JOBS_GROUP, "-", "+", 10)


async def test_a_running_job_without_an_entry_is_queued_again_by_the_next_start(replicas: Any) -> None:
    a, b, pool, _ = replicas
    job_id = str(ulid.ULID())
    params = {"symbols": ["AAPL", "MSFT"], "schemas": ["trades", "tbbo"], "include_options": False}
    assert await store.insert_queued_job(pool, job_id, "simulator", params, [])  # no XADD: Redis "lost" it
    await asyncio.sleep(1.0)
    assert job_id not in a.jobs and job_id not in b.jobs
    got, started, _, _ = await b.start_collection([], [])  # what autostart runs
    assert (got, started) == (job_id, False)
    await _until(lambda: job_id in a.jobs or job_id in b.jobs)
