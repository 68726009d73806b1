"""Two replicas of a service (separate processes, ``aiots serve``) on one Redis and one
PostgreSQL; one is killed with SIGKILL mid-stream (issue 18, item 16).

Signals: the client reads signals from replica A, A dies, the client resumes on replica B with
``since=<last id received>`` and gets what was created meanwhile. Oracle: the signals table (each
replica evaluates the features of every bar, published by one analytics process, in its own
consumer group, and the store keeps one row per deterministic id): the client received every
stored signal exactly once. The same through Envoy, with every service replicated:
test_scale_out.py.

Analytics (live state, a consumer group per replica: a symbol's features need all of its bars):
bars keep flowing while A is killed. Oracles: Redis's own accounting of B's group (XINFO GROUPS:
every entry read, none pending) and the features stream (an event for every bar published).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common.settings import RedisSettings
from aiots.services.signals.app import FEATURE_TOPIC, OPTION_TOPIC
from aiots.v1 import events_pb2, signals_pb2, signals_pb2_grpc
from tests.integration.bus.redis_fixtures import RedisProc
from tests.integration.hardening.replicas import (
    SYMBOLS,
    Replica,
    assert_received_every_stored_signal_once,
    bar_events,
    group_state,
    groups_ready,
    publish_breakout,
    stop_all,
)
from tests.integration.signals.test_engine_e2e import MIN, T0

pytestmark = pytest.mark.timeout(120)

NS = "replkill"


@pytest.fixture
async def replicas(
    redis_proc: RedisProc, make_database: Callable[..., str], tmp_path: Path
) -> AsyncIterator[tuple[list[Replica], str]]:
    dsn = make_database(True)
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_proc.url,
        "AIOTS_REDIS__NAMESPACE": NS,
        "AIOTS_SYMBOLS": '["AAPL", "MSFT"]',
        "AIOTS_SIGNALS__HEARTBEAT_S": "1",
        "AIOTS_DATABASE__MIGRATE_ON_START": "false",
    }
    env.pop("DATABENTO_API_KEY", None)
    # the features signals evaluates come from analytics' live state (one replica: the owner)
    features = Replica("f", {**env, "AIOTS_ANALYTICS__LIVE_INTERVALS": '["1m"]'}, tmp_path, "analytics")
    reps = [Replica("a", env, tmp_path), Replica("b", env, tmp_path)]
    try:
        await features.ready()
        yield reps, dsn
    finally:
        stop_all([*reps, features])


async def _next_signal(call: Any) -> signals_pb2.Signal:
    while True:
        m = await call.read()
        assert m is not grpc.aio.EOF
        if m.WhichOneof("event") == "signal":
            return m.signal


async def test_kill_a_replica_mid_stream_and_resume_with_since(
    replicas: tuple[list[Replica], str], redis_proc: RedisProc, tmp_path: Path
) -> None:
    (a, b), dsn = replicas
    await asyncio.gather(a.ready(), b.ready())
    await groups_ready(redis_proc.url, NS, topics=(FEATURE_TOPIC, OPTION_TOPIC))
    bus = RedisStreamsBus(redis_proc.url, RedisSettings(namespace=NS, outbox_dir=tmp_path / "outbox-test"))
    req = signals_pb2.SubscribeSignalsRequest(symbols=list(SYMBOLS), strategies=["momentum_breakout"])
    received: list[str] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") as ch:
            call = signals_pb2_grpc.SignalServiceStub(ch).SubscribeSignals(req)
            first = await asyncio.wait_for(call.read(), 10)  # the stream is open (a heartbeat)
            assert first is not grpc.aio.EOF
            await publish_breakout(bus, "AAPL")
            received.append((await asyncio.wait_for(_next_signal(call), 30)).id)
            a.kill()  # mid-stream
            await publish_breakout(bus, "MSFT")  # created while the client is away
            with pytest.raises(grpc.aio.AioRpcError):
                await asyncio.wait_for(_next_signal(call), 10)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{b.port}") as ch:
            req.since = received[-1]
            call = signals_pb2_grpc.SignalServiceStub(ch).SubscribeSignals(req)
            received.append((await asyncio.wait_for(_next_signal(call), 30)).id)
            call.cancel()
    finally:
        await bus.close()
    await assert_received_every_stored_signal_once(dsn, received)


async def test_kill_an_analytics_replica_and_the_survivor_keeps_every_bar(
    redis_proc: RedisProc, make_database: Callable[..., str], tmp_path: Path
) -> None:
    dsn = make_database(True)
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "REDIS_URL": redis_proc.url,
        "AIOTS_REDIS__NAMESPACE": NS,
        "AIOTS_SYMBOLS": '["AAPL", "MSFT"]',
        "AIOTS_ANALYTICS__LIVE_INTERVALS": '["1m"]',
        "AIOTS_REDIS__READ_BATCH": "8",
        "AIOTS_REDIS__READ_BLOCK_MS": "5000",
        "AIOTS_DATABASE__MIGRATE_ON_START": "false",
    }
    env.pop("DATABENTO_API_KEY", None)
    a, b = Replica("a", env, tmp_path, "analytics"), Replica("b", env, tmp_path, "analytics")
    bus = RedisStreamsBus(redis_proc.url, RedisSettings(namespace=NS, outbox_dir=tmp_path / "outbox-test"))
    r = aioredis.from_url(redis_proc.url, decode_responses=True)
    try:
        await asyncio.gather(a.ready(), b.ready())
        # the default live_consumer_group gives each replica a group of its own (host-pid)
        names: list[set[str]] = []
        for _ in range(300):
            try:
                names = [{g["name"] for g in await r.xinfo_groups(f"{NS}:v1:bars:1m:{s}")} for s in SYMBOLS]
            except Exception:
                names = []
            if names and all(len(n) >= 2 for n in names):
                break
            await asyncio.sleep(0.1)
        mine = {p: f"analytics-{socket.gethostname()}-{p}" for p in (a.proc.pid, b.proc.pid)}
        assert names and all(set(mine.values()) <= n for n in names), (names, mine)
        n = 0
        for _ in range(5):
            for sym in SYMBOLS:
                await bus.publish_many("bars:1m", bar_events(sym, n, 20))
            n += 20
            await asyncio.sleep(0.05)
        a.kill()  # mid-flow
        for _ in range(10):
            for sym in SYMBOLS:
                await bus.publish_many("bars:1m", bar_events(sym, n, 20))
            n += 20
            await asyncio.sleep(0.05)
        # the survivor's own group read every bar and has none pending (Redis's own accounting)
        deadline = time.monotonic() + 45
        while True:
            state = await group_state(redis_proc.url, NS, mine[b.proc.pid])
            done = all(s.get("pending") == 0 and s.get("lag") == 0 and s["length"] == n for s in state)
            if done or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert done, state
        # and it published the features of every bar, those after the kill included
        raw = aioredis.from_url(redis_proc.url)  # payloads are bytes
        try:
            for sym in SYMBOLS:
                entries = await raw.xrange(f"{NS}:v1:features:1m:{sym}")
                seen = {events_pb2.FeatureEvent.FromString(fields[b"p"]).ts_event for _id, fields in entries}
                assert seen == {T0 + i * MIN for i in range(n)}, (sym, len(seen), n)
        finally:
            await raw.aclose()
    finally:
        await r.aclose()
        await bus.close()
        a.stop()
        b.stop()
