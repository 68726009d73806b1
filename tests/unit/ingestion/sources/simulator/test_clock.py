"""The simulator clock against exchange-calendars' XNYS sessions and hand-picked wall times."""

from __future__ import annotations

import datetime as dt

import exchange_calendars as xcals
import pandas as pd

from aiots.core import conventions as cv
from aiots.services.ingestion.sources.simulator.clock import SessionClock, describe_market

XNYS = xcals.get_calendar("XNYS", start="2025-01-01", end="2027-12-31")


def et(y: int, m: int, d: int, hh: int, mm: int = 0) -> int:
    return int(dt.datetime(y, m, d, hh, mm, tzinfo=cv.NY).timestamp()) * cv.NS_PER_S


def test_live_in_a_session() -> None:
    c = SessionClock(et(2026, 3, 3, 10, 15))
    st = c.status()
    assert (st.mode, st.phase, st.market_ns, st.session) == (
        "live",
        "regular",
        et(2026, 3, 3, 10, 15),
        dt.date(2026, 3, 3),
    )
    assert SessionClock(et(2026, 3, 3, 5, 0)).status().phase == "pre"
    assert SessionClock(et(2026, 3, 3, 19, 0)).status().phase == "post"


def test_saturday_replays_friday_at_the_same_time_of_day() -> None:
    c = SessionClock(et(2026, 12, 5, 11, 0))  # Saturday
    st = c.status()
    assert (st.mode, st.session, st.market_ns, st.phase) == (
        "replay",
        dt.date(2026, 12, 4),
        et(2026, 12, 4, 11, 0),
        "regular",
    )
    assert "closed" in st.note and "2026-12-04" in st.note
    assert "2026-12-04" in describe_market(et(2026, 12, 5, 11, 0))
    # outside regular hours the replay starts at the open
    assert SessionClock(et(2026, 12, 5, 17, 0)).status().market_ns == et(2026, 12, 4, 9, 30)


def test_holiday_and_night_replay_the_last_session() -> None:
    c = SessionClock(et(2026, 1, 19, 10, 0))  # MLK day
    assert (c.mode, c.session.date, c.now_ns) == ("replay", dt.date(2026, 1, 16), et(2026, 1, 16, 10, 0))
    c = SessionClock(et(2026, 1, 21, 2, 0))  # Wednesday 02:00: Tuesday's session
    assert (c.mode, c.session.date, c.now_ns) == ("replay", dt.date(2026, 1, 20), et(2026, 1, 20, 9, 30))
    c = SessionClock(et(2026, 1, 20, 22, 0))  # Tuesday 22:00: Tuesday's session from its open
    assert (c.mode, c.session.date) == ("replay", dt.date(2026, 1, 20))


def test_following_the_wall_the_clock_closes_until_the_next_pre_market() -> None:
    c = SessionClock(et(2026, 12, 4, 19, 59))  # Friday post-market, live
    t = c.advance(60, wall_ns=et(2026, 12, 4, 19, 59))
    assert t is not None and t.end_ns == et(2026, 12, 4, 20, 0)
    assert c.advance(60, wall_ns=et(2026, 12, 5, 12, 0)) is None  # Saturday: closed
    st = c.status()
    assert st.mode == "closed" and "2026-12-07 04:00" in st.note
    t = c.advance(60, wall_ns=et(2026, 12, 7, 4, 0))
    assert (
        t is not None and t.new_session and t.session.date == dt.date(2026, 12, 7) and t.start_ns == et(2026, 12, 7, 4)
    )


def test_free_running_ticks_lie_in_sessions_and_phases() -> None:
    c = SessionClock(et(2025, 11, 25, 12, 0), follow_wall=False)
    seen: list[dt.date] = []
    sched = XNYS.schedule
    while c.now_ns < et(2025, 12, 2, 20, 0):
        t = c.advance(600)
        assert t is not None
        if t.new_session:
            seen.append(t.session.date)
        day = cv.ny_date(t.start_ns)
        assert XNYS.is_session(pd.Timestamp(day)) and day == t.session.date
        row = sched.loc[pd.Timestamp(day)]
        o, cl = row["open"].value, row["close"].value
        assert et(day.year, day.month, day.day, 4) <= t.start_ns < t.end_ns <= et(day.year, day.month, day.day, 20)
        if t.phase == "regular":
            assert o <= t.start_ns and t.end_ns <= cl
        elif t.phase == "pre":
            assert t.end_ns <= o
        else:
            assert t.phase == "post" and t.start_ns >= cl
    assert seen == [t.date() for t in XNYS.sessions_in_range("2025-11-25", "2025-12-02")]
    assert dt.date(2025, 11, 27) not in seen  # Thanksgiving
