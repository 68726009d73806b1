"""asyncpg connection pool, with an embedded PostgreSQL when no DATABASE_URL is configured.

Embedded mode starts PostgreSQL through the ``pgserver`` package with its data directory at
``settings.database.embedded_dir`` (kept between runs; the server stops when the process exits).
Pending migrations are applied when the pool is created (``settings.database.migrate_on_start``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from aiots.services.common.settings import Settings
from aiots.services.storage.migrate import migrate

log = logging.getLogger(__name__)

_embedded: dict[str, Any] = {}


def _start_embedded(path: str) -> str:
    """Start (or reuse) the pgserver instance for ``path``; returns its DSN."""
    from pgserver import get_server  # type: ignore[attr-defined]  # lazily: embedded mode only

    server: Any = _embedded.get(path)
    if server is None:
        server = get_server(path, cleanup_mode="stop")
        _embedded[path] = server
    return str(server.get_uri())


async def resolve_dsn(settings: Settings) -> str:
    """The DSN to use: DATABASE_URL, or the embedded server's (started on first use)."""
    if settings.database_url is not None:
        return str(settings.database_url.get_secret_value())
    path = settings.database.embedded_dir.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    dsn = await asyncio.to_thread(_start_embedded, str(path))
    log.info("embedded PostgreSQL started", extra={"data_dir": str(path)})
    return dsn


async def create_pool(
    settings: Settings, *, dsn: str | None = None, migrate_schema: bool | None = None
) -> asyncpg.Pool:
    """Open the pool (and apply pending migrations unless disabled)."""
    dsn = dsn or await resolve_dsn(settings)
    db = settings.database
    if migrate_schema if migrate_schema is not None else db.migrate_on_start:
        conn = await asyncpg.connect(dsn, timeout=db.command_timeout_s)
        try:
            await migrate(conn, timescale=db.timescale, partition_days_ahead=db.partition_days_ahead)
        finally:
            await conn.close()
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=db.pool_min,
        max_size=max(db.pool_max, db.pool_min),
        command_timeout=db.command_timeout_s,
    )
    return pool
