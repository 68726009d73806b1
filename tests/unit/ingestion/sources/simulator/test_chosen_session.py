"""A chosen simulator session (``ingestion.simulator_session``, ``aiots up --session``) against
exchange-calendars' XNYS schedule: it starts at that session's regular open whatever the wall time,
runs on into the next sessions without waiting, anchors the seeded history on itself, and a date
the exchange is closed is refused naming the sessions either side."""

from __future__ import annotations

import datetime as dt

import exchange_calendars as xcals
import pandas as pd
import pytest
from pydantic import ValidationError

from aiots.core import conventions as cv
from aiots.services.common.settings import Settings
from aiots.services.ingestion.sources.simulator import history
from aiots.services.ingestion.sources.simulator.clock import SessionClock, describe_market
from aiots.services.ingestion.sources.simulator.records import MarketSimulator

XNYS = xcals.get_calendar("XNYS", start="2025-01-01", end="2027-12-31")
SESSIONS = [dt.date(2026, 12, 1), dt.date(2026, 11, 27), dt.date(2026, 12, 24), dt.date(2026, 1, 20)]
CLOSED_DAYS = [dt.date(2026, 12, 5), dt.date(2026, 11, 26), dt.date(2026, 12, 25), dt.date(2026, 1, 19)]


def _xnys(day: dt.date) -> tuple[int, int]:
    row = XNYS.schedule.loc[pd.Timestamp(day)]
    return int(row["open"].value), int(row["close"].value)


def _neighbours(day: dt.date) -> tuple[dt.date, dt.date]:
    prev = XNYS.date_to_session(pd.Timestamp(day), direction="previous").date()
    nxt = XNYS.date_to_session(pd.Timestamp(day), direction="next").date()
    return prev, nxt


@pytest.mark.parametrize("day", SESSIONS, ids=str)
def test_a_chosen_session_plays_from_its_regular_open_whatever_the_wall(day: dt.date) -> None:
    open_ns, close_ns = _xnys(day)
    for wall in (cv.ny_ns(dt.date(2026, 12, 5), dt.time(11)), cv.ny_ns(day, dt.time(19)), open_ns - cv.NS_PER_DAY):
        c = SessionClock(wall, session=day)
        st = c.status(wall)
        assert (st.mode, st.session, st.market_ns, st.phase) == ("replay", day, open_ns, "regular")
        assert day.isoformat() in st.note and "--session" in st.note
    assert day.isoformat() in describe_market(wall, day)
    # the regular phase ends at XNYS's close (13:00 ET on an early close), post-market follows
    t = c.advance(24 * 3600, wall_ns=wall)
    assert t is not None and t.new_session and (t.start_ns, t.end_ns, t.phase) == (open_ns, close_ns, "regular")
    t = c.advance(24 * 3600, wall_ns=wall)
    assert t is not None and (t.start_ns, t.phase) == (close_ns, "post")


def test_after_the_chosen_session_the_next_ones_follow_without_waiting() -> None:
    day = dt.date(2026, 11, 25)  # Wednesday before Thanksgiving: next is the early-closing Friday
    wall = cv.ny_ns(day, dt.time(2))  # the wall clock is far behind the simulated sessions
    c = SessionClock(wall, session=day)
    seen: list[dt.date] = []
    while c.now_ns < cv.ny_ns(dt.date(2026, 12, 1), dt.time(20)):
        t = c.advance(1800, wall_ns=wall)
        assert t is not None  # never closed, never waiting for the wall
        if t.new_session:
            seen.append(t.session.date)
        if t.phase == "regular":
            o, cl = _xnys(t.session.date)
            assert o <= t.start_ns < t.end_ns <= cl
    assert seen == [d.date() for d in XNYS.sessions_in_range("2026-11-25", "2026-12-01")]
    assert c.status(wall).mode == "replay" and "after the chosen session 2026-11-25" in c.status(wall).note


@pytest.mark.parametrize("day", CLOSED_DAYS, ids=str)
def test_a_closed_day_is_refused_naming_the_nearest_sessions(day: dt.date) -> None:
    prev, nxt = _neighbours(day)
    with pytest.raises(cv.NotASession) as exc:
        SessionClock(0, session=day)
    assert f"previous {prev.isoformat()}" in str(exc.value) and f"next {nxt.isoformat()}" in str(exc.value)
    with pytest.raises(ValidationError, match=f"previous {prev.isoformat()}, next {nxt.isoformat()}"):
        Settings(ingestion={"simulator_session": day.isoformat()})


def test_the_setting_parses_a_session_date_and_defaults_to_none() -> None:
    assert Settings().ingestion.simulator_session is None
    assert Settings(ingestion={"simulator_session": "2026-12-01"}).ingestion.simulator_session == dt.date(2026, 12, 1)


def test_the_chosen_session_anchors_the_history_and_plays_as_a_run_started_at_its_open() -> None:
    """``aiots up --session D`` gives the same records as the harness's simulator started at D's
    open (tests/integration/signals/test_simulator_signals.py), and its seeded history ends the
    XNYS session before D."""
    day = dt.date(2026, 12, 1)
    syms = ["AAPL", "SPY"]
    chosen = MarketSimulator(syms, 7, session=day)
    harness = MarketSimulator(syms, 7, start_ns=_xnys(day)[0])
    assert chosen.anchor == harness.anchor == day
    path = history.daily_path(7, "AAPL", chosen.anchor, chosen.history_days)
    assert path.days[-1] == XNYS.previous_session(pd.Timestamp(day)).date() and len(path.days) == chosen.history_days
    for _ in range(120):
        a = chosen.step(1.0, option_quotes=True)
        b = harness.step(1.0, option_quotes=True)
        assert [bytes(r) for r in a] == [bytes(r) for r in b]
    assert chosen.now_ns == _xnys(day)[0] + 120 * cv.NS_PER_S
