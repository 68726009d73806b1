"""Liveness and readiness over ``grpc.health.v1.Health``, one status per dependency.

Health service names a server reports (the gateway's ``/health`` reads them; keep them stable):

- ``""`` (the server as a whole): **liveness**. SERVING while the process runs; NOT_SERVING only
  once it is stopping.
- the full name of each gRPC service (e.g. ``aiots.v1.CacheService``): **readiness**. SERVING
  while every *required* dependency answers; NOT_SERVING while one does not. Envoy's active
  health check reads this name, so an unready replica stops receiving traffic. PostgreSQL is
  required wherever a pool is used; Redis only by the cache service (elsewhere the bus rides out
  an outage: the outbox keeps published events, consumers retry).
- ``aiots.dep.postgres``, ``aiots.dep.redis``, ``aiots.dep.feed``: one per dependency the
  service uses, SERVING while it answers its probe (``SELECT 1``, ``PING``, a recent feed event).
  The feed is informational (not required): a quiet market is not an outage.

:class:`Readiness` probes every ``readiness_interval_s`` (each probe bounded by
``readiness_timeout_s``), logs each change naming the dependency, and recovers by itself when
the dependency returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from grpc_health.v1 import health, health_pb2

from aiots.core.conventions import NS_PER_S
from aiots.services.common.runtime import Runtime

log = logging.getLogger(__name__)

DEP_PREFIX = "aiots.dep."
POSTGRES, REDIS, FEED = "postgres", "redis", "feed"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class Dependency:
    """A named dependency and its probe (True: up; False or an exception: down)."""

    name: str
    probe: Callable[[], Awaitable[bool]]
    required: bool = True

    @property
    def service_name(self) -> str:
        return DEP_PREFIX + self.name


def _pg_probe(pool: Any) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return bool(await pool.fetchval("SELECT 1") == 1)

    return probe


def runtime_dependencies(rt: Runtime, *, redis_required: bool = False) -> list[Dependency]:
    """PostgreSQL (required) when the runtime has a pool; Redis when the bus or the cache backend
    is Redis, required only where the service cannot answer without it (the cache service): a
    bus outage is ridden out by the outbox and the consumers' retries, so it must not take a
    service's reads out of the load balancer."""
    deps: list[Dependency] = []
    if rt.db is not None:
        deps.append(Dependency(POSTGRES, _pg_probe(rt.db)))
    redis_users: list[Any] = [
        x
        for x in (rt.bus, rt.cache)
        if x is not None and "redis" in (getattr(x, "backend", ""), getattr(x, "name", ""))
    ]
    if redis_users:

        async def redis_probe() -> bool:
            results = [bool(await x.ping()) for x in redis_users]
            return all(results)

        deps.append(Dependency(REDIS, redis_probe, required=redis_required))
    return deps


def feed_dependency(status: Callable[[], Any], stale_s: float) -> Dependency:
    """The feed is up while nothing is collecting or some stream had an event within ``stale_s``.

    ``status()`` returns an object with ``running`` and ``streams[].last_event_ns`` (the
    ingestion manager's status). Not required: readiness does not depend on it.
    """

    async def probe() -> bool:
        st = status()
        if not st.running:
            return True
        last = max((int(s.last_event_ns) for s in st.streams), default=0)
        return last > 0 and time.time_ns() - last <= stale_s * NS_PER_S

    return Dependency(FEED, probe, required=False)


class Readiness:
    """Probes dependencies and publishes their statuses and the readiness of ``services``."""

    def __init__(
        self,
        servicer: health.aio.HealthServicer,
        services: Sequence[str],
        deps: Sequence[Dependency],
        *,
        interval_s: float,
        timeout_s: float,
    ) -> None:
        self.servicer = servicer
        self.services = list(services)
        self.deps = list(deps)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.up: dict[str, bool] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def down(self) -> list[str]:
        """Required dependencies that are down now."""
        return [d.name for d in self.deps if d.required and not self.up.get(d.name, False)]

    async def _probe(self, dep: Dependency) -> bool:
        try:
            return bool(await asyncio.wait_for(dep.probe(), self.timeout_s))
        except Exception:  # down, whatever the client raised (timeouts included)
            return False

    async def check(self) -> bool:
        """Probe every dependency once and publish; True when ready."""
        results = await asyncio.gather(*(self._probe(d) for d in self.deps))
        for dep, ok in zip(self.deps, results, strict=True):
            before = self.up.get(dep.name)
            self.up[dep.name] = ok
            await self.servicer.set(dep.service_name, SERVING if ok else NOT_SERVING)
            if before is not None and before != ok:
                if ok:
                    log.info("dependency %s is back", dep.name, extra={"dependency": dep.name})
                else:
                    log.warning(
                        "dependency %s is down%s",
                        dep.name,
                        "; not ready" if dep.required else "",
                        extra={"dependency": dep.name},
                    )
        ready = not self.down
        for name in self.services:
            await self.servicer.set(name, SERVING if ready else NOT_SERVING)
        return ready

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.check()

    async def start(self) -> None:
        """Probe now (statuses are right before the first request), then every interval."""
        await self.check()
        self._task = asyncio.create_task(self._loop(), name="readiness")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
