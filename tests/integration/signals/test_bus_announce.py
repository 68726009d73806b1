"""A new signal's bus events (the broadcast to the other replicas, the ``signals`` topic) leave after
the burst that announced it: this replica's subscribers have the whole burst first, the bus then gets
it in announce order, an exit goes out after its signal, and stop sends what is queued.

Oracle: the signals announced, by hand, and the order of the bus's calls, logged where they happen
(a bus that records each call before doing it); real PostgreSQL for the exit's conditional UPDATE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.signals.app import SIGNAL_CHANNEL, SIGNAL_TOPIC, SignalsApp
from aiots.services.signals.models import OptionQuote, Status
from aiots.services.signals.store import SignalFilter
from aiots.v1 import events_pb2
from tests.integration.signals.test_signal_ring import same_bar
from tests.integration.signals.test_signal_service import make_signal
from tests.integration.wait import until

pytestmark = pytest.mark.integration


class _LoggingBus(InProcessBus):
    """The in-process bus, logging each signal broadcast and topic event as (call, signal id, update)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.redis)
        self.log: list[tuple[str, str, bool]] = []
        #: when set: a new signal's broadcast waits for it (a slow Redis)
        self.gate: asyncio.Event | None = None

    @staticmethod
    def _ev(raw: Any) -> events_pb2.SignalEvent:
        return events_pb2.SignalEvent.FromString(raw if isinstance(raw, bytes) else raw.SerializeToString())

    async def broadcast(self, channel: str, event: Any) -> None:
        if channel == SIGNAL_CHANNEL:
            ev = self._ev(event)
            if self.gate is not None and not ev.is_update:
                await self.gate.wait()
            self.log.append(("broadcast", ev.signal.id, ev.is_update))
        await super().broadcast(channel, event)

    async def publish(self, topic: str, key: str, event: Any) -> str:
        if topic == SIGNAL_TOPIC:
            ev = self._ev(event)
            self.log.append(("topic", ev.signal.id, ev.is_update))
        return str(await super().publish(topic, key, event))

    async def publish_many(self, topic: str, items: Sequence[tuple[str, Any]]) -> None:
        if topic == SIGNAL_TOPIC:
            for _key, event in items:
                ev = self._ev(event)
                self.log.append(("topic", ev.signal.id, ev.is_update))
        await super().publish_many(topic, items)


@pytest.fixture
async def logged(pg_pool: Any) -> AsyncIterator[tuple[SignalsApp, _LoggingBus]]:
    settings = Settings(signals={"port": 0, "heartbeat_s": 0.5, "subscriber_queue": 64})
    bus = _LoggingBus(settings)
    await pg_pool.execute("DELETE FROM signals")
    app = SignalsApp(Runtime(settings=settings, db=pg_pool, bus=bus), port=0)
    await app.start()
    yield app, bus
    await app.stop()
    await bus.close()
    await pg_pool.execute("DELETE FROM signals")


async def test_a_burst_reaches_the_bus_after_this_replicas_subscribers(
    logged: tuple[SignalsApp, _LoggingBus],
) -> None:
    app, bus = logged
    sigs = same_bar(["AAPL", "MSFT", "TSLA"], i=700)
    sub = app.broker.subscribe(SignalFilter(), include_updates=False)
    for sig in sigs:  # one bar close: each symbol's signal announced in turn, the loop never yielded
        await app._emit([sig], [])
    assert sub.queue.qsize() == 3  # this replica's subscriber has the whole burst
    assert bus.log == []  # and the bus nothing yet
    ids = [s.id for s in sigs]
    await until(lambda: len(bus.log) == 6, 5.0)
    assert bus.log == [("broadcast", i, False) for i in ids] + [("topic", i, False) for i in ids]
    app.broker.unsubscribe(sub)


async def test_an_exit_goes_on_the_bus_after_its_signal(logged: tuple[SignalsApp, _LoggingBus]) -> None:
    """Even when the signal's own bus events are still on their way (a slow broadcast) as the store
    writer announces its exit."""
    app, bus = logged
    bus.gate = gate = asyncio.Event()
    s = make_signal(720)
    app.engine.track(s)
    await app._emit([s], [])
    asyncio.get_running_loop().call_later(0.3, gate.set)
    hit = OptionQuote(**{**s.contract.__dict__, "bid": s.target_price + 0.01, "ts_ns": s.created_ns + 60 * 10**9})
    updates = app.engine.on_option_quote(hit)
    assert [u.status for u in updates] == [Status.TARGET_HIT]
    await app._emit([], updates)  # stored, then announced by the store writer
    await app.stored()
    await until(lambda: len(bus.log) == 4, 5.0)
    new = [e for e in bus.log if not e[2]]
    exits = [e for e in bus.log if e[2]]
    assert sorted(new) == [("broadcast", s.id, False), ("topic", s.id, False)]
    assert sorted(exits) == [("broadcast", s.id, True), ("topic", s.id, True)]
    assert max(bus.log.index(e) for e in new) < min(bus.log.index(e) for e in exits)


async def test_stop_sends_what_is_queued(pg_pool: Any) -> None:
    settings = Settings(signals={"port": 0, "heartbeat_s": 0.5})
    bus = _LoggingBus(settings)
    await pg_pool.execute("DELETE FROM signals")
    app = SignalsApp(Runtime(settings=settings, db=pg_pool, bus=bus), port=0)
    await app.start()
    sigs = same_bar(["SPY", "QQQ"], i=740)
    try:
        for sig in sigs:
            await app._emit([sig], [])
        assert bus.log == []
    finally:
        await app.stop()  # no turn of the loop in between: stop sends them
        await bus.close()
        await pg_pool.execute("DELETE FROM signals")
    assert [e for e in bus.log if e[0] == "topic"] == [("topic", s.id, False) for s in sigs]
