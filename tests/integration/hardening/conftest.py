"""Hardening fixtures: all four services in one process on port 0 over one fresh database.

- ``stack`` (function): a :class:`Stack` with started ingestion (no autostart), analytics (no live
  state), cache and signals apps sharing a Runtime (asyncpg pool on a throwaway migrated database,
  the in-process bus, the in-memory cache backend), and one gRPC channel per service.
- Private Redis servers: ``redis_proc`` (see tests/integration/bus/redis_fixtures.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from aiots.services.analytics.app import AnalyticsApp
from aiots.services.bus.in_process import InProcessBus
from aiots.services.cache.app import CacheApp
from aiots.services.cache.backends.memory import MemoryBackend
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.ingestion.app import create_app as create_ingestion
from aiots.services.signals.app import SignalsApp
from tests.integration.bus.redis_fixtures import redis_proc

__all__ = ["Stack", "redis_proc", "stack"]


@dataclass
class Stack:
    settings: Settings
    rt: Runtime
    apps: dict[str, Any]
    channels: dict[str, grpc.aio.Channel]


@pytest.fixture
async def stack(
    make_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    monkeypatch.delenv("DATABENTO_API_KEY", raising=False)
    dsn = make_database(True)
    settings = Settings(
        database_url=dsn,
        symbols=["AAPL", "GOOGL"],
        ingestion={"spill_dir": tmp_path / "spill", "autostart": False, "history_sessions": 1},
        database={"migrate_on_start": False},
    )
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    rt = Runtime(settings=settings, db=pool, bus=InProcessBus(), cache=MemoryBackend(16 << 20))
    apps: dict[str, Any] = {
        "ingestion": await create_ingestion(rt, port=0),
        "analytics": AnalyticsApp(rt, port=0, live=False),
        "cache": CacheApp(rt, port=0),
        "signals": SignalsApp(rt, port=0),
    }
    started = []
    channels: dict[str, grpc.aio.Channel] = {}
    try:
        for name, app in apps.items():
            await app.start()
            started.append(app)
            channels[name] = grpc.aio.insecure_channel(f"127.0.0.1:{app.port}")
        yield Stack(settings, rt, apps, channels)
    finally:
        for ch in channels.values():
            await ch.close()
        for app in reversed(started):
            await app.stop()
        await pool.close()
