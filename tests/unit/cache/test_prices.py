"""PriceBook: hand-derived snapshots, America/New_York session roll-over, bad input, cache down.

Oracles: the hand-computed session statistics of small trade sequences, Python's own zoneinfo
for New York midnights (independent of the code's arithmetic), and max/min/sum for the property test.
"""

from __future__ import annotations

import asyncio
import math
import socket
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.services.bus.in_process import InProcessBus
from aiots.services.cache.backends import MemoryBackend, RedisBackend
from aiots.services.cache.backends.base import Keyspace
from aiots.services.cache.prices import PriceBook, session_end_ns
from aiots.services.cache.watch import PriceWatchHub
from aiots.services.common.errors import InvalidArgument, NotFound
from aiots.services.common.settings import RedisSettings

NY = ZoneInfo("America/New_York")


def ns(*args: int) -> int:
    return int(datetime(*args, tzinfo=NY).timestamp()) * 1_000_000_000


def book(**kw: object) -> PriceBook:
    return PriceBook(MemoryBackend(1 << 20), None, keyspace=Keyspace("t"), channel="prices", tracked=["AAPL"], **kw)  # type: ignore[arg-type]


async def test_session_statistics_and_rollover() -> None:
    p = book()
    day1 = ns(2026, 1, 2, 9, 30)
    await p.on_trade("AAPL", day1, 100.0, 10)
    await p.on_trade("AAPL", day1 + 1, 102.0, 5)
    await p.on_trade("AAPL", day1 + 2, 99.0, 5)
    await p.on_trade("AAPL", day1 + 3, 101.0, 20)
    s = await p.get("AAPL")
    assert (s.open, s.high, s.low, s.last, s.volume, s.prev_close) == (100.0, 102.0, 99.0, 101.0, 40.0, 0.0)
    assert s.change == 0.0 and s.change_pct == 0.0  # no previous close yet
    day2 = ns(2026, 1, 5, 9, 30)  # Monday
    await p.on_quote("AAPL", day2 - 1000, 100.5, 101.5)  # pre-market quote already rolls the session
    await p.on_trade("AAPL", day2, 103.0, 7)
    s = await p.get("AAPL")
    assert (s.open, s.high, s.low, s.last, s.volume, s.prev_close) == (103.0, 103.0, 103.0, 103.0, 7.0, 101.0)
    assert (s.bid, s.ask) == (100.5, 101.5)
    assert s.change == pytest.approx(2.0)
    assert s.change_pct == pytest.approx(200.0 / 101.0)
    assert s.ts_ns == day2


async def test_prev_close_and_out_of_order_trade() -> None:
    p = book()
    t = ns(2026, 1, 2, 10, 0)
    await p.set_prev_close("aapl", 50.0)
    await p.on_trade("AAPL", t, 51.0, 1)
    await p.on_trade("AAPL", t - 10, 55.0, 2)  # late print: counts for high/volume, not for last
    s = await p.get("AAPL")
    assert (s.last, s.high, s.volume, s.prev_close) == (51.0, 55.0, 3.0, 50.0)
    assert s.change_pct == pytest.approx(2.0)


async def test_bar_feed() -> None:
    p = book()
    t = ns(2026, 1, 2, 9, 30)
    await p.on_bar("AAPL", t, 10.0, 12.0, 9.0, 11.0, 1000)
    await p.on_bar("AAPL", t + 60_000_000_000, 11.0, 11.5, 8.5, 9.5, 500)
    s = await p.get("AAPL")
    assert (s.open, s.high, s.low, s.last, s.volume) == (10.0, 12.0, 8.5, 9.5, 1500.0)


def test_session_end_follows_new_york_midnight_across_dst() -> None:
    noon_dst_start = ns(2026, 3, 8, 12, 0)  # clocks went forward at 02:00 that day
    assert session_end_ns(noon_dst_start) == ns(2026, 3, 9, 0, 0)
    assert session_end_ns(ns(2026, 11, 1, 23, 59)) == ns(2026, 11, 2, 0, 0)  # fall back day (25 h)
    assert ns(2026, 3, 9, 0, 0) - ns(2026, 3, 8, 0, 0) == 23 * 3600 * 10**9


async def test_bad_input() -> None:
    p = book()
    t = ns(2026, 1, 2, 10, 0)
    for args, field in (
        (("AAPL", t, 0.0, 1), "price"),
        (("AAPL", t, math.nan, 1), "price"),
        (("AAPL", t, math.inf, 1), "price"),
        (("AAPL", t, 1.0, -1), "size"),
        (("AAPL", 0, 1.0, 1), "ts_ns"),
        (("", t, 1.0, 1), "symbol"),
        (("A$B", t, 1.0, 1), "symbol"),
    ):
        with pytest.raises(InvalidArgument, match=field):
            await p.on_trade(*args)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="bid"):
        await p.on_quote("AAPL", t, -1.0, 1.0)
    with pytest.raises(InvalidArgument, match="bar"):
        await p.on_bar("AAPL", t, 10.0, 9.0, 8.0, 9.5, 1)
    with pytest.raises(NotFound, match=r"'MSFT'.*AAPL"):
        await p.get("MSFT")


