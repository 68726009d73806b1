"""The cache backend interface (Redis or in-process) and the key scheme.

Values are bytes (serialised protobuf messages: typed, not JSON). Keys are namespaced and
versioned: ``<namespace>:v1:<kind>:<id>`` (see :class:`Keyspace`); bumping the version
invalidates every old entry at once. TTLs are seconds (float); ``None`` means no expiry.
Backends raise :class:`~aiots.services.common.errors.Unavailable` when their store is away.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiots.services.common.ports import CacheBackend, CacheStats

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


__all__ = ["KEY_VERSION", "CacheBackend", "CacheStats", "Keyspace"]
