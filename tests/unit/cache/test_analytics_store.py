"""Analytics values: keys namespaced and validated, TTLs bounded (0 = default) and honoured on a
controlled clock, values bounded in size; errors name the field, the value and the limit."""

from __future__ import annotations

import pytest

from aiots.services.cache.analytics_store import AnalyticsStore
from aiots.services.cache.backends import MemoryBackend
from aiots.services.cache.backends.base import Keyspace
from aiots.services.common.errors import InvalidArgument, NotFound, ResourceExhausted
from aiots.services.common.settings import CacheSettings


def _store() -> tuple[AnalyticsStore, MemoryBackend, list[float]]:
    now = [1000.0]
    backend = MemoryBackend(1 << 20, clock=lambda: now[0])
    cfg = CacheSettings(max_key_bytes=16, max_ttl_s=60, default_ttl_s=30, max_value_bytes=8)
    return AnalyticsStore(backend, Keyspace("t"), cfg), backend, now


async def test_set_get_expire_delete() -> None:
    store, backend, now = _store()
    await store.set("k", b"v", 0)  # default TTL: 30 s
    assert await backend.get("t:v1:analytics:k") == b"v"
    got = await store.get("k")
    assert (got.data, got.ttl_remaining_s) == (b"v", pytest.approx(30.0))
    now[0] += 31
    with pytest.raises(NotFound, match="absent or expired"):
        await store.get("k")
    await store.set("k", b"v", 5)
    assert await store.delete("k") is True and await store.delete("k") is False


async def test_limits_name_field_value_and_limit() -> None:
    store, _backend, _now = _store()
    with pytest.raises(InvalidArgument, match="exceeds the limit of 16 bytes"):
        await store.set("k" * 17, b"v", 1)
    with pytest.raises(InvalidArgument, match="control character"):
        await store.set("a\nb", b"v", 1)
    with pytest.raises(InvalidArgument, match=r"ttl 61 s is out of range: use 1\.\.60 s \(0 = default 30 s\)"):
        await store.set("k", b"v", 61)
    with pytest.raises(ResourceExhausted, match="9 bytes exceeds the limit of 8 bytes"):
        await store.set("k", b"123456789", 1)
