"""Announce before store (issue 20 item 3): a new signal reaches subscribers before its row is
written, and the broker's ring of recent announcements fills the gap in a ``since=`` replay.

The store is held back (its insert waits on an event) so the signals are provably not stored
while the client reconnects; oracle: the list of signals announced, by hand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.signals.app import SignalsApp
from aiots.services.signals.conversions import signal_to_proto
from aiots.services.signals.fanout import Broker
from aiots.services.signals.store import SignalFilter
from aiots.v1 import signals_pb2, signals_pb2_grpc
from tests.integration.signals.test_signal_service import _collect, _wait_subscribers, make_signal

pytestmark = pytest.mark.integration


def same_bar(symbols: list[str], i: int = 500) -> list[Any]:
    """Signals of one bar close (one millisecond) for ``symbols``, in that announce order."""
    out = []
    for sym in symbols:
        s = make_signal(i, symbol=sym)
        out.append(s)
    return out


async def _read(call: Any, n: int) -> list[signals_pb2.SubscribeSignalsResponse]:
    out: list[signals_pb2.SubscribeSignalsResponse] = []
    while len(out) < n:
        m = await asyncio.wait_for(call.read(), 10)
        if m.WhichOneof("event") != "heartbeat":
            out.append(m)
    return out


@pytest.fixture
async def held_app(pg_pool: Any) -> AsyncIterator[tuple[SignalsApp, asyncio.Event]]:
    settings = Settings(signals={"port": 0, "heartbeat_s": 0.5, "subscriber_queue": 64})
    bus = InProcessBus(settings.redis)
    await pg_pool.execute("DELETE FROM signals")
    a = SignalsApp(Runtime(settings=settings, db=pg_pool, bus=bus), port=0)
    release = asyncio.Event()
    insert_many = a.store.insert_many

    async def held_insert(*args: Any, **kwargs: Any) -> set[str]:
        await release.wait()
        return await insert_many(*args, **kwargs)

    a.store.insert_many = held_insert  # type: ignore[method-assign]
    await a.start()
    yield a, release
    release.set()
    await a.stop()
    await bus.close()
    await pg_pool.execute("DELETE FROM signals")  # open signals of five symbols: gone for the next test


async def test_reconnect_with_since_gets_unstored_signals_exactly_once(
    held_app: tuple[SignalsApp, asyncio.Event], pg_pool: Any
) -> None:
    app, release = held_app
    # One bar close, four symbols: the same millisecond, so the ids sort by hash, not by announce
    # order (the case an id comparison gets wrong).
    sigs = same_bar(["AAPL", "MSFT", "TSLA", "SPY"])
    assert sorted(s.id for s in sigs) != [s.id for s in sigs]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = signals_pb2_grpc.SignalServiceStub(ch)
        call = stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest())
        await _wait_subscribers(app, 1)
        await app._emit(sigs[:2], [])
        got = [m.signal.id for m in await _collect(call, 2)]
        assert got == [s.id for s in sigs[:2]]
        call.cancel()
        await app._emit(sigs[2:], [])  # announced while the client is away
        assert await pg_pool.fetchval("SELECT count(*) FROM signals") == 0  # none stored yet
        call = stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest(since=got[-1]))
        await _wait_subscribers(app, 1)
        later = make_signal(501, symbol="QQQ")
        await app._emit([later], [])
        await app._emit(sigs[2:3], [])  # a second replica's copy of an announced signal: dropped
        resumed = [m.signal.id for m in await _collect(call, 3)]
        assert resumed == [sigs[2].id, sigs[3].id, later.id]
        # GetSignal finds an announced signal before it is stored
        one = await stub.GetSignal(signals_pb2.GetSignalRequest(id=later.id))
        assert one.signal.symbol == "QQQ"
        release.set()
        await app.stored()
        stored = {r["id"] for r in await pg_pool.fetch("SELECT id FROM signals")}
        assert stored == {s.id for s in [*sigs, later]}
        # after the writes, a replay from the store alone (the same ids, once each)
        call2 = stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest(since=got[-1]))
        again = [m.signal.id for m in await _read(call2, 3)]
        assert again == resumed
        nxt = await asyncio.wait_for(call2.read(), 5)
        assert nxt.WhichOneof("event") == "heartbeat"  # nothing more, nothing twice
        call.cancel()
        call2.cancel()


async def test_announcing_a_bar_close_keeps_the_loop_and_the_stream_sends_them_all_after(
    held_app: tuple[SignalsApp, asyncio.Event],
) -> None:
    """Announcing never gives up the event loop (the close's other symbols are evaluated before any
    stream write: signals round 11), and the subscribed stream then sends every signal of the close
    in announce order. Oracle: the list announced, by hand."""
    app, _release = held_app
    sigs = same_bar(["AAPL", "MSFT", "TSLA", "SPY", "QQQ"], i=530)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = signals_pb2_grpc.SignalServiceStub(ch)
        call = stub.SubscribeSignals(signals_pb2.SubscribeSignalsRequest())
        await _wait_subscribers(app, 1)
        for sig in sigs:
            step = app._emit([sig], [])
            with pytest.raises(StopIteration):  # ran to its end without suspending
                step.send(None)
        got = [m.signal.id for m in await _collect(call, len(sigs))]
        assert got == [s.id for s in sigs]
        call.cancel()


def test_broker_ring_drops_a_repeat_and_evicts_the_oldest() -> None:
    b = Broker(queue_size=8, ring_size=16)
    protos = [signal_to_proto(make_signal(600 + i)) for i in range(20)]
    assert b.publish(protos[0], False) == 0
    assert b.publish(protos[0], False) == -1  # the same id announced again
    for p in protos[1:]:
        b.publish(p, False)
    assert b.announced(protos[0].id) is None and b.announced(protos[-1].id) is not None
    after, before = b.recent(SignalFilter(), protos[10].id, None)
    assert [s.id for s in after] == [p.id for p in protos[11:]]
    assert before == {p.id for p in protos[4:11]}
