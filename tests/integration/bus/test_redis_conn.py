"""PipelinedRedis (many outstanding commands on one connection) against real redis-servers.

Oracle: the values written through the ordinary redis-py client (and Redis's own error replies).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aiots.services.bus.redis_conn import PipelinedRedis, pipelined_or_none
from aiots.services.cache.backends import RedisBackend
from aiots.services.common.settings import RedisSettings
from tests.integration.bus.redis_fixtures import RedisProc

pytestmark = pytest.mark.timeout(60)


async def test_concurrent_replies_reach_their_callers_even_with_cancelled_ones(redis_url: str, redis_ns: str) -> None:
    ref = aioredis.Redis.from_url(redis_url)
    keys = [f"{redis_ns}:k{i}" for i in range(300)]
    await ref.mset({k: f"v{i}".encode() * (1 + i % 7) for i, k in enumerate(keys)})
    pipe = PipelinedRedis(redis_url, RedisSettings())
    try:
        tasks = [asyncio.ensure_future(pipe.execute("GET", k)) for k in keys]
        for t in tasks[::10]:
            t.cancel()  # their replies still arrive and must be skipped in order
        done = await asyncio.gather(*tasks, return_exceptions=True)
        for i, r in enumerate(done):
            if i % 10 == 0:
                assert isinstance(r, asyncio.CancelledError)
            else:
                assert r == f"v{i}".encode() * (1 + i % 7)
        assert await pipe.execute("GET", f"{redis_ns}:absent") is None
        await ref.xadd(f"{redis_ns}:stream", {"p": b"x"})
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await pipe.execute("GET", f"{redis_ns}:stream")
        assert await pipe.execute("GET", keys[1]) == b"v1" * 2  # still in step after an error reply
    finally:
        await pipe.close()
        await ref.delete(*keys, f"{redis_ns}:stream")
        await ref.aclose()


async def test_killed_connection_fails_outstanding_then_reconnects(redis_url: str, redis_ns: str) -> None:
    ref = aioredis.Redis.from_url(redis_url)
    key = f"{redis_ns}:k"
    await ref.set(key, b"one")
    backend = RedisBackend(redis_url, RedisSettings(namespace=redis_ns))
    pipe = backend._pipe
    assert pipe is not None
    try:
        assert await backend.get(key) == b"one"
        client_id = await pipe.execute("CLIENT", "ID")
        blocked = asyncio.ensure_future(pipe.execute("BLPOP", f"{redis_ns}:never", 0))
        await asyncio.sleep(0.05)
        await ref.client_kill_filter(_id=client_id)
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(blocked, 5)
        await ref.set(key, b"two")
        assert await backend.get(key) == b"two"  # a fresh connection
        assert await pipe.execute("CLIENT", "ID") != client_id
    finally:
        await backend.close()
        await ref.delete(key)
        await ref.aclose()


async def test_auth_db_timeout_and_down(redis_proc: RedisProc) -> None:
    ref = aioredis.Redis.from_url(redis_proc.url)
    await ref.config_set("requirepass", "s3cret")
    await ref.aclose()
    url = f"redis://:s3cret@127.0.0.1:{redis_proc.port}/3"
    ref = aioredis.Redis.from_url(url)
    await ref.set("k", b"db3")
    pipe = PipelinedRedis(url, RedisSettings(socket_timeout_s=0.3))
    try:
        assert await pipe.execute("GET", "k") == b"db3"  # AUTH and SELECT 3 happened
        with pytest.raises(ResponseError, match=r"WRONGPASS|invalid"):
            await PipelinedRedis(f"redis://:wrong@127.0.0.1:{redis_proc.port}/0", RedisSettings()).execute("PING")
        # An unanswered command (BLPOP blocks) aborts the connection after socket_timeout_s.
        with pytest.raises(RedisTimeoutError, match="did not answer"):
            await asyncio.wait_for(pipe.execute("BLPOP", "never", 0), 5)
        assert await pipe.execute("GET", "k") == b"db3"
        redis_proc.kill()
        with pytest.raises((RedisConnectionError, OSError)):
            await pipe.execute("GET", "k")
    finally:
        await pipe.close()
        with contextlib.suppress(Exception):
            await ref.aclose()
    assert pipelined_or_none("unix:///tmp/redis.sock", RedisSettings()) is None
