"""Readiness follows the required dependencies only; each dependency has its own status; a probe
that raises or hangs counts as down; the feed is informational. Oracle: the statuses a real
grpc_health HealthServicer holds after each check (hand-derived expectations)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from grpc_health.v1 import health, health_pb2

from aiots.core.conventions import NS_PER_S
from aiots.services.common.health import Dependency, Readiness, feed_dependency

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


async def _status(servicer: health.aio.HealthServicer, name: str) -> int:
    resp = await servicer.Check(health_pb2.HealthCheckRequest(service=name), None)
    return int(resp.status)


async def test_readiness_follows_required_dependencies() -> None:
    state = {"pg": True, "redis": True}

    async def pg() -> bool:
        return state["pg"]

    async def redis() -> bool:
        if not state["redis"]:
            raise ConnectionError("refused")
        return True

    async def hangs() -> bool:
        await asyncio.sleep(10)
        return True

    servicer = health.aio.HealthServicer()
    deps = [
        Dependency("postgres", pg),
        Dependency("redis", redis, required=False),
        Dependency("slow", hangs, required=False),
    ]
    r = Readiness(servicer, ["aiots.v1.X"], deps, interval_s=60, timeout_s=0.05)
    assert await r.check() is True
    assert await _status(servicer, "aiots.dep.slow") == NOT_SERVING  # timed out: down, not ready-blocking
    state["redis"] = False
    assert await r.check() is True and await _status(servicer, "aiots.dep.redis") == NOT_SERVING
    state["pg"] = False
    assert await r.check() is False and r.down == ["postgres"]
    assert await _status(servicer, "aiots.v1.X") == NOT_SERVING
    state["pg"] = True
    assert await r.check() is True and await _status(servicer, "aiots.v1.X") == SERVING


async def test_feed_is_up_when_idle_or_recent() -> None:
    now = time.time_ns()
    idle = feed_dependency(lambda: SimpleNamespace(running=False, streams=[]), 30)
    fresh = feed_dependency(lambda: SimpleNamespace(running=True, streams=[SimpleNamespace(last_event_ns=now)]), 30)
    stale = feed_dependency(
        lambda: SimpleNamespace(running=True, streams=[SimpleNamespace(last_event_ns=now - 60 * NS_PER_S)]), 30
    )
    assert (await idle.probe(), await fresh.probe(), await stale.probe()) == (True, True, False)
    assert not idle.required and idle.service_name == "aiots.dep.feed"
