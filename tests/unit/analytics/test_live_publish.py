"""Analytics' live state publishes a burst's feature events after its in-process consumers took the
whole burst, in bar order, and loses none of them at stop or when its queue fills.

Oracle: hand-built bars of three symbols closed together; the order of the consumer's calls and of
the bus's appends is recorded where each happens (a local listener, a bus that logs its appends).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiots.services.analytics.live_state import LiveState
from aiots.services.bus.in_process import InProcessBus
from aiots.services.common.local_feed import LocalFeed
from aiots.services.common.runtime import Runtime
from aiots.services.common.settings import Settings
from aiots.services.features.state import Snapshot
from aiots.v1 import common_pb2, events_pb2

NS = 1_000_000_000
T0 = 1_700_000_040 * NS  # a minute's open (ns)
SYMBOLS = ["AAPL", "MSFT", "NVDA"]
FEATURES = "features:1m"


class _LoggingBus(InProcessBus):
    """The in-process bus, logging ("bus", symbol) for each features event appended."""

    def __init__(self, log: list[tuple[str, str]], settings: Settings) -> None:
        super().__init__(settings.redis)
        self.log = log
        self.calls = 0

    async def publish(self, topic: str, key: str, event: Any) -> str:
        if topic == FEATURES:
            self.calls += 1
            self.log.append(("bus", key))
        return str(await super().publish(topic, key, event))

    async def publish_many(self, topic: str, items: Sequence[tuple[str, Any]]) -> None:
        if topic == FEATURES:
            self.calls += 1
            self.log.extend(("bus", key) for key, _ in items)
        await super().publish_many(topic, items)


def _bar(symbol: str, minute: int, close: float) -> tuple[str, events_pb2.BarEvent]:
    bar = common_pb2.Bar(
        symbol=symbol, interval="1m", open=close, high=close + 0.5, low=close - 0.5, close=close, volume=100.0
    )
    return symbol, events_pb2.BarEvent(bar=bar, ts_event=T0 + minute * 60 * NS, closed=True)


async def _setup(publish_queue: int = 1024) -> tuple[LiveState, _LoggingBus, list[tuple[str, str]]]:
    settings = Settings(symbols=SYMBOLS, analytics={"live_intervals": ["1m"], "publish_queue": publish_queue})
    log: list[tuple[str, str]] = []
    bus = _LoggingBus(log, settings)
    rt = Runtime(settings=settings, bus=bus)
    live = LiveState(rt)
    await live.start()

    async def take(item: tuple[Snapshot, events_pb2.FeatureParams]) -> None:
        log.append(("local", item[0].bar.symbol))

    LocalFeed.of(rt).listen(FEATURES, take)
    return live, bus, log


async def _until(cond: Any) -> None:
    for _ in range(500):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("timed out")


async def test_a_burst_is_published_after_the_local_consumers_took_all_of_it() -> None:
    live, bus, log = await _setup()
    try:
        await bus.publish_many("bars:1m", [_bar(s, 0, 100.0 + i) for i, s in enumerate(SYMBOLS)])
        await _until(lambda: sum(1 for w, _ in log if w == "bus") == 3)
        assert log == [("local", s) for s in SYMBOLS] + [("bus", s) for s in SYMBOLS]
        assert bus.calls == 1  # one publish for the burst
        # the events carry their own bars (the bar closed at 100 + i for the i-th symbol)
        seen: dict[str, float] = {}

        async def read() -> None:
            async for d in bus.consume(FEATURES, SYMBOLS, group="check", consumer="check", start="0"):
                ev = events_pb2.FeatureEvent.FromString(d.payload)
                seen[ev.symbol] = ev.bar.close
                if len(seen) == 3:
                    return

        await asyncio.wait_for(read(), 5)
        assert seen == {s: 100.0 + i for i, s in enumerate(SYMBOLS)}
    finally:
        await live.stop()
        await bus.close()


async def test_stop_publishes_what_the_follower_queued() -> None:
    live, bus, log = await _setup()
    try:
        for i, s in enumerate(SYMBOLS):  # as the follower does it: queued, the publisher not yet run
            await live.on_bar(_bar(s, 0, 50.0 + i)[1])
        assert [w for w, _ in log] == ["local"] * 3
    finally:
        await live.stop()
    assert log[3:] == [("bus", s) for s in SYMBOLS]
    await bus.close()


async def test_a_full_queue_is_published_by_the_follower_itself() -> None:
    live, bus, log = await _setup(publish_queue=2)
    try:
        for i, s in enumerate(SYMBOLS):
            await live.on_bar(_bar(s, 0, 50.0 + i)[1])
        # the second snapshot filled the queue: the first two went out at once, in bar order
        assert log == [("local", "AAPL"), ("local", "MSFT"), ("bus", "AAPL"), ("bus", "MSFT"), ("local", "NVDA")]
        await _until(lambda: len(log) == 6)
        assert log[5] == ("bus", "NVDA")
    finally:
        await live.stop()
        await bus.close()


async def test_without_the_follower_a_bar_is_published_at_once() -> None:
    settings = Settings(symbols=SYMBOLS, analytics={"live_intervals": ["1m"]})
    log: list[tuple[str, str]] = []
    bus = _LoggingBus(log, settings)
    live = LiveState(Runtime(settings=settings, bus=bus))  # not started: no publisher task
    await live.restore("AAPL", "1m")
    assert await live.on_bar(_bar("AAPL", 0, 10.0)[1]) is not None
    assert log == [("bus", "AAPL")]
    await bus.close()
