"""Ingestion's repository: the SQL of the ingestion service, its jobs and sources (beyond the
writer's COPY path): collection jobs, backfill chunks, the simulator's history marker.

``pool`` is an ``asyncpg.Pool`` or connection.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiots.core import conventions as cv

SIMULATOR_HISTORY_KEY = "simulator_history"


async def simulator_history_marker(pool: Any) -> str | None:
    """The marker of the simulator history written into this database (None: none yet)."""
    value: str | None = await pool.fetchval("SELECT value FROM aiots_meta WHERE key = $1", SIMULATOR_HISTORY_KEY)
    return value


async def set_simulator_history_marker(pool: Any, marker: str) -> None:
    """Record that the simulator history ``marker`` (seed, sessions, anchor session) is written."""
    await pool.execute(
        """INSERT INTO aiots_meta (key, value) VALUES ($1, $2)
           ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value""",
        SIMULATOR_HISTORY_KEY,
        marker,
    )


async def symbol_known(pool: Any, symbol: str) -> bool:
    """True when ``symbol`` has an instruments row (stored data)."""
    return bool(await pool.fetchval("SELECT 1 FROM instruments WHERE symbol = $1", symbol))


async def insert_job(pool: Any, job_id: str, kind: str, params: dict[str, Any]) -> None:
    """A new running collection job (``collection_jobs``)."""
    await pool.execute(
        "INSERT INTO collection_jobs (job_id, kind, status, params) VALUES ($1, $2, 'running', $3)",
        job_id,
        kind,
        json.dumps(params),
    )


async def upsert_backfill_job(pool: Any, job_id: str, params: dict[str, Any], cost_usd: float) -> None:
    """A backfill job running (new, or resumed)."""
    await pool.execute(
        """INSERT INTO collection_jobs (job_id, kind, status, params, cost_usd)
           VALUES ($1, 'backfill', 'running', $2, $3)
           ON CONFLICT (job_id) DO UPDATE SET status = 'running', updated_at = now()""",
        job_id,
        json.dumps(params),
        cost_usd,
    )


async def finish_job(pool: Any, job_id: str, status: str, error: str | None = None) -> None:
    """Mark a job stopped/failed/done (``error`` kept for failed jobs)."""
    await pool.execute(
        "UPDATE collection_jobs SET status = $2, error = $3, updated_at = now() WHERE job_id = $1",
        job_id,
        status,
        error,
    )


async def job_exists(pool: Any, job_id: str) -> bool:
    return await pool.fetchrow("SELECT params FROM collection_jobs WHERE job_id = $1", job_id) is not None


async def done_chunks(pool: Any, job_id: str) -> set[tuple[dt.date, str]]:
    """(day, schema) chunks of a backfill job already stored."""
    rows = await pool.fetch("SELECT chunk_day, schema FROM backfill_chunks WHERE job_id = $1", job_id)
    return {(r[0], r[1]) for r in rows}


async def record_chunk(pool: Any, job_id: str, day: dt.date, schema: str, records: int) -> None:
    """One backfill chunk stored; the job's record count grows by ``records``."""
    await pool.execute(
        """INSERT INTO backfill_chunks (job_id, chunk_day, schema, status, records)
           VALUES ($1, $2, $3, 'done', $4)
           ON CONFLICT DO NOTHING""",
        job_id,
        day,
        schema,
        records,
    )
    await pool.execute(
        "UPDATE collection_jobs SET records = records + $2, updated_at = now() WHERE job_id = $1", job_id, records
    )


async def close_before(pool: Any, symbol: str, close_ns: int) -> float | None:
    """The session close of ``symbol`` ending at ``close_ns`` from stored bars: the last 1-minute bar
    starting before it (within that session's regular hours), else that date's daily bar."""
    row = await pool.fetchrow(
        """SELECT close FROM bars_1m WHERE symbol = $1 AND ts_event < $2 AND ts_event >= $3
            ORDER BY ts_event DESC LIMIT 1""",
        symbol,
        close_ns,
        close_ns - 7 * cv.NS_PER_HOUR,
    )
    if row is not None:
        return float(row[0])
    day = cv.ny_date(close_ns)
    day_ns = cv.datetime_to_ns(dt.datetime(day.year, day.month, day.day, tzinfo=cv.UTC))
    row = await pool.fetchrow("SELECT close FROM bars_1d WHERE symbol = $1 AND ts_event = $2", symbol, day_ns)
    return float(row[0]) if row is not None else None


# --- collection jobs shared by replicas (the Redis jobs stream; see services/ingestion/jobs.py) ---

COLLECTION_KINDS = ("live", "simulator")


