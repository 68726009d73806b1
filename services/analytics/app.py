"""The analytics service process: gRPC AnalyticsService on port 8003 plus the live-state follower.

Uses the runtime's database pool, cache backend and bus; creates the pool (and the cache/bus)
from the settings when the runtime has none, and closes what it created on stop.
"""

from __future__ import annotations

import logging
from typing import Any

from aiots.services.analytics.service import AnalyticsServicer
from aiots.services.common.health import runtime_dependencies
from aiots.services.common.runtime import Runtime
from aiots.services.common.server import GrpcServer, ServiceRegistration, start_server

log = logging.getLogger(__name__)

SERVICE_NAME = "aiots.v1.AnalyticsService"


class AnalyticsApp:
    """AnalyticsService on ``settings.analytics.port`` (8003) or the given port (0: any free)."""

    name = "analytics"

    def __init__(self, rt: Runtime, port: int | None = None, *, live: bool = True) -> None:
        self.rt = rt
        self.cfg = rt.settings.analytics
        self._port = self.cfg.port if port is None else port
        self._live_enabled = live
        self._owned: list[Any] = []
        self.server: GrpcServer | None = None
        self.live: Any = None
        self.servicer: AnalyticsServicer | None = None

    @property
    def port(self) -> int:
        return self.server.port if self.server else self._port

    async def start(self) -> None:
        if self.rt.db is None:
            from aiots.services.storage.pool import create_pool

            self.rt.db = await create_pool(self.rt.settings)
            self._owned.append(("db", self.rt.db))
        if self.rt.cache is None:
            from aiots.services.cache.backends import create_cache_backend

            self.rt.cache = create_cache_backend(self.rt.settings)
            self._owned.append(("cache", self.rt.cache))
        if self._live_enabled:
            from aiots.services.analytics.live_state import LiveState

            if self.rt.bus is None:
                from aiots.services.bus.factory import create_bus

                self.rt.bus = create_bus(self.rt.settings)
                self._owned.append(("bus", self.rt.bus))
            self.live = LiveState(self.rt)
            await self.live.start()
        self.servicer = AnalyticsServicer(self.rt, self.live)
        self.server = await start_server(
            [ServiceRegistration.of(self.servicer)],
            host=self.cfg.host,
            port=self._port,
        )
        await self.server.watch(runtime_dependencies(self.rt), self.cfg)
        log.info("analytics service started", extra={"port": self.server.port})

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.set_serving(False)
        if self.live is not None:
            await self.live.stop()
        if self.server is not None:
            await self.server.server.stop(1.0)
        for kind, obj in reversed(self._owned):
            await obj.close()
            setattr(self.rt, kind, None)
        self._owned.clear()


async def create_app(rt: Runtime, *, port: int | None = None) -> AnalyticsApp:
    """Build (not start) the analytics service for the shared runtime."""
    return AnalyticsApp(rt, port)
