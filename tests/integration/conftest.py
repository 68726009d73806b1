"""Integration fixtures: a uniquely named, migrated PostgreSQL database per test session.

Stable fixture names (other areas use them):

- ``pg_server_dsn`` (session): DSN of the server's ``postgres`` database (127.0.0.1:5432, user
  postgres, trust; override with ``AIOTS_TEST_PG``). Skips cleanly when PostgreSQL is unreachable.
- ``pg_dsn`` (session): DSN of a fresh database ``aiots_test_<pid>_<hex>`` with every migration
  applied; dropped at the end of the session. Tests share it: use your own symbols/ids.
- ``pg_pool`` (function): an ``asyncpg.Pool`` on ``pg_dsn`` (pools are bound to the test's loop).
- ``make_database`` (session): ``make_database(migrated=True) -> dsn`` creates another throwaway
  database (dropped at the end), for tests that need an empty or isolated one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import asyncpg
import pytest

from aiots.services.storage.migrate import migrate

PG_SERVER = os.environ.get("AIOTS_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` on a private loop in a thread (works from sync and async callers alike)."""
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        ex.submit(asyncio.run, coro).result()


def _dsn(db: str) -> str:
    return f"{PG_SERVER.rstrip('/')}/{db}"


async def _create(name: str, migrated: bool) -> None:
    conn = await asyncpg.connect(_dsn("postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    if migrated:
        c = await asyncpg.connect(_dsn(name))
        try:
            await migrate(c, timescale="off")
        finally:
            await c.close()


async def _drop(name: str) -> None:
    conn = await asyncpg.connect(_dsn("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server_dsn() -> str:
    """DSN of the server's maintenance database; skips when PostgreSQL is not reachable."""

    async def ping() -> None:
        c = await asyncpg.connect(_dsn("postgres"), timeout=3)
        await c.close()

    try:
        _run(ping())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_SERVER}: {exc}")
    return _dsn("postgres")


@pytest.fixture(scope="session")
def make_database(pg_server_dsn: str) -> Iterator[Callable[..., str]]:
    """Factory of throwaway databases (dropped at session end)."""
    made: list[str] = []

    def make(migrated: bool = True) -> str:
        name = f"aiots_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        _run(_create(name, migrated))
        made.append(name)
        return _dsn(name)

    yield make
    for name in made:
        _run(_drop(name))


@pytest.fixture(scope="session")
def pg_dsn(make_database: Callable[..., str]) -> str:
    """A migrated database shared by the session."""
    return make_database(True)


@pytest.fixture
async def pg_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """asyncpg pool on ``pg_dsn`` for one test."""
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()
