"""The ingestion service process: storage pool + writer, sources, gRPC IngestionService (8002).

Uses ``rt.db`` (asyncpg pool) / ``rt.bus`` / the runtime's PriceBook when present (``aiots up``
shares them); otherwise opens the pool itself (embedded PostgreSQL without DATABASE_URL,
migrations applied at start-up). With ``ingestion.autostart`` the default source starts
collecting every configured symbol: the simulator (after writing its seeded history once) when
there is no DATABENTO_API_KEY, else Databento Live. With the Redis bus the replicas share the
collection jobs through a consumer group (:mod:`aiots.services.ingestion.jobs`): autostart is an
idempotent StartCollection, so N replicas write one job that one of them runs.
"""

from __future__ import annotations

import logging
from typing import Any

from aiots.services.common.health import feed_dependency, runtime_dependencies
from aiots.services.common.runtime import Runtime
from aiots.services.common.server import GrpcServer, ServiceRegistration, start_server
from aiots.services.ingestion.manager import IngestionManager
from aiots.services.ingestion.service import SERVICE_NAME, IngestionServicer, add_to_server
from aiots.services.storage.pool import create_pool, resolve_dsn

log = logging.getLogger(__name__)


class IngestionApp:
    """gRPC IngestionService on ``settings.ingestion.port`` or the given port (0: any free)."""

    name = "ingestion"

    def __init__(self, rt: Runtime, port: int | None = None) -> None:
        self.rt = rt
        self.cfg = rt.settings.ingestion
        self._port = self.cfg.port if port is None else port
        self.server: GrpcServer | None = None
        self.manager: IngestionManager | None = None
        self._own_pool = False

    @property
    def port(self) -> int:
        return self.server.port if self.server else self._port

    def _prices(self) -> Any:
        if self.rt.cache is None:
            return None
        try:
            from aiots.services.cache.prices import price_book_for

            return price_book_for(self.rt)
        except Exception:  # the cache is optional for ingestion
            log.warning("no price book; latest prices will not be cached")
            return None

    async def start(self) -> None:
        dsn = self.rt.database_dsn or await resolve_dsn(self.rt.settings)
        if self.rt.db is None:
            self.rt.db = await create_pool(self.rt.settings, dsn=dsn)
            self._own_pool = True
        self.manager = IngestionManager(self.rt.settings, self.rt.db, dsn, bus=self.rt.bus, prices=self._prices())
        await self.manager.start()
        servicer = IngestionServicer(self.manager, self.rt.db)
        self.server = await start_server(
            [ServiceRegistration(SERVICE_NAME, add_to_server, servicer)], host=self.cfg.host, port=self._port
        )
        manager = self.manager
        feed_dep = feed_dependency(manager.feed_status, self.cfg.feed_stale_s)
        await self.server.watch([*runtime_dependencies(self.rt), feed_dep], self.cfg)
        if self.cfg.autostart:
            feed = self.rt.feed
            if feed.kind == "replay":
                await self.manager.start_replay(list(feed.replay_files), feed.speed)
            else:
                if feed.kind == "simulator" and self.rt.settings.simulated_feed:
                    await self.manager.seed()
                await self.manager.start_collection([], [])
        log.info("ingestion service started", extra={"port": self.server.port})

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.set_serving(False)
        if self.manager is not None:
            await self.manager.stop()
        if self.server is not None:
            await self.server.server.stop(1.0)
        if self._own_pool and self.rt.db is not None:
            await self.rt.db.close()
            self.rt.db = None


async def create_app(rt: Runtime, *, port: int | None = None) -> IngestionApp:
    """Build (not start) the ingestion service for the shared runtime."""
    return IngestionApp(rt, port)
