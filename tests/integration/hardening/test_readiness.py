"""Readiness names the dependency that is down and recovers (issue 18, item 13, service side).

A cache service runs over a private redis-server (spare port) and the test database; the test
kills Redis and reads ``grpc.health.v1.Health`` (the oracle: the standard health protocol, as
Envoy and Kubernetes read it): ``aiots.dep.redis`` and the service's name go NOT_SERVING while
``aiots.dep.postgres`` and liveness (``""``) stay SERVING; all return to SERVING with Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiots.services.cache.app import CacheApp
from aiots.services.common.health import Dependency, Readiness, feed_dependency
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from tests.integration.bus.redis_fixtures import RedisProc

SERVICE = "aiots.v1.CacheService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def cache_app(redis_proc: RedisProc, make_database: Callable[..., str]) -> AsyncIterator[Any]:
    dsn = make_database(True)
    settings = Settings(
        redis_url=redis_proc.url,
        database_url=dsn,
        cache={"readiness_interval_s": 0.1, "readiness_timeout_s": 0.5},
        redis={"socket_timeout_s": 0.5, "reconnect_max_backoff_s": 0.2},
    )
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    app = CacheApp(Runtime(settings=settings, db=pool), port=0)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        await pool.close()


async def _statuses(stub: Any) -> dict[str, int]:
    out = {}
    for name in ("", SERVICE, "aiots.dep.redis", "aiots.dep.postgres"):
        r = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=2)
        out[name] = r.status
    return out


async def _until(stub: Any, want: dict[str, int], limit_s: float = 20.0) -> dict[str, int]:
    deadline = time.monotonic() + limit_s
    while True:
        got = await _statuses(stub)
        if got == want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.1)


async def test_redis_outage_is_named_and_recovers(cache_app: Any, redis_proc: RedisProc) -> None:
    up = {"": SERVING, SERVICE: SERVING, "aiots.dep.redis": SERVING, "aiots.dep.postgres": SERVING}
    down = {**up, SERVICE: NOT_SERVING, "aiots.dep.redis": NOT_SERVING}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{cache_app.port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        assert await _until(stub, up) == up
        redis_proc.kill()
        assert await _until(stub, down) == down
        redis_proc.start()
        assert await _until(stub, up) == up


async def test_feed_is_reported_but_not_required() -> None:
    """A stale feed turns aiots.dep.feed NOT_SERVING; readiness stays SERVING (a quiet market
    is not an outage). Status objects are the ingestion manager's shape."""

    class Stream:
        def __init__(self, last_ns: int) -> None:
            self.last_event_ns = last_ns

    class Status:
        def __init__(self, running: bool, last_ns: int) -> None:
            self.running, self.streams = running, [Stream(last_ns)]

    from grpc_health.v1 import health

    now = time.time_ns()
    st = Status(True, now - 10 * 1_000_000_000)
    servicer = health.aio.HealthServicer()
    dep = feed_dependency(lambda: st, stale_s=5.0)

    async def pg_up() -> bool:
        return True

    r = Readiness(servicer, ["svc"], [Dependency("postgres", pg_up), dep], interval_s=1.0, timeout_s=1.0)
    assert await r.check() is True
    assert r.up == {"postgres": True, "feed": False}
    st = Status(True, time.time_ns())
    await r.check()
    assert r.up["feed"] is True
    st = Status(False, 0)  # nothing collecting: nothing to be late
    await r.check()
    assert r.up["feed"] is True
