"""The portfolio service process: quote book and signal follower on the bus, gRPC server.

Replicas: every replica keeps the whole quote book (a consumer group of its own on
``options:quotes``); signal events go to one shared group (``portfolio-follow``), so one replica
acts on each, and the follower's idempotent client ids make a redelivery harmless. All state
that matters is in PostgreSQL, so any replica answers any account the same.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiots.services.bus.consume import handle_each
from aiots.services.cache.backends.base import Keyspace
from aiots.services.common.ports import Delivery
from aiots.services.common.runtime import Runtime
from aiots.services.common.server import GrpcServer, ServiceRegistration, start_server
from aiots.services.portfolio import conversions as conv
from aiots.services.portfolio.book import Follower, Portfolio, PortfolioConfig
from aiots.services.portfolio.market import LiveMarket, MarketClock, QuoteBook
from aiots.services.portfolio.service import PortfolioServicer
from aiots.services.portfolio.store import PortfolioStore
from aiots.services.portfolio.valuation import Greeker
from aiots.v1 import cache_pb2, events_pb2

log = logging.getLogger(__name__)

OPTION_TOPIC = "options:quotes"
SIGNAL_TOPIC = "signals"
FOLLOW_GROUP = "portfolio-follow"
FOLLOW_SWEEP_S = 30.0  # how often exits refused earlier (or missed) are retried at the live quote
STOP_TASKS_TIMEOUT_S = 2.0
STOP_GRACE_S = 1.0


class PortfolioApp:
    """Implements :class:`aiots.services.common.runtime.ServiceApp`."""

    name = "portfolio"

    def __init__(self, rt: Runtime, port: int | None = None) -> None:
        s = rt.settings
        if rt.db is None:
            raise RuntimeError("portfolio needs PostgreSQL: start it through aiots.services.stack")
        self.rt = rt
        self.cfg = s.portfolio
        self._port = self.cfg.port if port is None else port
        self.replica = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self.store = PortfolioStore(rt.db)
        self.book = QuoteBook()
        self._keys = Keyspace(s.redis.namespace)
        self.market = LiveMarket(
            self.book,
            self.store,
            self._cached_price,
            beta_days=self.cfg.beta_days,
            beta_min_days=self.cfg.beta_min_days,
        )
        self.portfolio = Portfolio(
            self.store,
            self.market,
            s.execution.model(),
            Greeker(rate=s.market.risk_free_rate, american_method=self.cfg.american_method),
            config=PortfolioConfig(
                max_accounts_per_owner=self.cfg.max_accounts_per_subject,
                mark_interval_s=self.cfg.mark_interval_s,
                poll_interval_s=self.cfg.poll_interval_s,
            ),
            dividend_yields={k.upper(): v for k, v in s.market.dividend_yields.items()},
            clock=self._clock(),
        )
        self.follower = Follower(self.portfolio)
        self.servicer = PortfolioServicer(
            self.portfolio,
            local_subject=self.cfg.local_subject,
            signal_lookup=self.store.signal_payload,
            max_streams_per_subject=self.cfg.max_streams_per_subject,
        )
        self.server: GrpcServer | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def _clock(self) -> Callable[[], int]:
        """Wall time for a live feed; the feed's market time for the simulator or a replay."""
        kind = self.cfg.clock
        if kind == "auto":
            kind = "wall" if self.rt.feed.kind == "live" else "market"
        return time.time_ns if kind == "wall" else MarketClock(self.book)

    @property
    def port(self) -> int:
        return self.server.port if self.server else self._port

    async def _cached_price(self, symbol: str) -> float:
        """The cache's price snapshot of ``symbol``: last trade, else mid; NaN when absent."""
        if self.rt.cache is None:
            return math.nan
        try:
            raw = await self.rt.cache.get(self._keys.key("price", symbol))
        except Exception:
            log.warning("portfolio: cache unavailable for %s", symbol, exc_info=True)
            return math.nan
        if raw is None:
            return math.nan
        p = cache_pb2.StockPrice.FromString(raw)
        if p.last > 0:
            return p.last
        return 0.5 * (p.bid + p.ask) if p.bid > 0 and p.ask > 0 else math.nan

    async def start(self) -> None:
        bus = self.rt.need_bus("portfolio")
        symbols = self.rt.settings.symbols
        await bus.ensure_group(SIGNAL_TOPIC, symbols, group=FOLLOW_GROUP)
        quote_group = f"portfolio-quotes-{self.replica}"
        self._spawn(
            self._consume(
                bus.consume(OPTION_TOPIC, symbols, group=quote_group, consumer=self.replica),
                quote_group,
                self._on_quote,
            )
        )
        self._spawn(
            self._consume(
                bus.consume(SIGNAL_TOPIC, symbols, group=FOLLOW_GROUP, consumer=self.replica),
                FOLLOW_GROUP,
                self._on_signal,
            )
        )
        self._spawn(self._sweep())
        self.server = await start_server([ServiceRegistration.of(self.servicer)], host=self.cfg.host, port=self._port)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(FOLLOW_SWEEP_S)
            try:
                await self.follower.sweep()
            except Exception:
                log.exception("portfolio: follow sweep failed")

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.set_serving(False)
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=STOP_TASKS_TIMEOUT_S)
            for t in pending:
                log.warning("portfolio: background task did not stop in time: %r", t)
        if self.server is not None:
            await self.server.server.stop(STOP_GRACE_S)

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _consume(
        self, it: AsyncIterator[Delivery], group: str, handle: Callable[[bytes], Awaitable[None]]
    ) -> None:
        await handle_each(self.rt.need_bus("portfolio"), it, group, handle, "portfolio")

    async def _on_quote(self, payload: bytes) -> None:
        occ, und, q = conv.quote_from_event(events_pb2.OptionQuoteEvent.FromString(payload))
        self.book.update(occ, und, q)

    async def _on_signal(self, payload: bytes) -> None:
        ev = events_pb2.SignalEvent.FromString(payload)
        await self.follower.on_signal(conv.signal_view(ev.signal))


async def create_app(rt: Runtime, *, port: int | None = None) -> PortfolioApp:
    """Build (not start) the portfolio service for the shared runtime."""
    return PortfolioApp(rt, port)
