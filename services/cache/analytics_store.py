"""Arbitrary analytics values under client keys, with validated keys, TTLs and sizes.

Keys are stored as ``<ns>:v1:analytics:<key>``. Limits come from ``CacheSettings``: a key is
1..``max_key_bytes`` UTF-8 bytes of printable characters (no control characters); a TTL is
1..``max_ttl_s`` seconds, 0 meaning ``default_ttl_s``; a value is at most ``max_value_bytes``
serialised. Values are opaque bytes here (the service stores ``google.protobuf.Value`` bytes).
Times are int64 ns UTC.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiots.core import conventions as cv
from aiots.services.cache.backends.base import CacheBackend, Keyspace
from aiots.services.common.errors import InvalidArgument, NotFound, ResourceExhausted
from aiots.services.common.settings import CacheSettings

ANALYTICS_KIND = "analytics"
NS_PER_S = cv.NS_PER_S


@dataclass(frozen=True)
class StoredValue:
    key: str
    data: bytes
    ttl_remaining_s: float | None


def validate_key(key: str, max_key_bytes: int, field: str = "key") -> str:
    """The key unchanged, or InvalidArgument naming the field, the value and the limit."""
    if not key:
        raise InvalidArgument(field, f"must be 1..{max_key_bytes} bytes, got an empty key")
    n = len(key.encode("utf-8"))
    if n > max_key_bytes:
        raise InvalidArgument(field, f"key of {n} bytes ({key[:32]!r}...) exceeds the limit of {max_key_bytes} bytes")
    bad = next((c for c in key if not c.isprintable()), None)
    if bad is not None:
        raise InvalidArgument(field, f"key {key!r} contains control character {bad!r}; only printable allowed")
    return key


class AnalyticsStore:
    """Set/get/delete of bounded values with TTLs (see module docstring)."""

    def __init__(self, backend: CacheBackend, keyspace: Keyspace, cfg: CacheSettings) -> None:
        self.backend = backend
        self.keyspace = keyspace
        self.cfg = cfg

    def _key(self, key: str) -> str:
        full: str = self.keyspace.key(ANALYTICS_KIND, validate_key(key, self.cfg.max_key_bytes))
        return full

    def resolve_ttl(self, ttl_s: int) -> int:
        """0 -> default; otherwise 1..max_ttl_s or InvalidArgument."""
        if ttl_s == 0:
            return int(self.cfg.default_ttl_s)
        if ttl_s < 0 or ttl_s > self.cfg.max_ttl_s:
            allowed = f"1..{self.cfg.max_ttl_s} s (0 = default {self.cfg.default_ttl_s} s)"
            raise InvalidArgument("ttl", f"ttl {ttl_s} s is out of range: use {allowed}")
        return ttl_s

    async def set(self, key: str, data: bytes, ttl_s: int) -> int:
        """Store ``data``; returns the expiry time (ns UTC)."""
        full = self._key(key)
        ttl = self.resolve_ttl(ttl_s)
        if len(data) > self.cfg.max_value_bytes:
            raise ResourceExhausted(
                f"data: value of {len(data)} bytes exceeds the limit of {self.cfg.max_value_bytes} bytes",
                reason="VALUE_TOO_LARGE",
                metadata={"field": "data", "bytes": str(len(data)), "limit": str(self.cfg.max_value_bytes)},
            )
        await self.backend.set(full, data, float(ttl))
        return time.time_ns() + ttl * NS_PER_S

    async def get(self, key: str) -> StoredValue:
        """The stored value; NotFound when absent or expired."""
        got = await self.backend.get_with_ttl(self._key(key))
        if got is None:
            raise NotFound(f"no analytics value under key {key!r} (absent or expired)", reason="KEY_NOT_FOUND")
        return StoredValue(key, got[0], got[1])

    async def delete(self, key: str) -> bool:
        """True when a value was removed (idempotent)."""
        return bool(await self.backend.delete(self._key(key)))