async def test_cache_down_does_not_raise() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = RedisBackend(f"redis://127.0.0.1:{port}/0", RedisSettings(socket_timeout_s=0.5))
    p = PriceBook(backend, None, keyspace=Keyspace("t"), channel="prices")
    try:
        assert await p.on_trade("AAPL", ns(2026, 1, 2, 10, 0), 1.0, 1) is False
        assert p.write_failures == 1
    finally:
        await backend.close()


async def test_changes_are_broadcast_in_order() -> None:
    bus = InProcessBus(RedisSettings(namespace="t"))
    p = PriceBook(MemoryBackend(1 << 20), bus, keyspace=Keyspace("t"), channel="prices")
    sub = bus.listen("prices")
    for i in range(5):
        await p.on_trade("SPY", ns(2026, 1, 2, 10, 0) + i, 500.0 + i, 1)
    from aiots.services.cache.convert import price_from_bytes

    got = [price_from_bytes(await asyncio.wait_for(sub.__anext__(), 1)).last for _ in range(5)]
    assert got == [500.0, 501.0, 502.0, 503.0, 504.0]
    await bus.close()


trades = st.lists(
    st.tuples(
        st.integers(0, 10**12),
        st.floats(0.01, 1e6, allow_nan=False, allow_infinity=False),
        st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(trades)
def test_property_high_low_volume_last(ts: list[tuple[int, float, float]]) -> None:
    base = ns(2026, 1, 2, 9, 30)

    async def run() -> None:
        p = book()
        for dt, price, size in ts:
            await p.on_trade("AAPL", base + dt, price, size)
        s = await p.get("AAPL")
        assert s.high == max(x[1] for x in ts)
        assert s.low == min(x[1] for x in ts)
        assert s.volume == pytest.approx(sum(x[2] for x in ts))
        assert s.open == ts[0][1]
        newest = max(range(len(ts)), key=lambda i: (ts[i][0], i))  # latest time; ties: the later call
        assert s.last == ts[newest][1]

    asyncio.run(run())


class _BrokenListener:
    """A bus whose subscription fails on the first read (e.g. a non-retryable Redis error)."""

    def listen(self, channel: str) -> _BrokenListener:
        return self

    def __aiter__(self) -> _BrokenListener:
        return self

    async def __anext__(self) -> bytes:
        raise RuntimeError("subscription broke")


async def test_watch_hub_says_when_its_fan_out_dies(caplog: pytest.LogCaptureFixture) -> None:
    hub = PriceWatchHub(_BrokenListener(), "prices", 4)
    await hub.start()
    assert hub._task is not None
    await asyncio.wait([hub._task], timeout=5)
    assert any("fan-out on prices stopped" in r.getMessage() and r.exc_info for r in caplog.records)
    await hub.stop()  # already logged: stopping does not raise it again


async def test_watch_hub_ends_with_the_in_process_bus() -> None:
    bus = InProcessBus(RedisSettings(namespace="t"))
    hub = PriceWatchHub(bus, "prices", 4)
    await hub.start()
    assert hub._task is not None
    await bus.close()
    await asyncio.wait_for(hub._task, 5)


async def test_prev_close_is_the_regular_close_not_a_post_market_print() -> None:
    p = book()
    await p.on_trade("AAPL", ns(2026, 1, 2, 15, 59), 100.0, 10)  # last regular-hours print
    await p.on_trade("AAPL", ns(2026, 1, 2, 17, 30), 105.0, 10)  # post-market
    await p.on_trade("AAPL", ns(2026, 1, 5, 9, 31), 106.0, 10)  # Monday
    s = await p.get("AAPL")
    assert s.prev_close == 100.0 and s.change == pytest.approx(6.0)


async def test_prev_close_on_an_early_close_day() -> None:
    # 2025-11-28 closes at 13:00 ET (hand-derived; exchange-calendars agrees in tests/unit/core)
    p = book()
    await p.on_trade("AAPL", ns(2025, 11, 28, 12, 59), 50.0, 1)
    await p.on_trade("AAPL", ns(2025, 11, 28, 14, 0), 52.0, 1)  # after the early close: post-market
    await p.on_trade("AAPL", ns(2025, 12, 1, 4, 30), 53.0, 1)  # Monday pre-market
    assert (await p.get("AAPL")).prev_close == 50.0
