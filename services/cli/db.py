"""``aiots db migrate|status``: versioned SQL migrations (DATABASE_URL, else the embedded PostgreSQL)."""

from __future__ import annotations

import asyncio

import asyncpg
import click
from rich.console import Console
from rich.table import Table

from aiots.services.common.settings import get_settings
from aiots.services.storage.migrate import engine_of, migrate, recorded_engine, status
from aiots.services.storage.pool import resolve_dsn

console = Console()


@click.group(name="db")
def cli() -> None:
    """Database schema: apply or show migrations."""


async def _migrate() -> tuple[list[int], str]:
    s = get_settings()
    conn = await asyncpg.connect(await resolve_dsn(s))
    try:
        applied = await migrate(
            conn, timescale=s.database.timescale, partition_days_ahead=s.database.partition_days_ahead
        )
        return applied, await engine_of(conn)
    finally:
        await conn.close()


@cli.command(name="migrate")
def migrate_cmd() -> None:
    """Apply pending migrations (idempotent)."""
    applied, engine = asyncio.run(_migrate())
    if applied:
        console.print(f"applied migrations {', '.join(map(str, applied))} (engine: {engine})")
    else:
        console.print(f"database is up to date (engine: {engine})")


async def _status() -> tuple[list[object], str]:
    conn = await asyncpg.connect(await resolve_dsn(get_settings()))
    try:
        st = await status(conn)
        return list(st), await recorded_engine(conn)
    finally:
        await conn.close()


@cli.command(name="status")
def status_cmd() -> None:
    """Show every migration and whether it is applied."""
    rows, engine = asyncio.run(_status())
    t = Table(title=f"migrations (engine: {engine})")
    for c in ("version", "name", "applied at", "checksum"):
        t.add_column(c)
    for r in rows:
        t.add_row(
            str(r.version),  # type: ignore[attr-defined]
            r.name,  # type: ignore[attr-defined]
            r.applied_at.isoformat() if r.applied_at else "pending",  # type: ignore[attr-defined]
            "ok" if r.checksum_ok else "CHANGED",  # type: ignore[attr-defined]
        )
    console.print(t)
