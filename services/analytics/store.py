"""Data access for analytics: the storage query API, data-version probes and a cache-aside helper.

Data version: the newest stored event for what a request reads (bars of a symbol, quotes of an
underlying's chain). It is part of every cache key, so new data makes old entries unreachable
(they expire by TTL) and a repeated query within the TTL is served from the cache.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiots.services.cache.cache_aside import CacheAside
from aiots.services.storage import queries

log = logging.getLogger(__name__)

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


class ResultCache:
    """Cache-aside (``aiots.services.cache.cache_aside.CacheAside``: single-flight, jittered TTL) over
    the runtime's cache backend. Without a backend everything is computed and nothing stored."""

    def __init__(self, backend: Any, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.aside = CacheAside(backend) if backend is not None else None

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
