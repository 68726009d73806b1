"""The replay's per-series columns against the generic per-bar answers they replace: the
regular-hours flags against ``calendar().is_regular_hours`` bar by bar (weekends, holidays, the
early closes and both DST changes, ns either side of each open and close)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core.conventions import NS_PER_MIN, NY, calendar, datetime_to_ns
from aiots.services.backtest.runner import _regular_hours
from aiots.services.features.state import Bar

DAYS = [dt.date(2024, 3, 8), dt.date(2024, 3, 11), dt.date(2024, 7, 3), dt.date(2024, 7, 4), dt.date(2024, 11, 1),
        dt.date(2024, 11, 4), dt.date(2024, 11, 29), dt.date(2024, 12, 24), dt.date(2024, 12, 28)]  # fmt: skip


def _edges() -> list[int]:
    """Every open and close of the sessions around DAYS, and a ns either side."""
    cal = calendar()
    out = []
    for d in cal.sessions_between(min(DAYS) - dt.timedelta(days=3), max(DAYS) + dt.timedelta(days=3)):
        s = cal.session(d)
        out += [s.open_ns - 1, s.open_ns, s.open_ns + 1, s.close_ns - 1, s.close_ns, s.close_ns + 1]
    return out


@settings(max_examples=200, deadline=None)
@given(
    picks=st.lists(
        st.tuples(st.sampled_from(DAYS), st.integers(-60, 25 * 60), st.integers(0, NS_PER_MIN - 1)), max_size=60
    )
)
def test_regular_hours_in_columns_equal_the_calendar_bar_by_bar(picks: list[tuple[dt.date, int, int]]) -> None:
    ts = [
        datetime_to_ns(dt.datetime(d.year, d.month, d.day, tzinfo=NY)) + m * NS_PER_MIN + ns for d, m, ns in picks
    ] + _edges()
    bars = [Bar("X", t, 1.0, 1.0, 1.0, 1.0, 1.0) for t in ts]
    assert _regular_hours(bars) == [calendar().is_regular_hours(t) for t in ts]


def test_no_bars_no_flags() -> None:
    assert _regular_hours([]) == []