async def insert_queued_job(pool: Any, job_id: str, kind: str, params: dict[str, Any], replaces: Sequence[str]) -> bool:
    """One transaction: mark the jobs ``replaces`` stopped and write a running job of ``kind`` whose
    dedupe key is ``kind``. False when another running job of that kind exists (the partial unique
    index ``collection_jobs_running_dedupe_idx`` decides races between replicas)."""
    async with _tx(pool) as con:
        if replaces:
            await con.execute(
                """UPDATE collection_jobs SET status = 'stopped', updated_at = now()
                    WHERE job_id = ANY($1::text[]) AND status = 'running'""",
                list(replaces),
            )
        row = await con.fetchval(
            """INSERT INTO collection_jobs (job_id, kind, status, params, dedupe_key)
               VALUES ($1, $2, 'running', $3, $2)
               ON CONFLICT (dedupe_key) WHERE status = 'running' DO NOTHING
               RETURNING job_id""",
            job_id,
            kind,
            json.dumps(params),
        )
    return row is not None


@dataclass(frozen=True)
class JobRow:
    """A collection job as ``collection_jobs`` holds it (heartbeat age in seconds; None: never)."""

    job_id: str
    kind: str
    status: str
    params: dict[str, Any]
    owner: str | None
    heartbeat_age_s: float | None
    takeovers: int


_JOB_COLS = """job_id, kind, status, params, owner, takeovers,
               EXTRACT(EPOCH FROM (now() - heartbeat_at))::float8 AS age"""


def _job_row(r: Any) -> JobRow:
    params = r["params"]
    return JobRow(
        r["job_id"], r["kind"], r["status"], json.loads(params) if isinstance(params, str) else dict(params),
        r["owner"], r["age"], r["takeovers"],
    )  # fmt: skip


async def get_job(pool: Any, job_id: str) -> JobRow | None:
    r = await pool.fetchrow(f"SELECT {_JOB_COLS} FROM collection_jobs WHERE job_id = $1", job_id)
    return None if r is None else _job_row(r)


async def running_collection_jobs(pool: Any) -> list[JobRow]:
    """Running live/simulator jobs, oldest first."""
    rows = await pool.fetch(
        f"""SELECT {_JOB_COLS} FROM collection_jobs
             WHERE status = 'running' AND kind = ANY($1::text[]) ORDER BY created_at""",
        list(COLLECTION_KINDS),
    )
    return [_job_row(r) for r in rows]


async def claim_job(pool: Any, job_id: str, owner: str, stale_s: float) -> bool:
    """``owner`` takes a running job that has no live owner (none, itself, or a heartbeat older than
    ``stale_s``); True when it now owns it. A takeover from another owner is counted."""
    row = await pool.fetchval(
        """UPDATE collection_jobs
              SET takeovers = takeovers + (owner IS NOT NULL AND owner <> $2)::int,
                  owner = $2, heartbeat_at = now(), updated_at = now()
            WHERE job_id = $1 AND status = 'running'
              AND (owner IS NULL OR owner = $2 OR heartbeat_at IS NULL
                   OR heartbeat_at < now() - make_interval(secs => $3))
        RETURNING job_id""",
        job_id,
        owner,
        stale_s,
    )
    return row is not None


async def heartbeat_jobs(pool: Any, job_ids: Sequence[str], owner: str) -> set[str]:
    """Refresh the heartbeat of the running jobs ``owner`` still owns; returns those job ids."""
    rows = await pool.fetch(
        """UPDATE collection_jobs SET heartbeat_at = now()
            WHERE job_id = ANY($1::text[]) AND owner = $2 AND status = 'running'
        RETURNING job_id""",
        list(job_ids),
        owner,
    )
    return {r[0] for r in rows}


async def release_job(pool: Any, job_id: str, owner: str) -> None:
    """``owner`` gives a running job back (a graceful stop: another replica will run it)."""
    await pool.execute(
        "UPDATE collection_jobs SET owner = NULL, updated_at = now() WHERE job_id = $1 AND owner = $2",
        job_id,
        owner,
    )


async def stop_jobs(pool: Any, job_ids: Sequence[str]) -> None:
    """Mark running jobs stopped (their owners see it by broadcast or at their next heartbeat)."""
    await pool.execute(
        """UPDATE collection_jobs SET status = 'stopped', updated_at = now()
            WHERE job_id = ANY($1::text[]) AND status = 'running'""",
        list(job_ids),
    )


@contextlib.asynccontextmanager
async def _tx(pool: Any) -> AsyncIterator[Any]:
    """A transaction on a pooled connection (or on ``pool`` when it is a connection)."""
    if hasattr(pool, "acquire"):
        async with pool.acquire() as con, con.transaction():
            yield con
    else:
        async with pool.transaction():
            yield pool
