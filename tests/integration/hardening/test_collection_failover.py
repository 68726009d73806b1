"""Ingestion's collection work moves to the survivor (issue 18, item 16): two ``aiots serve
ingestion`` replicas with autostart on (the simulator, no Databento key) share one private Redis and
one PostgreSQL database; the replica running the collection job is killed with SIGKILL.

What must hold, with the oracle of each:

- Autostart on both replicas writes one job, not two, and one replica runs it. Oracle: the
  ``collection_jobs`` table (one running simulator row, its owner naming the replica's pid).
- After the kill the survivor takes the job over once its claim has been idle for
  ``ingestion.job_claim_idle_s`` (not before), and the stored data goes on past where it stopped.
  Oracle: the row's owner and takeover count; ``max(ts_event)`` of the stored trades.
- Status and stop work on the survivor: GetCollectionStatus says running, StopCollection ends the
  job and its stream entry is acknowledged. Oracle: the row's status; XPENDING of the jobs group.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
import redis.asyncio as aioredis

from aiots.services.ingestion.jobs import JOBS_GROUP, JOBS_KEY, JOBS_TOPIC
from aiots.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.integration.bus.redis_fixtures import RedisProc
from tests.integration.hardening.replicas import SYMBOLS, Replica, stop_all

pytestmark = pytest.mark.timeout(300)

NS = "failover"
HEARTBEAT_S = 0.5
CLAIM_IDLE_S = 4.0
#: start-up of both replicas at once (seconds of CPU each; minutes on a machine shared with other work)
READY_LIMIT_S = 150.0
#: slack on a loaded machine for each wait beyond what the settings imply
SLACK_S = 45.0


def _env(dsn: str, redis_url: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_url,
        "AIOTS_REDIS__NAMESPACE": NS,
        "AIOTS_SYMBOLS": json.dumps(list(SYMBOLS)),
        "AIOTS_DATABASE__MIGRATE_ON_START": "false",
        "AIOTS_INGESTION__AUTOSTART": "true",
        "AIOTS_INGESTION__HISTORY_SESSIONS": "1",
        "AIOTS_INGESTION__SIMULATOR_SPEED": "20",
        "AIOTS_INGESTION__FLUSH_INTERVAL_S": "0.05",
        "AIOTS_INGESTION__JOB_HEARTBEAT_S": str(HEARTBEAT_S),
        "AIOTS_INGESTION__JOB_CLAIM_IDLE_S": str(CLAIM_IDLE_S),
    }
    env.pop("DATABENTO_API_KEY", None)
    return env


async def _until(what: str, cond: Callable[[], Any], limit_s: float) -> float:
    """Seconds until the coroutine ``cond()`` returns something true; fails after ``limit_s``."""
    t0 = time.monotonic()
    while True:
        v = await cond()
        if v:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < limit_s, f"{what}: not within {limit_s:.0f}s"
        await asyncio.sleep(0.1)


async def test_the_survivor_takes_over_a_killed_replicas_collection(
    redis_proc: RedisProc, make_database: Callable[..., str], tmp_path: Path
) -> None:
    dsn = make_database(True)
    env = _env(dsn, redis_proc.url)
    reps = [Replica(n, env, tmp_path, service="ingestion") for n in ("a", "b")]
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    r = aioredis.from_url(redis_proc.url, decode_responses=True)
    try:
        await asyncio.gather(*(rep.ready(READY_LIMIT_S) for rep in reps))

        async def jobs() -> list[asyncpg.Record]:
            return list(await pool.fetch("SELECT job_id, status, owner, takeovers FROM collection_jobs"))

        async def owned() -> bool:
            rows = await jobs()
            return len(rows) == 1 and rows[0]["owner"] is not None

        await _until("one job, owned", owned, SLACK_S)
        (row,) = await jobs()  # both replicas autostarted: still one job
        assert row["status"] == "running"
        job_id = row["job_id"]
        by_pid = {f"-{rep.proc.pid}-": rep for rep in reps}
        victim = next(rep for tag, rep in by_pid.items() if tag in row["owner"])
        survivor = next(rep for rep in reps if rep is not victim)

        async def last_trade() -> int:
            return int(await pool.fetchval("SELECT coalesce(max(ts_event), 0) FROM trades") or 0)

        await _until("trades stored", last_trade, SLACK_S)
        victim.kill()
        killed = time.monotonic()
        at_kill = await last_trade()

        async def taken() -> bool:
            rows = await jobs()
            return bool(rows and f"-{survivor.proc.pid}-" in (rows[0]["owner"] or ""))

        await _until("takeover", taken, CLAIM_IDLE_S + SLACK_S)
        took = time.monotonic() - killed
        print(f"collection job taken over {took:.1f}s after the kill (claim idle {CLAIM_IDLE_S}s)")
        (row,) = await jobs()
        assert row["job_id"] == job_id and row["status"] == "running" and row["takeovers"] == 1
        # the victim's last renewal was at most one heartbeat before the kill
        assert took >= CLAIM_IDLE_S - HEARTBEAT_S, f"taken over after {took:.1f}s, before the claim was idle"

        async def advanced() -> bool:
            return await last_trade() > at_kill

        await _until("data stored past the kill", advanced, SLACK_S)

        stream = f"{NS}:v1:{JOBS_TOPIC}:{JOBS_KEY}"
        (p,) = await r.xpending_range(stream, JOBS_GROUP, "-", "+", 10)
        assert f"-{survivor.proc.pid}-" in p["consumer"]

        async with grpc.aio.insecure_channel(survivor.target) as ch:
            stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
            st = await stub.GetCollectionStatus(ingestion_pb2.GetCollectionStatusRequest(), timeout=30)
            assert st.running and {s.symbol for s in st.streams} == set(SYMBOLS)
            stop = await stub.StopCollection(ingestion_pb2.StopCollectionRequest(all=True), timeout=60)
            assert list(stop.job_ids) == [job_id]

        async def acked() -> bool:
            return not await r.xpending_range(stream, JOBS_GROUP, "-", "+", 10)

        await _until("entry acknowledged", acked, SLACK_S)
        (row,) = await jobs()
        assert row["status"] == "stopped"
    finally:
        stop_all(reps)
        await r.aclose()
        await pool.close()
