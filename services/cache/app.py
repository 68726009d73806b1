"""The cache service process: backend + bus from the runtime, price watch hub, gRPC server.

Uses ``rt.cache``/``rt.bus`` when the runtime has them (``aiots up`` shares one of each between
the services of the embedded mode); otherwise creates them from the settings (Redis when
REDIS_URL is set), stores them on the runtime and closes them on stop.
"""

from __future__ import annotations

import logging

from aiots.services.bus.factory import create_bus
from aiots.services.cache.analytics_store import AnalyticsStore
from aiots.services.cache.backends import create_cache_backend
from aiots.services.cache.prices import price_book_for
from aiots.services.cache.service import CacheServicer
from aiots.services.cache.watch import PriceWatchHub
from aiots.services.common.health import runtime_dependencies
from aiots.services.common.runtime import Runtime
from aiots.services.common.server import GrpcServer, ServiceRegistration, start_server

log = logging.getLogger(__name__)


class CacheApp:
    """gRPC CacheService on ``settings.cache.port`` (8001) or the given port (0: any free)."""

    name = "cache"

    def __init__(self, rt: Runtime, port: int | None = None) -> None:
        self.rt = rt
        self.cfg = rt.settings.cache
        self._port = self.cfg.port if port is None else port
        self._owned: list[object] = []
        self.server: GrpcServer | None = None
        self.hub: PriceWatchHub | None = None

    @property
    def port(self) -> int:
        return self.server.port if self.server else self._port

    async def start(self) -> None:
        if self.rt.cache is None:
            self.rt.cache = create_cache_backend(self.rt.settings)
            self._owned.append(self.rt.cache)
        if self.rt.bus is None:
            self.rt.bus = create_bus(self.rt.settings)
            self._owned.append(self.rt.bus)
        prices = price_book_for(self.rt)
        self.hub = PriceWatchHub(self.rt.bus, self.cfg.price_channel, self.cfg.watch_queue_size)
        await self.hub.start()
        store = AnalyticsStore(self.rt.cache, prices.keyspace, self.cfg)
        servicer = CacheServicer(self.cfg, self.rt.cache, prices, self.hub, store)
        self.server = await start_server([ServiceRegistration.of(servicer)], host=self.cfg.host, port=self._port)
        await self.server.watch(runtime_dependencies(self.rt, redis_required=True), self.cfg)
        log.info("cache service started", extra={"port": self.server.port, "backend": self.rt.cache.name})

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.set_serving(False)
        if self.hub is not None:
            await self.hub.stop()
        if self.server is not None:
            await self.server.server.stop(1.0)
        for obj in reversed(self._owned):
            await obj.close()  # type: ignore[attr-defined]
        if self._owned:
            self.rt.cache = self.rt.cache if self.rt.cache not in self._owned else None
            self.rt.bus = self.rt.bus if self.rt.bus not in self._owned else None
            self._owned.clear()


async def create_app(rt: Runtime, *, port: int | None = None) -> CacheApp:
    """Build (not start) the cache service for the shared runtime."""
    return CacheApp(rt, port)
