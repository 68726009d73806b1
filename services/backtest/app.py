"""The backtest service process: a gRPC server over :class:`BacktestServicer` (runs stored in PostgreSQL)."""

from __future__ import annotations

import logging

from aiots.services.backtest.api import live_settings
from aiots.services.backtest.service import SERVICE_NAME, BacktestServicer, add_to_server
from aiots.services.backtest.store import BacktestStore
from aiots.services.common.runtime import Runtime
from aiots.services.common.server import GrpcServer, ServiceRegistration, start_server

log = logging.getLogger(__name__)
STOP_GRACE_S = 1.0


class BacktestApp:
    """Implements :class:`aiots.services.common.runtime.ServiceApp`."""

    name = "backtest"

    def __init__(self, rt: Runtime, port: int | None = None) -> None:
        if rt.db is None:
            raise RuntimeError("backtest needs PostgreSQL: start it through aiots.services.stack")
        self.rt = rt
        self.cfg = rt.settings.backtest
        self._port = self.cfg.port if port is None else port
        self.servicer = BacktestServicer(
            BacktestStore(rt.db),
            self.cfg.data_roots,
            local_subject=self.cfg.local_subject,
            max_concurrent=self.cfg.max_concurrent_runs,
            settings=live_settings(rt.settings),
        )
        self.server: GrpcServer | None = None

    @property
    def port(self) -> int:
        return self.server.port if self.server else self._port

    async def start(self) -> None:
        self.server = await start_server(
            [ServiceRegistration(SERVICE_NAME, add_to_server, self.servicer)], host=self.cfg.host, port=self._port
        )

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.set_serving(False)
            await self.server.server.stop(STOP_GRACE_S)


async def create_app(rt: Runtime, *, port: int | None = None) -> BacktestApp:
    """Build (not start) the backtest service for the shared runtime."""
    return BacktestApp(rt, port)
