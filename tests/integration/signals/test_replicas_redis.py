"""Two SignalService replicas on the real Redis: both evaluate every bar's features (published once by
analytics' live state; per-symbol cooldowns need each bar in order), exactly one records and
announces each signal (deterministic id + ON CONFLICT), and every signal reaches the subscribers of
both replicas once (pub/sub fan-out)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from aiots.services.analytics.live_state import LiveState
from aiots.services.bus.redis_streams import RedisStreamsBus
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.signals.app import BAR_TOPIC, OPTION_TOPIC, SignalsApp
from aiots.v1 import signals_pb2, signals_pb2_grpc
from tests.integration.bus.redis_fixtures import redis_ns, redis_url  # noqa: F401 (fixtures)
from tests.integration.signals.test_engine_e2e import (
    BREAKOUT_MINUTE,
    MIN,
    T0,
    chain_events,
    scripted_bars,
)

QUOTE_TS = T0 + (BREAKOUT_MINUTE + 1) * MIN - 10 * 10**9  # fresh at the breakout (quotes > 60 s old never fill)

pytestmark = pytest.mark.integration


async def test_two_replicas_share_bars_and_both_fan_out(pg_pool: Any, redis_url: str, redis_ns: str) -> None:  # noqa: F811
    settings = Settings(
        signals={"port": 0, "heartbeat_s": 1.0},
        symbols=["AAPL", "MSFT"],
        redis={"namespace": redis_ns},
        redis_url=redis_url,
    )
    # every stored signal: open ones of any symbol are loaded and tracked at start (another test's
    # leftovers made this replica track five signals instead of one)
    await pg_pool.execute("DELETE FROM signals")
    buses = [RedisStreamsBus(redis_url, settings.redis) for _ in range(2)]
    apps = [SignalsApp(Runtime(settings=settings, db=pg_pool, bus=b), port=0) for b in buses]
    for a in apps:
        await a.start()
    # the features' one owner (analytics' live state, its own connection; no storage to warm from)
    owner_bus = RedisStreamsBus(redis_url, settings.redis)
    owner = LiveState(Runtime(settings=settings, bus=owner_bus))
    await owner.start()
    chans = [grpc.aio.insecure_channel(f"127.0.0.1:{a.port}") for a in apps]
    try:
        calls = [
            signals_pb2_grpc.SignalServiceStub(ch).SubscribeSignals(
                signals_pb2.SubscribeSignalsRequest(symbols=["AAPL"], strategies=["momentum_breakout"])
            )
            for ch in chans
        ]
        for a in apps:
            for _ in range(300):
                if a.broker.subscribers:
                    break
                await asyncio.sleep(0.01)
        pub = buses[0]
        await pub.publish_many(OPTION_TOPIC, [("AAPL", ev) for ev in chain_events(200.0, QUOTE_TS)])
        for _ in range(500):  # each replica keeps the whole chain (one group per replica)
            if all(len(a.engine.chains.chain("AAPL")) == 42 for a in apps):
                break
            await asyncio.sleep(0.02)
        await pub.publish_many(BAR_TOPIC, [("AAPL", ev) for ev in scripted_bars()])

        async def first_signal(call: Any) -> signals_pb2.Signal:
            while True:
                m = await call.read()
                if m.WhichOneof("event") == "signal":
                    return m.signal

        got = await asyncio.wait_for(asyncio.gather(*(first_signal(c) for c in calls)), 30)
        assert got[0].id == got[1].id  # the same signal reached both replicas' subscribers
        for _ in range(200):
            if all(a.bars_seen >= len(scripted_bars()) for a in apps):
                break
            await asyncio.sleep(0.02)
        assert [a.bars_seen for a in apps] == [len(scripted_bars())] * 2  # both saw every bar, in order
        assert owner.computed == len(scripted_bars())  # the features of each bar were computed once
        for a in apps:  # announced before stored: wait for each replica's store writes
            await a.stored()
        stored = 0
        for _ in range(250):  # the writes are asynchronous: give a loaded machine up to 5 s
            stored = await pg_pool.fetchval("SELECT count(*) FROM signals WHERE symbol = 'AAPL'")
            if stored:
                break
            await asyncio.sleep(0.02)
        assert stored == 1
        # no second copy was announced: each subscriber's next event is a heartbeat, not a signal
        for c in calls:
            nxt = await asyncio.wait_for(c.read(), 5)
            assert nxt.WhichOneof("event") == "heartbeat"
        # both replicas track the one stored signal
        assert [[s.id for s in a.engine.tracker.open_signals()] for a in apps] == [[got[0].id]] * 2
        for c in calls:
            c.cancel()
    finally:
        for ch in chans:
            await ch.close()
        for a in apps:
            await a.stop()
        await owner.stop()
        for b in [*buses, owner_bus]:
            await b.close()
