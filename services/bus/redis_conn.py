"""Redis connections shared by the Redis bus and the Redis cache backend.

redis.asyncio with hiredis, one connection pool per client. redis-py's asyncio connection parses
replies with hiredis but packs commands in Python (about 1 µs per argument: most of the client CPU
of a 1000-event ``publish_many`` or ``XACK``); :class:`FastPackConnection` packs them with
``hiredis.pack_command`` (C) instead. redis-py reconnects a broken connection on its next command;
:class:`Backoff` paces the retries of our loops and the fail-fast window of calls while Redis is away.
"""

from __future__ import annotations

import random
import time
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aiots.services.common.settings import RedisSettings

#: Errors meaning "Redis is not reachable right now" (as opposed to a bad command).
REDIS_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
    OSError,
)


class FastPackConnection(aioredis.Connection):
    """A TCP connection that packs commands with ``hiredis.pack_command`` (C), as redis-py's sync
    client does; arguments hiredis does not take (e.g. memoryview) fall back to the Python packer."""

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if isinstance(first, str):
            args = (*first.encode().split(), *args[1:])
        elif b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            packed: list[bytes] = super().pack_command(*args)
            return packed


def connect_redis(url: str, cfg: RedisSettings, *, block_ms: int = 0) -> aioredis.Redis:
    """A client with its own pool; ``block_ms`` extends the socket timeout for blocking reads.

    A command that meets a dead pooled connection (Redis restarted) is retried once at once on a
    fresh connection; longer outages are paced by the callers' :class:`Backoff`. The retry may
    repeat a write whose reply was lost (the bus is at-least-once anyway).
    """
    extra: dict[str, Any] = {}
    if url.startswith("redis://"):  # plain TCP (unix:// and rediss:// keep their own classes)
        extra["connection_class"] = FastPackConnection
    return aioredis.Redis.from_url(
        url,
        **extra,
        max_connections=cfg.max_connections,
        socket_timeout=cfg.socket_timeout_s + block_ms / 1000.0,
        socket_connect_timeout=cfg.socket_timeout_s,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
        retry_on_timeout=False,
        decode_responses=False,
    )


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url


class Backoff:
    """Exponential backoff with full jitter: ``initial * 2**n`` capped at ``cap`` seconds."""

    def __init__(self, initial_s: float, cap_s: float) -> None:
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.failures = 0
        self.down_until = 0.0

    def next_delay(self) -> float:
        """Record a failure; the delay before the next attempt, seconds."""
        base = min(self.cap_s, self.initial_s * float(2 << min(self.failures, 30)) / 2)
        self.failures += 1
        delay = base / 2 + random.random() * base / 2
        self.down_until = time.monotonic() + delay
        return delay

    def reset(self) -> None:
        self.failures = 0
        self.down_until = 0.0

    @property
    def in_window(self) -> bool:
        """True while callers should fail fast instead of trying Redis again."""
        return self.failures > 0 and bool(time.monotonic() < self.down_until)
