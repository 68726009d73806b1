"""The cache backend interface (Redis or in-process) and the key scheme.

Values are bytes (serialised protobuf messages: typed, not JSON). Keys are namespaced and
versioned: ``<namespace>:v1:<kind>:<id>`` (see :class:`Keyspace`); bumping the version
invalidates every old entry at once. TTLs are seconds (float); ``None`` means no expiry.
Backends raise :class:`~aiots.services.common.errors.Unavailable` when their store is away.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

KEY_VERSION = "v1"


@dataclass(frozen=True)
class Keyspace:
    """Builds ``<namespace>:v1:<kind>:<part>:...`` keys."""

    namespace: str
    version: str = KEY_VERSION

    def key(self, kind: str, *parts: str) -> str:
        return ":".join((self.namespace, self.version, kind, *parts))

    def prefix(self, kind: str) -> str:
        return f"{self.namespace}:{self.version}:{kind}:"


@dataclass(frozen=True)
class CacheStats:
    """Counters since this backend object was created (Redis: keys/memory/evictions from INFO)."""

    hits: int
    misses: int
    keys: int
    memory_bytes: int
    evictions: int
    backend: str

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class CacheBackend(Protocol):
    """Byte values with TTLs; ``get_many``/``set_many`` are one round trip on Redis."""

    name: str

    async def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values in ``keys`` order (None where absent)."""

    async def get_with_ttl(self, key: str) -> tuple[bytes, float | None] | None:
        """The value and its remaining TTL in seconds (None: no expiry), or None when absent."""

    async def set(self, key: str, value: bytes, ttl_s: float | None) -> None:
        """Store ``value``; ``ttl_s`` None means no expiry."""

    async def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> None:
        """Store several (key, value, ttl_s)."""

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True when something was removed."""

    async def stats(self) -> CacheStats:
        """Counters and sizes."""

    async def ping(self) -> bool:
        """True when the store answers."""

    async def close(self) -> None:
        """Release connections."""
