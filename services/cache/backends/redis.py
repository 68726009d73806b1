"""Redis cache backend: redis.asyncio + hiredis, one connection pool, MGET/pipelines for batches.

When Redis is unreachable every call raises ``Unavailable`` with the URL (password redacted) and
the cause; after a failure calls fail fast for a backoff window (exponential with jitter,
``reconnect_initial_backoff_s`` doubling up to ``reconnect_max_backoff_s``) and then try again:
redis-py reconnects the pool's connections by itself, so the backend recovers with no restart.

Single-key ``get`` (the GetStockPrice hot path) goes through one shared
:class:`~aiots.services.bus.redis_conn.PipelinedRedis` connection instead of the pool: concurrent
readers' GETs are in flight together on one socket, with none of the pool's per-command checkout
work; a GET that meets a dead connection is retried once on a fresh one (reads are idempotent).
Everything else uses the pool.
Hit/miss counters are this process's; keys/memory/evictions come from Redis (``DBSIZE``,
``INFO memory``/``INFO stats``) and so cover the whole Redis database, not only this namespace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from aiots.services.bus.redis_conn import REDIS_DOWN_ERRORS, Backoff, connect_redis, pipelined_or_none, redact
from aiots.services.cache.backends.base import CacheStats
from aiots.services.common.errors import Unavailable
from aiots.services.common.settings import RedisSettings

T = TypeVar("T")


class RedisBackend:
    """See module docstring."""

    name = "redis"

    def __init__(self, url: str, settings: RedisSettings | None = None) -> None:
        self.cfg = settings or RedisSettings()
        self.url = url
        self.redis: Any = connect_redis(url, self.cfg)  # decode_responses=False: replies are bytes
        self._backoff = Backoff(self.cfg.reconnect_initial_backoff_s, self.cfg.reconnect_max_backoff_s)
        self._pipe = pipelined_or_none(url, self.cfg)
        self.hits = 0
        self.misses = 0

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        if self._backoff.in_window:
            raise Unavailable(
                f"cache backend Redis at {redact(self.url)} is unreachable; {what} not attempted "
                f"(reconnecting with backoff, {self._backoff.failures} failures so far)"
            )
        try:
            result = await fn()
        except REDIS_DOWN_ERRORS as exc:
            self._backoff.next_delay()
            raise Unavailable(
                f"cache backend Redis at {redact(self.url)} is unreachable during {what}: {exc}; "
                "reconnecting with backoff"
            ) from exc
        if self._backoff.failures:
            self._backoff.reset()
        return result

    def _count(self, values: Sequence[bytes | None]) -> None:
        for v in values:
            if v is None:
                self.misses += 1
            else:
                self.hits += 1

    async def get(self, key: str) -> bytes | None:
        v: bytes | None = await self._call("GET", lambda: self._get(key))
        self._count((v,))
        return v

    async def _get(self, key: str) -> bytes | None:
        pipe = self._pipe
        if pipe is None:
            v: bytes | None = await self.redis.get(key)
            return v
        try:
            v = await pipe.execute("GET", key)
        except RedisConnectionError:  # a connection that died since its last use: once more, fresh
            v = await pipe.execute("GET", key)
        return v

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        vals: list[bytes | None] = await self._call("MGET", lambda: self.redis.mget(list(keys)))
        self._count(vals)
        return vals

    async def get_with_ttl(self, key: str) -> tuple[bytes, float | None] | None:
        async def run() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(key)
            pipe.pttl(key)
            return list(await pipe.execute())

        value, pttl = await self._call("GET+PTTL", run)
        self._count((value,))
        if value is None:
            return None
        return value, (None if pttl is None or pttl < 0 else pttl / 1000.0)

    async def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        px = None if ttl_s is None else max(1, round(ttl_s * 1000))
        await self._call("SET", lambda: self.redis.set(key, value, px=px))

    async def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> None:
        if not items:
            return

        async def run() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for key, value, ttl in items:
                pipe.set(key, value, px=None if ttl is None else max(1, round(ttl * 1000)))
            await pipe.execute()

        await self._call("pipelined SET", run)

    async def delete(self, key: str) -> bool:
        n: int = await self._call("DEL", lambda: self.redis.delete(key))
        return n > 0

    async def stats(self) -> CacheStats:
        async def run() -> tuple[int, dict[str, Any], dict[str, Any]]:
            pipe = self.redis.pipeline(transaction=False)
            pipe.dbsize()
            pipe.info("memory")
            pipe.info("stats")
            size, mem, st = await pipe.execute()
            return int(size), dict(mem), dict(st)

        try:
            size, mem, st = await self._call("INFO", run)
        except ResponseError:  # INFO disabled (managed Redis): counters only
            size, mem, st = 0, {}, {}
        return CacheStats(
            hits=self.hits,
            misses=self.misses,
            keys=size,
            memory_bytes=int(mem.get("used_memory", 0)),
            evictions=int(st.get("evicted_keys", 0)),
            backend=self.name,
        )

    async def ping(self) -> bool:
        try:
            return bool(await self._call("PING", lambda: self.redis.ping()))
        except Unavailable:
            return False

    async def close(self) -> None:
        if self._pipe is not None:
            await self._pipe.close()
        await self.redis.aclose()
