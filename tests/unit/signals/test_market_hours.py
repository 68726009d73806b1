"""Market-hours rules of the engine against hand-derived NYSE facts (exchange-calendars' XNYS):
no idea outside regular hours or in the first minutes after the open, and every horizon ends
before the session's close, the early close of 2025-11-28 (13:00 ET) included."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core.conventions import NS_PER_MIN, NY, datetime_to_ns
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.engine import SignalEngine


def ny(y: int, m: int, d: int, hh: int, mm: int) -> int:
    return datetime_to_ns(dt.datetime(y, m, d, hh, mm, tzinfo=NY))


def test_no_ideas_outside_regular_hours_or_in_the_opening_minutes() -> None:
    cfg = SignalsConfig()  # open_delay 5 min, close buffer 5 min, minimum horizon 10 min
    may = SignalEngine.may_open
    assert not may(ny(2025, 11, 25, 9, 31), cfg)  # quotes still stale right after the open
    assert not may(ny(2025, 11, 25, 9, 34), cfg)
    assert may(ny(2025, 11, 25, 9, 35), cfg)
    assert may(ny(2025, 11, 25, 15, 45), cfg)
    assert not may(ny(2025, 11, 25, 15, 46), cfg)  # less than 5 + 10 minutes before 16:00
    assert not may(ny(2025, 11, 25, 8, 0), cfg)  # pre-market
    assert not may(ny(2025, 11, 25, 17, 0), cfg)  # post-market
    assert not may(ny(2025, 11, 27, 11, 0), cfg)  # Thanksgiving: closed
    assert not may(ny(2025, 11, 29, 11, 0), cfg)  # Saturday
    assert may(ny(2025, 11, 28, 12, 45), cfg)  # early close at 13:00: 12:45 is the last minute
    assert not may(ny(2025, 11, 28, 12, 46), cfg)
    assert not may(ny(2025, 11, 28, 14, 0), cfg)


def test_horizon_is_clipped_before_the_close_including_early_closes() -> None:
    cfg = SignalsConfig()
    end = SignalEngine.horizon_end
    # 90-minute horizon at 12:00 on the early-close day ends at 12:55, not 13:30
    assert end(ny(2025, 11, 28, 12, 0), 90 * NS_PER_MIN, cfg) == ny(2025, 11, 28, 12, 55)
    # on a normal day at 15:00 it ends at 15:55
    assert end(ny(2025, 11, 25, 15, 0), 90 * NS_PER_MIN, cfg) == ny(2025, 11, 25, 15, 55)
    # and is untouched when it ends well before the close
    assert end(ny(2025, 11, 25, 10, 0), 60 * NS_PER_MIN, cfg) == ny(2025, 11, 25, 11, 0)


DAYS = [dt.date(2025, 3, 7), dt.date(2025, 3, 9), dt.date(2025, 3, 10), dt.date(2025, 11, 2), dt.date(2025, 11, 3),
        dt.date(2025, 11, 27), dt.date(2025, 11, 28), dt.date(2025, 12, 24), dt.date(2025, 12, 25)]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    day=st.sampled_from(DAYS),
    minute=st.integers(-5, 24 * 60 + 5),
    ns=st.sampled_from([0, 1, NS_PER_MIN - 1]),
    delay=st.sampled_from([0.0, 5.0, 0.5, 31.0]),
    buffer=st.sampled_from([0.0, 5.0, 7.5]),
    horizon=st.sampled_from([10.0, 0.25, 400.0]),
)
def test_decide_keeps_may_open_per_day_exactly(
    day: dt.date, minute: int, ns: int, delay: float, buffer: float, horizon: float
) -> None:
    """The bounds decide keeps for a New York day give may_open's answer at every instant of that
    day: DST changes, Thanksgiving, the early closes, a weekend, ns either side of each bound."""
    cfg = SignalsConfig.model_validate(
        {"market_hours": {"open_delay_minutes": delay, "close_buffer_minutes": buffer, "min_horizon_minutes": horizon}}
    )
    t = datetime_to_ns(dt.datetime(day.year, day.month, day.day, tzinfo=NY)) + minute * NS_PER_MIN + ns
    lo, hi, first, last, kept = SignalEngine._open_bounds(t, cfg)
    assert lo <= t < hi and kept is cfg
    assert (first <= t <= last) == SignalEngine.may_open(t, cfg)
    for u in (lo, hi - 1, first - 1, first, last, last + 1):  # the same bounds hold all day
        if lo <= u < hi:
            assert (first <= u <= last) == SignalEngine.may_open(u, cfg)
