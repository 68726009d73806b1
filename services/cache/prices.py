"""Live price snapshots: the :class:`PriceBook` the ingestion pipeline feeds (the WatchPrices
fan-out is :mod:`aiots.services.cache.watch`).

Ingestion calls, per normalised record (prices in dollars, times int64 ns UTC)::

    await prices.on_trade(symbol, ts_ns, price, size)
    await prices.on_quote(symbol, ts_ns, bid, ask, bid_size, ask_size)
    await prices.on_bar(symbol, ts_ns, open_, high, low, close, volume)   # feeds without trades
    await prices.set_prev_close(symbol, price)

Each call updates the symbol's snapshot, stores it as ``StockPrice`` protobuf bytes under
``<ns>:v1:price:<SYMBOL>`` and broadcasts it on the bus channel ``CacheSettings.price_channel``
so WatchPrices on every replica sees it. Session fields (open/high/low/volume) reset when an
update falls in a later America/New_York calendar day than the snapshot; ``prev_close`` then
becomes the previous session's close: its last price in regular hours (XNYS calendar, early
closes included), else its last price. Sources that know the official close (the simulator, at
each session start) set it with :meth:`PriceBook.set_prev_close`. Updates
older than the snapshot (out of order) still count towards high/low/volume but do not move
``last``/``bid``/``ask``. ``on_bar`` and ``on_trade`` both add volume: feed one or the other.
When the cache or bus is away the in-memory snapshot is still updated and the call returns
False (never raises ``Unavailable``): the next successful update writes the latest state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from aiots.core import conventions as cv
from aiots.services.cache.backends.base import CacheBackend, Keyspace
from aiots.services.common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from aiots.services.common.runtime import Runtime
from aiots.services.common.validation import require_ticker

log = logging.getLogger(__name__)

PRICE_KIND = "price"


@dataclass(frozen=True, slots=True)
class PriceSnapshot:
    """Latest prices of one ticker in dollars; ``ts_ns`` is the latest update (ns UTC)."""

    symbol: str
    last: float = 0.0
    bid: float = 0.0
    ask: float = 0.0
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    prev_close: float = 0.0
    volume: float = 0.0
    ts_ns: int = 0

    @property
    def change(self) -> float:
        """last - prev_close (0 until both are known)."""
        return self.last - self.prev_close if self.last and self.prev_close else 0.0

    @property
    def change_pct(self) -> float:
        """100 * change / prev_close (0 until both are known)."""
        return 100.0 * self.change / self.prev_close if self.last and self.prev_close else 0.0


def session_end_ns(ts_ns: int) -> int:
    """Next America/New_York midnight after ``ts_ns`` (the end of its calendar session day)."""
    return cv.ny_midnight_ns(cv.ny_date(ts_ns) + timedelta(days=1))


def normalize_symbol(symbol: str, field: str = "symbol") -> str:
    """Upper-cased ticker (``conventions.TICKER_RULE``); InvalidArgument naming ``field`` otherwise."""
    return require_ticker(field, symbol)


def _check_price(field: str, value: float, *, allow_zero: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise InvalidArgument(field, f"must be a finite number {bound} dollars, got {value!r}")


def _check_size(field: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise InvalidArgument(field, f"must be a finite number >= 0, got {value!r}")


def _add_ohlcv(
    open_: float, high: float, low: float, close: float, volume: float
) -> Callable[[PriceSnapshot, bool], PriceSnapshot]:
    """The update for a bar (a trade is the bar O=H=L=C=price): ``last`` moves only when newest."""

    def apply(s: PriceSnapshot, newest: bool) -> PriceSnapshot:
        return replace(
            s,
            last=close if newest or not s.last else s.last,
            open=s.open or open_,
            high=max(s.high, high),
            low=min(s.low, low) if s.low else low,
            volume=s.volume + volume,
        )

    return apply


class PriceBook:
    """Snapshots per ticker in a cache backend, each change broadcast on the bus."""

    def __init__(
        self,
        cache: CacheBackend,
        bus: Any | None,
        *,
        keyspace: Keyspace,
        channel: str,
        tracked: Sequence[str] = (),
        ttl_s: float | None = None,
        encode: Callable[[PriceSnapshot], Any] | None = None,
        decode: Callable[[bytes], PriceSnapshot] | None = None,
    ) -> None:
        if encode is None or decode is None:
            from aiots.services.cache import convert

            encode = encode or convert.price_to_proto
            decode = decode or convert.price_from_bytes
        self.cache = cache
        self.bus = bus
        self.keyspace = keyspace
        self.channel = channel
        self.ttl_s = ttl_s
        self._encode = encode
        self._decode = decode
        self._tracked = [normalize_symbol(s) for s in tracked]
        self._snaps: dict[str, PriceSnapshot] = {}
        self._session_end: dict[str, int] = {}
        self._regular_last: dict[str, tuple[int, float]] = {}  # (ts_ns, price) of the session's last regular print
        self._locks: dict[str, asyncio.Lock] = {}
        self.write_failures = 0

    def key(self, symbol: str) -> str:
        """``<ns>:v1:price:<SYMBOL>``."""
        key: str = self.keyspace.key(PRICE_KIND, symbol)
        return key

    @property
    def tracked(self) -> list[str]:
        """Configured tickers plus every ticker updated through this book."""
        extra = sorted(s for s in self._snaps if s not in self._tracked)
        return [*self._tracked, *extra]

    # --- writes --------------------------------------------------------------------------

    def _lock(self, sym: str) -> asyncio.Lock:
        """One lock per ticker: an update's read-modify-write of the snapshot is not interleaved."""
        lock = self._locks.get(sym)
        if lock is None:
            lock = self._locks[sym] = asyncio.Lock()
        return lock

    async def _load(self, symbol: str) -> PriceSnapshot:
        snap = self._snaps.get(symbol)
        if snap is not None:
            return snap
        raw = None
        with contextlib.suppress(Unavailable):
            raw = await self.cache.get(self.key(symbol))
        snap = self._decode(raw) if raw else PriceSnapshot(symbol)
        self._snaps[symbol] = snap
        if snap.ts_ns:
            self._session_end[symbol] = session_end_ns(snap.ts_ns)
        return snap

    def _roll(self, snap: PriceSnapshot, ts_ns: int) -> PriceSnapshot:
        """Start a new session when ``ts_ns`` is past the snapshot's session day."""
        end = self._session_end.get(snap.symbol)
        if end is None or ts_ns < end:
            if end is None:
                self._session_end[snap.symbol] = session_end_ns(ts_ns)
            return snap
        self._session_end[snap.symbol] = session_end_ns(ts_ns)
        regular = self._regular_last.pop(snap.symbol, None)
        close = regular[1] if regular else snap.last
        return replace(snap, prev_close=close or snap.prev_close, open=0.0, high=0.0, low=0.0, volume=0.0)

    def _note_regular(self, symbol: str, ts_ns: int, price: float) -> None:
        """Remember the latest regular-hours price of the session (its close, once it ends)."""
        last = self._regular_last.get(symbol)
        if (last is None or ts_ns >= last[0]) and cv.calendar().is_regular_hours(ts_ns):
            self._regular_last[symbol] = (ts_ns, price)

    async def _update(self, symbol: str, ts_ns: int, fn: Callable[[PriceSnapshot, bool], PriceSnapshot]) -> bool:
        if ts_ns <= 0:
            raise InvalidArgument("ts_ns", f"must be > 0 ns since the epoch (UTC), got {ts_ns}")
        sym = normalize_symbol(symbol)
        async with self._lock(sym):
            snap = self._roll(await self._load(sym), ts_ns)
            newest = ts_ns >= snap.ts_ns
            snap = fn(snap, newest)
            if newest:
                snap = replace(snap, ts_ns=ts_ns)
            self._snaps[sym] = snap
            return await self._write(snap)

    async def _write(self, snap: PriceSnapshot) -> bool:
        msg = self._encode(snap)
        try:
            await self.cache.set(self.key(snap.symbol), msg.SerializeToString(), self.ttl_s)
            if self.bus is not None:
                await self.bus.broadcast(self.channel, msg)
        except Unavailable as exc:
            self.write_failures += 1
            if self.write_failures in (1, 10, 100) or self.write_failures % 1000 == 0:
                log.warning("price snapshot %s not stored (%d failures): %s", snap.symbol, self.write_failures, exc)
            return False
        return True

    async def on_trade(self, symbol: str, ts_ns: int, price: float, size: float) -> bool:
        """A trade print: last, session open/high/low, volume += size."""
        _check_price("price", price)
        _check_size("size", size)
        ok = await self._update(symbol, ts_ns, _add_ohlcv(price, price, price, price, size))
        self._note_regular(normalize_symbol(symbol), ts_ns, price)
        return ok

    async def on_quote(
        self, symbol: str, ts_ns: int, bid: float, ask: float, bid_size: float = 0.0, ask_size: float = 0.0
    ) -> bool:
        """A top-of-book change (0 = no bid/ask on that side)."""
        _check_price("bid", bid, allow_zero=True)
        _check_price("ask", ask, allow_zero=True)
        _check_size("bid_size", bid_size)
        _check_size("ask_size", ask_size)

        def apply(s: PriceSnapshot, newest: bool) -> PriceSnapshot:
            return replace(s, bid=bid, ask=ask) if newest else s

        return await self._update(symbol, ts_ns, apply)

    async def on_bar(
        self, symbol: str, ts_ns: int, open_: float, high: float, low: float, close: float, volume: float
    ) -> bool:
        """An OHLCV bar starting at ``ts_ns`` (for feeds without trades)."""
        for name, v in (("open", open_), ("high", high), ("low", low), ("close", close)):
            _check_price(name, v)
        _check_size("volume", volume)
        if not low <= min(open_, close) <= max(open_, close) <= high:
            raise InvalidArgument("bar", f"needs low <= open, close <= high, got O={open_} H={high} L={low} C={close}")
        ok = await self._update(symbol, ts_ns, _add_ohlcv(open_, high, low, close, volume))
        self._note_regular(normalize_symbol(symbol), ts_ns, close)
        return ok

    async def set_prev_close(self, symbol: str, price: float, ts_ns: int | None = None) -> bool:
        """The previous session's close (from the daily bars / statistics feed, or the simulator at
        each session start); ``ts_ns`` in the new session rolls the session fields first."""
        _check_price("price", price)
        sym = normalize_symbol(symbol)
        async with self._lock(sym):
            snap = replace(await self._load(sym), prev_close=price)
            if ts_ns is not None and ts_ns > snap.ts_ns:
                snap = replace(self._roll(snap, ts_ns), prev_close=price, ts_ns=ts_ns)
            self._snaps[sym] = snap
            return await self._write(snap)

    # --- reads ---------------------------------------------------------------------------

    async def get(self, symbol: str) -> PriceSnapshot:
        """The stored snapshot; NotFound names the symbol and the tracked ones."""
        return self._decode(await self.get_bytes(symbol))

    async def get_bytes(self, symbol: str) -> bytes:
        """The stored ``StockPrice`` bytes (the hot read path skips decoding); NotFound as :meth:`get`."""
        sym = normalize_symbol(symbol)
        raw: bytes | None = await self.cache.get(self.key(sym))
        if raw is None:
            raise NotFound(
                f"no price snapshot for symbol {sym!r}; tracked symbols: {', '.join(self.tracked) or '(none)'}",
                reason="SYMBOL_NOT_FOUND",
                metadata={"symbol": sym},
            )
        return raw

    async def get_many(self, symbols: Sequence[str]) -> tuple[list[PriceSnapshot], list[str]]:
        """Snapshots in request order (one MGET) and the symbols with none."""
        syms = [normalize_symbol(s, f"symbols[{i}]") for i, s in enumerate(symbols)]
        raws = await self.cache.get_many([self.key(s) for s in syms])
        found: list[PriceSnapshot] = []
        missing: list[str] = []
        for s, raw in zip(syms, raws, strict=True):
            if raw is None:
                missing.append(s)
            else:
                found.append(self._decode(raw))
        return found, missing


def price_book_for(rt: Runtime) -> PriceBook:
    """The runtime's shared :class:`PriceBook` (created on first use from ``rt.cache``/``rt.bus``).

    Ingestion and the cache service of one process use the same instance (``rt.component``).
    """
    book = rt.component(PriceBook)
    if book is not None:
        return book
    if rt.cache is None:
        raise FailedPrecondition("runtime has no cache backend yet (start the cache service or set rt.cache)")
    cfg = rt.settings.cache
    book = PriceBook(
        rt.cache,
        rt.bus,
        keyspace=Keyspace(rt.settings.redis.namespace),
        channel=cfg.price_channel,
        tracked=rt.settings.symbols,
        ttl_s=float(cfg.price_ttl_s) if cfg.price_ttl_s else None,
    )
    return rt.register(book)
