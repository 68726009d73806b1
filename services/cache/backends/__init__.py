"""Cache backends (Redis when REDIS_URL is set, in-process otherwise) behind one interface."""

from __future__ import annotations

from aiots.services.cache.backends.base import CacheBackend, CacheStats, Keyspace
from aiots.services.cache.backends.memory import MemoryBackend
from aiots.services.cache.backends.redis import RedisBackend
from aiots.services.common.settings import Settings

__all__ = ["CacheBackend", "CacheStats", "Keyspace", "MemoryBackend", "RedisBackend", "create_cache_backend"]


def create_cache_backend(settings: Settings) -> MemoryBackend | RedisBackend:
    """A new backend for ``settings`` (the caller closes it)."""
    if settings.redis_url is not None:
        return RedisBackend(settings.redis_url.get_secret_value(), settings.redis)
    return MemoryBackend(settings.cache.memory_budget_bytes)
