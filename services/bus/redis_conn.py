"""Redis connections shared by the Redis bus and the Redis cache backend.

redis.asyncio with hiredis, one connection pool per client. redis-py's asyncio connection parses
replies with hiredis but packs commands in Python (about 1 µs per argument: most of the client CPU
of a 1000-event ``publish_many`` or ``XACK``); :class:`FastPackConnection` packs them with
``hiredis.pack_command`` (C) instead. redis-py reconnects a broken connection on its next command;
:class:`Backoff` paces the retries of our loops and the fail-fast window of calls while Redis is away.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
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


#: hiredis's C packer (its stub types the argument as a 1-tuple).
_pack = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)


class _ReplyProtocol(asyncio.Protocol):
    """Feeds a :class:`PipelinedRedis` with the bytes and the end of its connection."""

    def __init__(self, owner: PipelinedRedis) -> None:
        self.owner = owner

    def data_received(self, data: bytes) -> None:
        self.owner._on_data(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._on_lost(self, exc)


class PipelinedRedis:
    """Many outstanding commands on one TCP connection; Redis answers them in order (FIFO).

    For hot single-key reads: a command is packed by hiredis and written at once, replies are parsed
    by ``hiredis.Reader`` and matched to their callers in order, so concurrent callers share one
    socket (a ``recv`` returns many replies) with no pool checkout, lock or connection health probe
    per command, which is most of what redis-py's asyncio client spends on a ``GET``. Replies are
    bytes (no decoding). A command unanswered after ``socket_timeout_s`` aborts the connection; a
    lost connection fails every outstanding command with ``ConnectionError`` (callers map it to
    ``Unavailable``) and the next command reconnects. Plain ``redis://`` URLs only (use
    :func:`pipelined_or_none`).
    """

    def __init__(self, url: str, cfg: RedisSettings) -> None:
        p = parse_url(url)
        if "path" in p or "connection_class" in p:
            raise ValueError(f"PipelinedRedis needs a redis:// TCP URL, got {redact(url)}")
        self.host: str = p.get("host", "localhost")
        self.port: int = int(p.get("port", 6379))
        self.db: int = int(p.get("db", 0))
        self._auth: tuple[str, ...] = ()
        if p.get("password") is not None:
            user = p.get("username")
            self._auth = (user, p["password"]) if user else (p["password"],)
        self.timeout_s = cfg.socket_timeout_s
        self._proto: _ReplyProtocol | None = None
        self._transport: asyncio.Transport | None = None
        self._reader: Any = None
        self._waiters: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._connecting: asyncio.Future[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    async def execute(self, *args: str | bytes | int | float) -> Any:
        """Send one command and await its reply (``ResponseError`` for an error reply)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            await self._connect()
            transport = self._transport
            if transport is None:
                raise RedisConnectionError("Redis connection lost while connecting")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._waiters.append((fut, loop.time()))
        transport.write(_pack(args))
        return await fut

    async def _connect(self) -> None:
        if self._closed:
            raise RedisConnectionError("PipelinedRedis is closed")
        if self._connecting is not None:  # single flight: others wait for the same attempt
            await asyncio.shield(self._connecting)
            return
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            proto = _ReplyProtocol(self)
            transport, _ = await asyncio.wait_for(
                loop.create_connection(lambda: proto, self.host, self.port), self.timeout_s
            )
            self._reader = hiredis.Reader()
            self._waiters.clear()
            self._proto, self._transport = proto, transport
            self._arm_watchdog()
            if self._auth:
                await self._handshake("AUTH", *self._auth)
            if self.db:
                await self._handshake("SELECT", self.db)
            self._connecting.set_result(None)
        except BaseException as exc:
            self._drop(exc)
            if isinstance(exc, Exception):
                self._connecting.set_exception(exc)
                self._connecting.exception()  # retrieved: waiters re-raise it from the shield
            else:
                self._connecting.cancel()
            raise
        finally:
            self._connecting = None

    async def _handshake(self, *args: str | int) -> None:
        assert self._transport is not None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append((fut, asyncio.get_running_loop().time()))
        self._transport.write(_pack(args))
        await asyncio.wait_for(fut, self.timeout_s)

    def _on_data(self, proto: _ReplyProtocol, data: bytes) -> None:
        if proto is not self._proto:
            return
        reader = self._reader
        reader.feed(data)
        waiters = self._waiters
        while True:
            reply = reader.gets()
            if reply is False:
                return
            if not waiters:  # a reply nobody asked for: the stream is out of step
                self._drop(RedisConnectionError("unexpected reply from Redis"))
                return
            fut = waiters.popleft()[0]
            if fut.done():  # the caller was cancelled; its reply is dropped in order
                continue
            if isinstance(reply, hiredis.ReplyError):
                fut.set_exception(ResponseError(str(reply)))
            else:
                fut.set_result(reply)

    def _on_lost(self, proto: _ReplyProtocol, exc: Exception | None) -> None:
        if proto is self._proto:
            self._drop(RedisConnectionError(f"connection to Redis at {self.host}:{self.port} lost ({exc})"))

    def _drop(self, exc: BaseException) -> None:
        """Close the connection and fail every outstanding command with ``exc``."""
        transport, self._transport, self._proto = self._transport, None, None
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        waiters, self._waiters = self._waiters, deque()
        for fut, _ in waiters:
            if not fut.done():
                fut.set_exception(exc if isinstance(exc, Exception) else RedisConnectionError(str(exc)))
        if transport is not None:
            transport.abort()

    def _arm_watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(self.timeout_s / 2, self._check_stalled)

    def _check_stalled(self) -> None:
        """Abort the connection when its oldest command has waited longer than ``timeout_s``."""
        self._watchdog = None
        if self._transport is None:
            return
        if self._waiters and asyncio.get_running_loop().time() - self._waiters[0][1] > self.timeout_s:
            self._drop(RedisTimeoutError(f"Redis at {self.host}:{self.port} did not answer in {self.timeout_s}s"))
            return
        self._arm_watchdog()

    async def close(self) -> None:
        self._closed = True
        self._drop(RedisConnectionError("PipelinedRedis closed"))


def pipelined_or_none(url: str, cfg: RedisSettings) -> PipelinedRedis | None:
    """A :class:`PipelinedRedis` for plain TCP URLs; None for unix:// and rediss:// (use the pool)."""
    try:
        return PipelinedRedis(url, cfg)
    except ValueError:
        return None
