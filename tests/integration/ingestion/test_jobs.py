"""The replicas' collection-job queue (services/ingestion/jobs.py) on a private redis-server and a
fresh PostgreSQL database. Two :class:`JobQueue` members (two "replicas") share the group; their
launch/halt callbacks record what each replica was told to run. Oracles: Redis's own view of the
group (XPENDING: which consumer holds the entry, its idle time and delivery count) and the
``collection_jobs`` rows (status, owner, takeovers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
import ulid

from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common.settings import IngestionSettings, RedisSettings
from aiots.services.ingestion import store
from aiots.services.ingestion.jobs import JOBS_GROUP, JobQueue
from aiots.services.ingestion.store import JobRow
from tests.integration.bus.redis_fixtures import RedisProc, redis_proc
from tests.integration.wait import until

__all__ = ["redis_proc"]

pytestmark = pytest.mark.timeout(180)

HEARTBEAT_S = 0.3
CLAIM_IDLE_S = 1.5
#: slack for a loaded machine on top of the idle time and one claim interval
SLACK_S = 10.0
PARAMS = {"symbols": ["AAPL"], "schemas": ["trades"], "include_options": False}


class Member:
    """A queue member and what it was told to run."""

    def __init__(self, bus: RedisStreamsBus, pool: asyncpg.Pool, cfg: IngestionSettings) -> None:
        self.running: set[str] = set()
        self.launched: list[str] = []
        self.halted: list[str] = []
        self.q = JobQueue(bus, pool, cfg, self._launch, self._halt)

    async def _launch(self, job_id: str, row: JobRow) -> None:
        assert row.params == PARAMS
        self.running.add(job_id)
        self.launched.append(job_id)

    async def _halt(self, job_id: str) -> None:
        self.running.discard(job_id)
        self.halted.append(job_id)


@pytest.fixture
async def env(
    redis_proc: RedisProc, make_database: Callable[..., str], tmp_path: Path
) -> AsyncIterator[tuple[Callable[[], Any], asyncpg.Pool, aioredis.Redis]]:
    pool = await asyncpg.create_pool(make_database(True), min_size=1, max_size=6)
    cfg = IngestionSettings(job_heartbeat_s=HEARTBEAT_S, job_claim_idle_s=CLAIM_IDLE_S)
    rcfg = RedisSettings(namespace="jobs", outbox_dir=tmp_path / "outbox", read_block_ms=200)
    buses: list[RedisStreamsBus] = []
    members: list[Member] = []

    async def member() -> Member:
        bus = RedisStreamsBus(redis_proc.url, rcfg)
        buses.append(bus)
        m = Member(bus, pool, cfg)
        await m.q.start()
        members.append(m)
        return m

    r = aioredis.from_url(redis_proc.url, decode_responses=True)
    try:
        yield member, pool, r
    finally:
        for m in members:
            await asyncio.wait_for(m.q.close(handover=False), 20)
        for b in buses:
            await asyncio.wait_for(b.close(), 20)
        await r.aclose()
        await asyncio.wait_for(pool.close(), 20)


async def _new_job(pool: asyncpg.Pool, q: JobQueue) -> str:
    job_id = str(ulid.ULID())
    assert await store.insert_queued_job(pool, job_id, "simulator", PARAMS, [])
    await q.enqueue(job_id)
    return job_id


async def _until(cond: Callable[[], Any], limit_s: float = SLACK_S) -> float:
    return await until(cond, limit_s)


async def _pending(r: aioredis.Redis, q: JobQueue) -> list[dict[str, Any]]:
    return list(await r.xpending_range(q.stream, JOBS_GROUP, "-", "+", 10))


async def test_one_replica_runs_a_job_and_keeps_its_claim(env: Any) -> None:
    member, pool, r = env
    a, b = await member(), await member()
    job_id = await _new_job(pool, a.q)
    await _until(lambda: a.running or b.running)
    owner, other = (a, b) if a.running else (b, a)
    # live owner: several idle times pass, the other member never gets the job
    await asyncio.sleep(3 * CLAIM_IDLE_S)
    assert owner.launched == [job_id] and other.launched == []
    (p,) = await _pending(r, owner.q)
    assert p["consumer"] == owner.q.owner
    assert p["time_since_delivered"] < CLAIM_IDLE_S * 1000  # XCLAIM ... JUSTID renewed the idle time
    assert p["times_delivered"] == 1  # JUSTID: renewals are not redeliveries
    row = await store.get_job(pool, job_id)
    assert row is not None and row.owner == owner.q.owner and row.status == "running"
    assert row.heartbeat_age_s is not None and row.heartbeat_age_s < CLAIM_IDLE_S


async def test_a_dead_replicas_job_is_taken_over_after_the_idle_time(env: Any) -> None:
    member, pool, r = env
    a = await member()
    job_id = await _new_job(pool, a.q)
    await _until(lambda: a.running)
    b = await member()
    # "crash": a stops reading and renewing, its entry stays pending (what SIGKILL leaves behind)
    await a.q.close(handover=False)
    died = time.monotonic()
    await _until(lambda: b.running, CLAIM_IDLE_S + SLACK_S)
    took = time.monotonic() - died
    # the last renewal was at most one heartbeat before the "crash"
    assert took >= CLAIM_IDLE_S - HEARTBEAT_S, f"taken after {took:.2f}s, before the idle time"
    (p,) = await _pending(r, b.q)
    assert p["consumer"] == b.q.owner and p["times_delivered"] == 2
    row = await store.get_job(pool, job_id)
    assert row is not None and row.owner == b.q.owner and row.takeovers == 1 and row.status == "running"


async def test_stop_from_another_replica_reaches_the_owner(env: Any) -> None:
    member, pool, r = env
    a = await member()
    job_id = await _new_job(pool, a.q)
    await _until(lambda: a.running)
    b = await member()
    await b.q.request_stop([job_id])
    await _until(lambda: not a.running)
    assert a.halted == [job_id]
    await _until(lambda: _no_pending(r, a.q))
    row = await store.get_job(pool, job_id)
    assert row is not None and row.status == "stopped"
    await asyncio.sleep(2 * CLAIM_IDLE_S)  # acknowledged: nobody takes it over
    assert b.launched == [] and a.launched == [job_id]


async def _no_pending(r: aioredis.Redis, q: JobQueue) -> bool:
    return not await _pending(r, q)


async def test_a_stop_missed_by_the_broadcast_is_seen_at_the_heartbeat(env: Any) -> None:
    member, pool, r = env
    a = await member()
    job_id = await _new_job(pool, a.q)
    await _until(lambda: a.running)
    await store.stop_jobs(pool, [job_id])  # no broadcast
    await _until(lambda: not a.running, 5 * HEARTBEAT_S + SLACK_S)
    await _until(lambda: _no_pending(r, a.q))


async def test_a_graceful_stop_hands_the_job_over_at_once(env: Any) -> None:
    member, pool, r = env
    a = await member()
    job_id = await _new_job(pool, a.q)
    await _until(lambda: a.running)
    b = await member()
    await a.q.close(handover=True)
    await _until(lambda: b.running)
    (p,) = await _pending(r, b.q)
    assert p["consumer"] == b.q.owner and p["times_delivered"] == 1  # a new entry, not a reclaim
    row = await store.get_job(pool, job_id)
    assert row is not None and row.owner == b.q.owner and row.takeovers == 0


async def test_a_duplicate_entry_never_runs_a_job_twice(env: Any) -> None:
    member, pool, r = env
    a, b = await member(), await member()
    job_id = await _new_job(pool, a.q)
    await a.q.enqueue(job_id)
    await a.q.enqueue(job_id)
    await _until(lambda: _pending_len(r, a.q, 1))
    await asyncio.sleep(2 * CLAIM_IDLE_S)
    assert sorted(a.launched + b.launched) == [job_id]
    assert len(await _pending(r, a.q)) == 1


async def _pending_len(r: aioredis.Redis, q: JobQueue, n: int) -> bool:
    return len(await _pending(r, q)) == n and await r.xlen(q.stream) == 3


async def test_one_running_job_per_source_whoever_writes_it(env: Any) -> None:
    _, pool, _ = env
    ids = [str(ulid.ULID()) for _ in range(4)]
    won = await asyncio.gather(*(store.insert_queued_job(pool, i, "simulator", PARAMS, []) for i in ids))
    assert sum(won) == 1
    assert [r.job_id for r in await store.running_collection_jobs(pool)] == [ids[won.index(True)]]
    # replacing it is one transaction: the old row stops, the new one runs
    new = str(ulid.ULID())
    assert await store.insert_queued_job(pool, new, "simulator", PARAMS, [ids[won.index(True)]])
    assert [r.job_id for r in await store.running_collection_jobs(pool)] == [new]
