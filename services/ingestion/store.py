"""Ingestion's repository: the SQL the ingestion sources need beyond the writer's COPY path.

``pool`` is an ``asyncpg.Pool`` or connection.
"""

from __future__ import annotations

from typing import Any

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
