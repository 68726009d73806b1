"""Where the portfolio reads the market: live option quotes, underlying prices, betas.

:class:`QuoteBook` keeps the latest quote of every contract seen on the bus (``options:quotes``,
the same events the signals service tracks). :class:`LiveMarket` answers from the book and falls
back to the newest stored quote (a contract not quoted on the bus since this replica started),
takes underlying prices from the quote events, else the cache's price snapshot, else storage,
and computes betas to SPY from the stored daily bars (cached per New York day). The execution
model decides whether a quote is fresh enough to fill.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiots.core import conventions as cv
from aiots.services.portfolio.models import LiveQuote
from aiots.services.portfolio.store import PortfolioStore
from aiots.services.portfolio.valuation import beta

BENCHMARK = "SPY"


class MarketData(Protocol):
    """What the portfolio asks of the market (a scripted tape implements it in tests)."""

    async def quote(self, occ: str) -> LiveQuote | None:
        """The latest quote of the contract, or None."""

    async def contract_known(self, occ: str) -> bool:
        """True when the contract is listed (defined or quoted)."""

    async def beta(self, underlying: str, now_ns: int) -> float:
        """Beta of ``underlying`` to SPY (1.0 when unknown)."""


class QuoteBook:
    """Latest quote per OCC symbol (newer timestamps win; out-of-order updates are ignored)."""

    def __init__(self) -> None:
        self._q: dict[str, LiveQuote] = {}
        self._spot: dict[str, float] = {}
        self.latest_ns = 0

    def update(self, occ: str, underlying: str, q: LiveQuote) -> None:
        self.latest_ns = max(self.latest_ns, q.ts_ns)
        old = self._q.get(occ)
        if old is None or q.ts_ns >= old.ts_ns:
            self._q[occ] = q
        if math.isfinite(q.underlying_price) and q.underlying_price > 0:
            self._spot[underlying] = q.underlying_price

    def get(self, occ: str) -> LiveQuote | None:
        return self._q.get(occ)

    def spot(self, underlying: str) -> float:
        return self._spot.get(underlying, math.nan)

    def __len__(self) -> int:
        return len(self._q)


class MarketClock:
    """Order time for simulated and replayed feeds: the newest quote's time on the bus (the feed's
    market time, which a replayed session runs on), or the wall clock before any quote arrived."""

    def __init__(self, book: QuoteBook, wall: Callable[[], int] = time.time_ns) -> None:
        self.book = book
        self.wall = wall

    def __call__(self) -> int:
        return self.book.latest_ns or self.wall()


class LiveMarket:
    """:class:`MarketData` over the bus-fed book, the cache's prices and storage."""

    def __init__(
        self,
        book: QuoteBook,
        store: PortfolioStore,
        cached_price: Callable[[str], Awaitable[float]] | None = None,
        *,
        beta_days: int = 252,
        beta_min_days: int = 20,
    ) -> None:
        self.book = book
        self.store = store
        self.cached_price = cached_price
        self.beta_days = beta_days
        self.beta_min_days = beta_min_days
        self._betas: dict[tuple[str, dt.date], float] = {}

    async def quote(self, occ: str) -> LiveQuote | None:
        q = self.book.get(occ)
        if q is None:
            q = await self.store.latest_option_quote(occ)
        if q is None:
            return None
        if not (math.isfinite(q.underlying_price) and q.underlying_price > 0):
            und = cv.parse_occ(occ).underlying
            s = self.book.spot(und)
            if not math.isfinite(s) and self.cached_price is not None:
                s = await self.cached_price(und)
            if not math.isfinite(s):
                s = await self.store.latest_price(und)
            q = LiveQuote(q.bid, q.ask, q.ts_ns, q.bid_size, q.ask_size, s)
        return q

    async def contract_known(self, occ: str) -> bool:
        return self.book.get(occ) is not None or await self.store.contract_known(occ)

    async def beta(self, underlying: str, now_ns: int) -> float:
        if underlying == BENCHMARK:
            return 1.0
        key = (underlying, cv.ny_date(now_ns))
        b = self._betas.get(key)
        if b is None:
            a, s = await self.store.paired_daily_closes(underlying, BENCHMARK, self.beta_days)
            b = beta(a, s, self.beta_min_days)
            self._betas[key] = b
        return b
