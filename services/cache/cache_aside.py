"""Cache-aside with single-flight and jittered TTLs.

``await aside.get_or_compute(key, ttl_s, compute)``: return the cached value of ``key``; on a miss
call ``compute()`` once per process however many callers ask at the same time (single-flight:
the others await the same result), store it for ``ttl_s * (1 + U(0, jitter))`` seconds (jitter
spreads the expiries of keys filled together, so they do not all expire at once), and return
it. When the backend is away (``Unavailable``) or returns undecodable bytes the value is computed
and returned anyway: the cache being down never fails the caller. Values travel as bytes through
a :class:`Codec` (``BYTES``, or :class:`ProtoCodec` for protobuf messages). Keys should come from
:class:`~aiots.services.cache.backends.base.Keyspace` (``<ns>:v1:<kind>:...``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import DecodeError, Message

from aiots.services.cache.backends.base import CacheBackend
from aiots.services.common.errors import Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Codec(Generic[T]):
    """Turns values into bytes and back."""

    encode: Callable[[T], bytes]
    decode: Callable[[bytes], T]


BYTES: Codec[bytes] = Codec(encode=bytes, decode=bytes)


class ProtoCodec(Codec[M]):
    """Codec of one protobuf message type."""

    def __init__(self, message_type: type[M]) -> None:
        super().__init__(encode=lambda m: bytes(m.SerializeToString()), decode=message_type.FromString)


class CacheAside:
    """See module docstring. ``jitter`` is the fraction of the TTL added at random (0..0.5)."""

    def __init__(self, backend: CacheBackend, *, jitter: float = 0.1, rng: random.Random | None = None) -> None:
        if not 0 <= jitter <= 0.5:
            raise ValueError(f"jitter must be within [0, 0.5], got {jitter}")
        self.backend = backend
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        self.computes = 0
        self.backend_errors = 0

    def jittered(self, ttl_s: float) -> float:
        """``ttl_s`` stretched by a random fraction in [0, jitter]."""
        return ttl_s * (1.0 + self.jitter * self._rng.random())

    async def get_or_compute(
        self,
        key: str,
        ttl_s: float,
        compute: Callable[[], Awaitable[T]],
        codec: Codec[T] | None = None,
    ) -> T:
        """The cached value of ``key`` or ``compute()``'s (computed once for concurrent callers)."""
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0 seconds, got {ttl_s}")
        c: Codec[Any] = codec if codec is not None else BYTES
        task = self._inflight.get(key)
        if task is None:
            # The fill runs as its own task: a cancelled caller never cancels it for the others.
            task = asyncio.create_task(self._fill(key, ttl_s, compute, c), name=f"cache-fill:{key}")
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        result: T = await asyncio.shield(task)
        return result

    async def _fill(self, key: str, ttl_s: float, compute: Callable[[], Awaitable[T]], c: Codec[Any]) -> T:
        try:
            raw = await self.backend.get(key)
        except Unavailable as exc:
            self.backend_errors += 1
            log.warning("cache read of %s failed, computing instead: %s", key, exc)
            raw = None
        if raw is not None:
            try:
                cached: T = c.decode(raw)
                return cached
            except (DecodeError, ValueError, TypeError):
                log.warning("undecodable cache entry %s (%d bytes) recomputed", key, len(raw))
        self.computes += 1
        value = await compute()
        try:
            await self.backend.set(key, c.encode(value), self.jittered(ttl_s))
        except Unavailable as exc:
            self.backend_errors += 1
            log.warning("cache write of %s failed (value still returned): %s", key, exc)
        return value

    async def invalidate(self, key: str) -> None:
        """Drop ``key`` (best effort when the backend is away)."""
        try:
            await self.backend.delete(key)
        except Unavailable as exc:
            log.warning("cache delete of %s failed: %s", key, exc)
