"""Data access for analytics: the storage query API, data-version probes and a cache-aside helper.

Data version: the newest stored event for what a request reads (bars of a symbol, quotes of an
underlying's chain). It is part of every cache key, so new data makes old entries unreachable
(they expire by TTL) and a repeated query within the TTL is served from the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

from aiots.core import conventions as cv
from aiots.services.cache.backends.base import CacheBackend
from aiots.services.cache.cache_aside import CacheAside
from aiots.services.common.telemetry import metrics
from aiots.services.storage import queries

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY_PREFIX = "aiots:v1:analytics"

_BAR_VERSION_SQL = {
    "1d": "SELECT max(ts_event) FROM bars_1d WHERE symbol = $1",
    "intraday": "SELECT max(ts_event) FROM bars_1m WHERE symbol = $1",
}


async def bars_version(pool: Any, symbol: str, interval: str) -> int:
    """ns of the newest stored bar the interval reads from (0 when none)."""
    sql = _BAR_VERSION_SQL["1d" if interval == "1d" else "intraday"]
    v = await pool.fetchval(sql, symbol)
    return int(v or 0)


async def chain_version(pool: Any, underlying: str) -> int:
    """ns of the newest stored option quote of ``underlying`` (0 when none)."""
    v = await pool.fetchval("SELECT max(ts_event) FROM option_quotes WHERE underlying = $1", underlying)
    return int(v or 0)


async def symbol_known(pool: Any, symbol: str) -> bool:
    """True when the symbol is a known instrument or has any stored bars."""
    if symbol in await queries.known_symbols(pool):
        return True
    for table in ("bars_1d", "bars_1m"):
        if await pool.fetchval(f"SELECT 1 FROM {table} WHERE symbol = $1 LIMIT 1", symbol):
            return True
    return False


async def underlying_has_options(pool: Any, underlying: str) -> bool:
    """True when any option contract of ``underlying`` is known."""
    return bool(await pool.fetchval("SELECT 1 FROM instruments WHERE underlying = $1 AND kind = 2 LIMIT 1", underlying))


def count_cache_get(result: str) -> None:
    """``aiots_cache_requests_total{op="get", result}``: result is hit, miss or error."""
    metrics.cache_requests.add(1, {"op": "get", "result": result})


async def metered_get(backend: Any, key: str) -> bytes | None:
    """``backend.get(key)``, counted as a hit, a miss or an error (re-raised)."""
    try:
        raw: bytes | None = await backend.get(key)
    except Exception:
        count_cache_get("error")
        raise
    count_cache_get("hit" if raw is not None else "miss")
    return raw


class MeteredBackend:
    """A cache backend whose reads (``get``) are counted (see :func:`metered_get`); the rest delegates."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    async def get(self, key: str) -> bytes | None:
        return await metered_get(self._backend, key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


class ResultCache:
    """Cache-aside (``aiots.services.cache.cache_aside.CacheAside``: single-flight, jittered TTL) over
    the runtime's cache backend, its reads counted in ``aiots_cache_requests_total``. Without a
    backend everything is computed and nothing stored."""

    def __init__(self, backend: Any, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.aside = CacheAside(cast(CacheBackend, MeteredBackend(backend))) if backend is not None else None

    @staticmethod
    def key(kind: str, request_text: str, version: int) -> str:
        digest = hashlib.blake2b(request_text.encode(), digest_size=16).hexdigest()
        return f"{KEY_PREFIX}:{kind}:{version}:{digest}"

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[bytes]]) -> tuple[bytes, bool]:
        """(value, from_cache); from_cache is True when this caller did not run ``compute``."""
        if self.aside is None:
            return await compute(), False
        ran = False

        async def run() -> bytes:
            nonlocal ran
            ran = True
            return await compute()

        value = await self.aside.get_or_compute(key, self.ttl_s, run)
        return value, not ran


class VersionedCache:
    """In-process LRU of computed values keyed by (key, data version), with single-flight.

    Holds what is expensive to rebuild but cheap to keep: the bars a query reads (a storage round
    trip of up to ``max_lookback`` rows) and a chain snapshot's solved IVs/Greeks. A new data version
    replaces the entry; concurrent misses on one key share one computation. At most ``entries``
    values are kept (least recently used evicted).
    """

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._values: OrderedDict[Hashable, tuple[int, Any]] = OrderedDict()
        self._inflight: dict[tuple[Hashable, int], asyncio.Future[Any]] = {}
        self.hits = 0
        self.misses = 0

    def peek(self, key: Hashable, version: int) -> Any | None:
        """The value kept for ``key`` at ``version`` (a hit), or None; never computes."""
        got = self._values.get(key)
        if got is None or got[0] != version:
            return None
        self._values.move_to_end(key)
        self.hits += 1
        return got[1]

    def put(self, key: Hashable, version: int, value: Any) -> None:
        """Keep ``value`` as ``key`` at ``version`` (the least recently used beyond ``entries`` go)."""
        self._values[key] = (version, value)
        self._values.move_to_end(key)
        while len(self._values) > self.entries:
            self._values.popitem(last=False)

    async def get(self, key: Hashable, version: int, make: Callable[[], Awaitable[T]]) -> T:
        """The value of ``key`` at ``version``, computing it (once across concurrent callers) if absent.

        If the caller computing it is cancelled, a waiting caller computes it instead.
        """
        while True:
            got = self.peek(key, version)
            if got is not None:
                return cast(T, got)
            fut = self._inflight.get((key, version))
            if fut is None:
                break
            try:
                return cast(T, await asyncio.shield(fut))
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not fut.cancelled() or (task is not None and task.cancelling()):
                    raise  # we were cancelled ourselves
        self.misses += 1
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key, version] = fut
        try:
            value = await make()
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved here: waiters re-raise it, no "never retrieved" warning
            raise
        finally:
            self._inflight.pop((key, version), None)
        fut.set_result(value)
        self.put(key, version, value)
        return value


_SPOT_TS_SQL = (
    "SELECT ts_event FROM trades WHERE symbol = $1 ORDER BY ts_event DESC LIMIT 1",
    "SELECT ts_event FROM bars_1m WHERE symbol = $1 ORDER BY ts_event DESC LIMIT 1",
    "SELECT ts_event FROM bars_1d WHERE symbol = $1 ORDER BY ts_event DESC LIMIT 1",
)


async def spot_ts(pool: Any, symbol: str) -> int:
    """ns of the price ``queries.latest_price`` returns (same order: trade, 1m bar, daily bar); 0 if none.

    A bar's price is its close: a 1-minute bar's time is its open plus a minute, a daily bar's
    the close of its session.
    """
    for i, sql in enumerate(_SPOT_TS_SQL):
        v = await pool.fetchval(sql, symbol.upper())
        if v is not None:
            if i == 1:
                return int(v) + int(cv.NS_PER_MIN)
            if i == 2:
                return int(cv.expiry_ns(cv.ny_date(int(v))))
            return int(v)
    return 0


async def last_trade_ts(pool: Any, occ: list[str], since_ns: int) -> dict[str, int]:
    """ns of each contract's latest trade at or after ``since_ns`` (contracts without one are absent)."""
    if not occ:
        return {}
    rows = await pool.fetch(
        "SELECT symbol, max(ts_event) FROM trades WHERE symbol = ANY($1::text[]) AND ts_event >= $2 GROUP BY symbol",
        occ,
        since_ns,
    )
    return {str(r[0]): int(r[1]) for r in rows}
