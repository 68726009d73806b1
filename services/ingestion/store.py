"""Ingestion's repository: the SQL of the ingestion service, its jobs and sources (beyond the
writer's COPY path): collection jobs, backfill chunks, the simulator's history marker.

``pool`` is an ``asyncpg.Pool`` or connection.
"""

from __future__ import annotations

import datetime as dt
import json
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
