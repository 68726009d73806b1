"""Versioned SQL migrations, applied idempotently (``aiots db migrate|status``).

Files ``migrations/NNNN_name.sql`` are applied in order, each once, recorded in
``schema_migrations`` with a checksum. A session advisory lock makes concurrent start-ups safe.

One code path, two engines: the engine is chosen once per database (``aiots_meta.engine``):
``timescale`` when ``CREATE EXTENSION timescaledb`` succeeds (settings.database.timescale "auto"
or "on"), else ``plain`` (native daily range partitions on ts_event, BRIN indexes, roll-ups on
read). Inside a file, ``--@if plain`` / ``--@if timescale`` ... ``--@end`` blocks keep only the
current engine's statements and the marker ``/*@partition_by*/`` becomes
``PARTITION BY RANGE (ts_event)`` on plain PostgreSQL. A file containing ``--@go`` separators runs
statement by statement outside a transaction (TimescaleDB continuous aggregates need that).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
Engine = Literal["plain", "timescale"]
PARTITIONED_TABLES: tuple[str, ...] = ("trades", "quotes", "option_quotes", "bars_1s", "bars_1m")
_LOCK_KEY = 0x41494F5453  # "AIOTS": advisory lock id serialising migrations
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_BLOCK = re.compile(r"^--@if (plain|timescale)\s*$(.*?)^--@end\s*$", re.S | re.M)


@dataclass(frozen=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    """A migration and whether (and when) it was applied."""

    version: int
    name: str
    applied_at: dt.datetime | None
    checksum_ok: bool


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migration files sorted by version (names must be ``NNNN_lower_name.sql``)."""
    out = []
    for p in sorted(directory.glob("*.sql")):
        m = _NAME.match(p.name)
        if m is None:
            raise ValueError(f"bad migration file name {p.name!r}: expected NNNN_lower_name.sql")
        out.append(Migration(int(m.group(1)), m.group(2), p.read_text()))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {directory}: {versions}")
    return out


def render(sql: str, engine: Engine) -> list[str]:
    """The statements batches of ``sql`` for ``engine`` (one batch unless ``--@go`` splits it)."""

    def keep(m: re.Match[str]) -> str:
        return m.group(2) if m.group(1) == engine else ""

    text = _BLOCK.sub(keep, sql)
    text = text.replace("/*@partition_by*/", "PARTITION BY RANGE (ts_event)" if engine == "plain" else "")
    batches = [b.strip() for b in re.split(r"^--@go\s*$", text, flags=re.M)]
    return [b for b in batches if _has_sql(b)]


def _has_sql(batch: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in batch.splitlines())


async def _choose_engine(conn: asyncpg.Connection, want: str) -> Engine:
    await conn.execute("CREATE TABLE IF NOT EXISTS aiots_meta (key text PRIMARY KEY, value text NOT NULL)")
    stored = await conn.fetchval("SELECT value FROM aiots_meta WHERE key = 'engine'")
    if stored in ("plain", "timescale"):
        return stored  # type: ignore[no-any-return]
    engine: Engine = "plain"
    if want != "off":
        try:
            async with conn.transaction():
                await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            engine = "timescale"
        except asyncpg.PostgresError as exc:
            if want == "on":
                raise RuntimeError(f"TimescaleDB required (database.timescale=on) but unavailable: {exc}") from exc
            log.info("TimescaleDB not available, using native partitioning", extra={"reason": str(exc)})
    await conn.execute("INSERT INTO aiots_meta (key, value) VALUES ('engine', $1) ON CONFLICT DO NOTHING", engine)
    return engine


async def recorded_engine(conn: asyncpg.Connection | asyncpg.Pool) -> str:
    """The engine recorded by ``migrate`` ("plain" | "timescale"), or "-" before the first migration."""
    if not await conn.fetchval("SELECT to_regclass('aiots_meta') IS NOT NULL"):
        return "-"
    return await engine_of(conn)


async def engine_of(conn: asyncpg.Connection | asyncpg.Pool) -> Engine:
    """The engine a migrated database uses."""
    value = await conn.fetchval("SELECT value FROM aiots_meta WHERE key = 'engine'")
    return "timescale" if value == "timescale" else "plain"


async def migrate(
    conn: asyncpg.Connection,
    *,
    timescale: str = "auto",
    partition_days_ahead: int = 7,
    directory: Path = MIGRATIONS_DIR,
) -> list[int]:
    """Apply pending migrations; returns the versions applied now (empty when up to date)."""
    migrations = load_migrations(directory)
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        engine = await _choose_engine(conn, timescale)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                   engine text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        applied = []
        for m in migrations:
            if m.version in done:
                if done[m.version] != m.checksum:
                    log.warning("migration changed after it was applied", extra={"version": m.version})
                continue
            batches = render(m.sql, engine)
            if len(batches) <= 1:
                async with conn.transaction():
                    for b in batches:
                        await conn.execute(b)
                    await _record(conn, m, engine)
            else:
                for b in batches:
                    await conn.execute(b)
                await _record(conn, m, engine)
            applied.append(m.version)
            log.info("migration applied", extra={"version": m.version, "migration": m.name, "engine": engine})
        await ensure_partitions_ahead(conn, partition_days_ahead)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def _record(conn: asyncpg.Connection, m: Migration, engine: Engine) -> None:
    await conn.execute(
        "INSERT INTO schema_migrations (version, name, checksum, engine) VALUES ($1, $2, $3, $4)",
        m.version,
        m.name,
        m.checksum,
        engine,
    )


async def ensure_partitions_ahead(conn: asyncpg.Connection | asyncpg.Pool, days_ahead: int) -> int:
    """Create daily partitions from yesterday to ``days_ahead`` days ahead (UTC); no-op on TimescaleDB."""
    today = dt.datetime.now(dt.UTC).date()
    return await ensure_partitions(
        conn, PARTITIONED_TABLES, today - dt.timedelta(days=1), today + dt.timedelta(days=days_ahead)
    )


async def ensure_partitions(
    conn: asyncpg.Connection | asyncpg.Pool, tables: tuple[str, ...] | list[str], first: dt.date, last: dt.date
) -> int:
    """Create the daily partitions [first, last] (UTC days) of ``tables``; returns how many were new."""
    n = 0
    for t in tables:
        n += int(await conn.fetchval("SELECT aiots_ensure_partitions($1, $2, $3)", t, first, last))
    return n


async def status(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[MigrationState]:
    """Every known migration with its applied time (None when pending)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    rows = {}
    if exists:
        rows = {
            r["version"]: r for r in await conn.fetch("SELECT version, checksum, applied_at FROM schema_migrations")
        }
    out = []
    for m in load_migrations(directory):
        r = rows.get(m.version)
        out.append(
            MigrationState(
                version=m.version,
                name=m.name,
                applied_at=r["applied_at"] if r else None,
                checksum_ok=(r is None or r["checksum"] == m.checksum),
            )
        )
    return out
