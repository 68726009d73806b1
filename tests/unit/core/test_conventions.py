"""aiots.core.conventions against independent facts.

Oracles: exchange-calendars' own XNYS answers (queried directly, not through our table), and
hand-derived calendar facts (NYSE holiday list, the OCC/CBOE expiry rules) written out below.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

import exchange_calendars as xcals
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import conventions as cv

D = dt.date
ET = cv.NY


@functools.lru_cache(maxsize=1)
def _xnys() -> Any:
    return xcals.get_calendar("XNYS", start="2015-01-01", end="2028-12-31")


def _ns(y: int, m: int, d: int, hh: int, mm: int, tz: dt.tzinfo = ET) -> int:
    return int(dt.datetime(y, m, d, hh, mm, tzinfo=tz).timestamp()) * cv.NS_PER_S


# --- hand-derived calendar facts --------------------------------------------------------------
HOLIDAYS = [
    D(2025, 12, 25),  # Christmas (Thu)
    D(2026, 1, 1),  # New Year's Day (Thu)
    D(2026, 1, 19),  # Martin Luther King Jr. Day (third Monday of January)
    D(2026, 2, 16),  # Washington's Birthday (third Monday of February)
    D(2026, 4, 3),  # Good Friday 2026 (Easter Sunday is 2026-04-05)
    D(2025, 6, 19),  # Juneteenth (Thu)
    D(2026, 6, 19),  # Juneteenth (Fri) - also the June 2026 third Friday
    D(2026, 12, 25),  # Christmas (Fri)
    D(2027, 1, 1),  # New Year's Day (Fri)
]


@pytest.mark.parametrize("day", HOLIDAYS, ids=str)
def test_holidays_are_not_sessions(day: dt.date) -> None:
    cal = cv.calendar()
    assert day.weekday() < 5  # a weekday, so only the holiday rule closes it
    assert not cal.is_session(day)
    assert not _xnys().is_session(pd.Timestamp(day))
    with pytest.raises(cv.NotASession) as err:
        cal.session(day)
    e = err.value
    assert e.before is not None and e.after is not None and e.before < day < e.after
    assert cal.is_session(e.before) and cal.is_session(e.after)
    assert e.before.isoformat() in str(e) and e.after.isoformat() in str(e)


def test_nearest_sessions_around_the_new_year_and_a_weekend() -> None:
    cal = cv.calendar()
    assert cal.session_before(D(2026, 1, 1)) == D(2025, 12, 31)
    assert cal.session_after(D(2026, 1, 1)) == D(2026, 1, 2)
    with pytest.raises(cv.NotASession) as err:
        cal.session(D(2026, 1, 17))  # Saturday before MLK day
    assert (err.value.before, err.value.after) == (D(2026, 1, 16), D(2026, 1, 20))


def test_early_close_day_after_thanksgiving_2025() -> None:
    s = cv.calendar().session(D(2025, 11, 28))
    assert s.early_close
    assert s.open_ns == _ns(2025, 11, 28, 9, 30)
    assert s.close_ns == _ns(2025, 11, 28, 13, 0) == _ns(2025, 11, 28, 18, 0, dt.UTC)
    assert cv.expiry_ns(D(2025, 11, 28)) == s.close_ns
    # a normal Friday closes at 16:00 ET (21:00 UTC in winter, 20:00 UTC in summer)
    assert cv.expiry_ns("2025-12-05") == _ns(2025, 12, 5, 21, 0, dt.UTC)
    assert cv.expiry_ns("2026-07-17") == _ns(2026, 7, 17, 20, 0, dt.UTC)
    assert not cv.calendar().session(D(2025, 12, 5)).early_close


def test_phase_on_an_early_close_day() -> None:
    cal = cv.calendar()
    assert cal.phase(_ns(2025, 11, 28, 3, 59)) == "closed"
    assert cal.phase(_ns(2025, 11, 28, 4, 0)) == "pre"
    assert cal.phase(_ns(2025, 11, 28, 9, 30)) == "regular"
    assert cal.phase(_ns(2025, 11, 28, 12, 59)) == "regular"
    assert cal.phase(_ns(2025, 11, 28, 13, 0)) == "post"
    assert cal.phase(_ns(2025, 11, 28, 19, 59)) == "post"
    assert cal.phase(_ns(2025, 11, 28, 20, 0)) == "closed"
    assert cal.phase(_ns(2025, 11, 29, 12, 0)) == "closed"  # Saturday
    assert cal.phase(_ns(2025, 12, 25, 12, 0)) == "closed"  # Christmas


def test_previous_close_is_the_prior_sessions_close() -> None:
    cal = cv.calendar()
    # Monday 2025-12-01 pre-market and regular hours: the early close of Friday 2025-11-28
    for hh in (5, 10, 17):
        assert cal.previous_close_ns(_ns(2025, 12, 1, hh, 0)) == _ns(2025, 11, 28, 13, 0)
    # Tuesday 2026-01-20 (after MLK Monday): Friday 2026-01-16 16:00
    assert cal.previous_close_ns(_ns(2026, 1, 20, 10, 0)) == _ns(2026, 1, 16, 16, 0)
    # on the holiday itself: the latest close before it
    assert cal.previous_close_ns(_ns(2026, 1, 19, 12, 0)) == _ns(2026, 1, 16, 16, 0)


# --- expiry rules (hand-derived) -------------------------------------------------------------
def test_third_friday() -> None:
    assert cv.third_friday(2026, 6) == D(2026, 6, 19)
    assert cv.third_friday(2026, 1) == D(2026, 1, 16)
    assert cv.third_friday(2025, 11) == D(2025, 11, 21)
    assert cv.third_friday(2026, 5) == D(2026, 5, 15)  # month starting on a Friday


def test_weekly_and_monthly_expiries_june_2026_juneteenth_moves_to_thursday() -> None:
    got = cv.listed_expiries("AAPL", D(2026, 6, 1), D(2026, 6, 30))
    assert got == [D(2026, 6, 5), D(2026, 6, 12), D(2026, 6, 18), D(2026, 6, 26)]
    assert cv.is_monthly_expiry(D(2026, 6, 18))
    assert not cv.is_monthly_expiry(D(2026, 6, 12))
    assert cv.listed_expiries("SPX", D(2026, 6, 1), D(2026, 6, 30)) == [D(2026, 6, 18)]


def test_good_friday_weekly_moves_to_thursday() -> None:
    assert cv.listed_expiries("MSFT", D(2026, 3, 30), D(2026, 4, 10)) == [D(2026, 4, 2), D(2026, 4, 10)]


def test_no_expiry_on_christmas_or_new_year_2026() -> None:
    got = cv.listed_expiries("AAPL", D(2026, 12, 20), D(2027, 1, 10))
    assert got == [D(2026, 12, 24), D(2026, 12, 31), D(2027, 1, 8)]
    assert D(2026, 12, 25) not in got and D(2027, 1, 1) not in got
    # 2026-12-24 is an early close: the moved expiry is at 13:00 ET
    assert cv.expiry_ns(D(2026, 12, 24)) == _ns(2026, 12, 24, 13, 0)
    for root in ("SPY", "QQQ", "SPXW", "SPX", "TSLA"):
        days = cv.listed_expiries(root, D(2026, 12, 20), D(2027, 1, 10))
        assert D(2026, 12, 25) not in days and D(2027, 1, 1) not in days


def test_daily_expiries_for_spy_and_qqq_skip_holidays_and_weekends() -> None:
    expected = [D(2026, 1, d) for d in (12, 13, 14, 15, 16, 20, 21, 22, 23)]  # 19th is MLK day
    assert cv.listed_expiries("SPY", D(2026, 1, 12), D(2026, 1, 25)) == expected
    assert cv.listed_expiries("qqq", "2026-01-12", "2026-01-25") == expected
    # a single stock lists Fridays only
    assert cv.listed_expiries("AAPL", D(2026, 1, 12), D(2026, 1, 25)) == [D(2026, 1, 16), D(2026, 1, 23)]


def test_monthly_only_index_roots() -> None:
    got = cv.listed_expiries("SPX", D(2026, 1, 1), D(2026, 12, 31))
    assert got == [
        D(2026, 1, 16), D(2026, 2, 20), D(2026, 3, 20), D(2026, 4, 17), D(2026, 5, 15), D(2026, 6, 18),
        D(2026, 7, 17), D(2026, 8, 21), D(2026, 9, 18), D(2026, 10, 16), D(2026, 11, 20), D(2026, 12, 18),
    ]  # fmt: skip


# --- identity / style / stats (hand-derived) ----------------------------------------------------
def test_occ_examples() -> None:
    o = cv.parse_occ("AAPL  250117C00150000")
    assert o == cv.OccSymbol("AAPL", D(2025, 1, 17), "C", 150.0)
    assert cv.parse_occ("SPXW260618P05500500").strike == 5500.5
    assert cv.format_occ("spy", "2026-06-18", "put", 550.5) == "SPY   260618P00550500"
    for bad in ("AAPL 250117X00150000", "AAPL  251317C00150000", "", None, "TOOLONGROOT250117C00150000"):
        with pytest.raises(cv.InvalidSymbol) as err:
            cv.parse_occ(bad, field="contract")
        assert err.value.field == "contract"


def test_exercise_style_and_settlement() -> None:
    for root in ("SPX", "SPXW", "XSP", "NDX", "RUT", "VIX"):
        assert cv.exercise_style(root) == "european" and cv.is_cash_settled(root)
    for root in ("AAPL", "SPY", "QQQ", "IWM", "TSLA"):
        assert cv.exercise_style(root) == "american" and not cv.is_cash_settled(root)
    assert cv.exercise_style("SPXW  260618C05500000") == "european"
    assert cv.exercise_style("AAPL  260618C00150000") == "american"
    assert cv.underlying_of_root("SPXW") == "SPX" and cv.underlying_of_root("AAPL") == "AAPL"


def test_iv_rank_and_percentile_by_hand() -> None:
    hist = [0.10, 0.20, 0.30, 0.40, 0.50]
    assert cv.iv_rank(0.30, hist) == pytest.approx(50.0)
    assert cv.iv_rank(0.60, hist) == 100.0 and cv.iv_rank(0.0, hist) == 0.0
    assert cv.iv_percentile(0.30, hist) == pytest.approx(40.0)  # 2 of 5 strictly below
    assert cv.iv_rank(0.3, [0.2, 0.2]) != cv.iv_rank(0.3, [0.2, 0.2])  # flat history: NaN


def test_pb_roundtrip_keeps_nanoseconds() -> None:
    ns = _ns(2026, 3, 2, 9, 31) + 123_456_789
    assert cv.pb_to_ns(cv.ns_to_pb(ns)) == ns
    assert cv.rfc3339(_ns(2026, 3, 2, 9, 31)) == "2026-03-02T09:31:00-05:00"


# --- exchange-calendars as the oracle ----------------------------------------------------------
def test_sessions_match_exchange_calendars_2020_2027() -> None:
    ours = cv.calendar().sessions_between(D(2020, 1, 1), D(2027, 12, 31))
    theirs = [t.date() for t in _xnys().sessions_in_range("2020-01-01", "2027-12-31")]
    assert ours == theirs


def test_opens_closes_and_early_closes_match_exchange_calendars() -> None:
    cal = cv.calendar()
    sched = _xnys().schedule.loc["2024-01-01":"2027-12-31"]
    early = {t.date() for t in _xnys().early_closes if t.year >= 2024}
    assert D(2025, 11, 28) in early and D(2025, 12, 24) in early
    for day, row in sched.iterrows():
        s = cal.session(day.date())
        assert s.open_ns == row["open"].value and s.close_ns == row["close"].value
        assert s.early_close == (day.date() in early)


# --- properties -----------------------------------------------------------------------------
_T0, _T1 = _ns(2019, 1, 1, 0, 0, dt.UTC), _ns(2027, 12, 31, 0, 0, dt.UTC)
instants = st.integers(_T0, _T1)
days = st.dates(D(2019, 1, 1), D(2027, 12, 1))


@settings(max_examples=400, deadline=None)
@given(instants)
def test_phase_consistent_with_exchange_calendars(ts: int) -> None:
    cal = cv.calendar()
    phase = cal.phase(ts)
    local = dt.datetime.fromtimestamp(ts / 1e9, ET)
    xs = _xnys()
    is_session = bool(xs.is_session(pd.Timestamp(local.date())))
    if not is_session:
        assert phase == "closed"
        return
    row = xs.schedule.loc[pd.Timestamp(local.date())]
    open_ns, close_ns = row["open"].value, row["close"].value
    regular = open_ns <= ts < close_ns
    assert (phase == "regular") == regular == cal.is_regular_hours(ts)
    hm = (local.hour, local.minute)
    if phase == "pre":
        assert hm >= (4, 0) and ts < open_ns
    elif phase == "post":
        assert ts >= close_ns and hm < (20, 0)
    elif phase == "closed":
        assert hm < (4, 0) or hm >= (20, 0)
    prev = cal.previous_close_ns(ts)
    assert prev is not None and prev < open_ns
    assert pd.Timestamp(prev, tz="UTC") in set(xs.schedule["close"])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["AAPL", "SPY", "QQQ", "SPX", "SPXW", "TSLA", "IWM"]), days, st.integers(0, 90))
def test_listed_expiries_are_sessions_in_range(root: str, start: dt.date, span: int) -> None:
    end = start + dt.timedelta(days=span)
    got = cv.listed_expiries(root, start, end)
    assert got == sorted(set(got))
    xs = _xnys()
    for d in got:
        assert start <= d <= end and xs.is_session(pd.Timestamp(d))
        fri = d + dt.timedelta(days=(4 - d.weekday()) % 7)
        if root not in cv.DAILY_EXPIRY_ROOTS:
            # a non-daily expiry is a Friday, or the session before a Friday holiday
            assert d.weekday() == 4 or (not xs.is_session(pd.Timestamp(fri)) and cv.calendar().session_before(fri) == d)
    if root not in cv.DAILY_EXPIRY_ROOTS and root not in cv.MONTHLY_ONLY_ROOTS and span >= 7:
        assert got  # at least one weekly in any 8-day window


@settings(max_examples=300, deadline=None)
@given(
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.", min_size=1, max_size=6),
    st.dates(D(2000, 1, 1), D(2099, 12, 31)),
    st.sampled_from(["C", "P"]),
    st.integers(1, 99_999_999),
)
def test_occ_round_trip(root: str, expiry: dt.date, right: str, milli: int) -> None:
    sym = cv.format_occ(root, expiry, right, milli / 1000)
    assert len(sym) == 21
    o = cv.parse_occ(sym)
    assert (o.root, o.expiry, o.right, round(o.strike * 1000)) == (root, expiry, right, milli)
    assert o.symbol == sym
    assert cv.parse_occ(sym.replace(" ", "")) == o  # padding optional


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=14))
def test_ticker_rule(raw: str) -> None:
    try:
        t = cv.normalize_ticker(raw)
    except cv.InvalidSymbol as e:
        assert e.field == "symbol" and e.rule == cv.TICKER_RULE
        s = raw.strip().upper()
        assert (
            not 1 <= len(s) <= 10
            or not (s[0].isascii() and s[0].isalnum())
            or any(not (c.isascii() and (c.isalnum() or c in ".-")) for c in s)
        )
        return
    assert t == raw.strip().upper() and 1 <= len(t) <= 10 and cv.is_ticker(t)
    assert cv.normalize_ticker(t) == t  # idempotent
    assert all(c.isascii() and (c.isupper() or c.isdigit() or c in ".-") for c in t)


@settings(max_examples=200, deadline=None)
@given(st.dates(D(2016, 1, 1), D(2027, 12, 1)))
def test_not_a_session_names_adjacent_sessions(day: dt.date) -> None:
    cal = cv.calendar()
    xs = _xnys()
    if xs.is_session(pd.Timestamp(day)):
        assert cal.session(day).date == day
        return
    with pytest.raises(cv.NotASession) as err:
        cal.session(day)
    b, a = err.value.before, err.value.after
    assert b == xs.date_to_session(pd.Timestamp(day), direction="previous").date()
    assert a == xs.date_to_session(pd.Timestamp(day), direction="next").date()


def test_weekly_expiry_days() -> None:
    assert cv.is_weekly_expiry(D(2026, 6, 12))  # a Friday
    assert cv.is_weekly_expiry(D(2026, 6, 18))  # Thursday before Juneteenth
    assert cv.is_weekly_expiry(D(2026, 7, 2))  # Thursday before 2026-07-03 (Independence Day observed)
    assert not cv.is_weekly_expiry(D(2026, 6, 17))  # an ordinary Wednesday
    assert not cv.is_weekly_expiry(D(2026, 6, 19))  # the holiday itself


def test_session_answers_reused_along_a_walk_match_exchange_calendars() -> None:
    # minute by minute (the way a replay asks) through a DST change, Thanksgiving and its early
    # close: the cached session / regular-hours answers must equal exchange-calendars' schedule
    cal = cv.calendar()
    xs = _xnys()
    t, end = _ns(2025, 10, 31, 12, 0, dt.UTC), _ns(2025, 11, 4, 12, 0, dt.UTC)
    t2, end2 = _ns(2025, 11, 26, 12, 0, dt.UTC), _ns(2025, 12, 1, 12, 0, dt.UTC)
    for ts in [*range(t, end, 60 * 10**9), *range(t2, end2, 60 * 10**9)]:
        local = pd.Timestamp(dt.datetime.fromtimestamp(ts / 1e9, ET).date())
        s = cal.session_of(ts)
        if not xs.is_session(local):
            assert s is None and not cal.is_regular_hours(ts)
            continue
        row = xs.schedule.loc[local]
        assert s is not None and (s.open_ns, s.close_ns) == (row["open"].value, row["close"].value)
        assert cal.is_regular_hours(ts) == (row["open"].value <= ts < row["close"].value)


def test_ny_date_follows_pandas_through_midnights_and_dst_in_any_order() -> None:
    """ny_date reuses its latest day: minute by minute across both 2026 DST changes and their
    midnights, then the same instants shuffled, each equals pandas' New York date."""
    ns = [
        int(t.value)
        for day in ("2026-03-07", "2026-10-31")
        for t in pd.date_range(f"{day} 00:00", periods=3 * 24 * 60, freq="min", tz="America/New_York")
    ]
    expect = {n: pd.Timestamp(n, tz="UTC").tz_convert("America/New_York").date() for n in ns}
    shuffled = ns[::7] + ns[3::11] + ns[::-13]
    for n in ns + shuffled:
        assert cv.ny_date(n) == expect[n], pd.Timestamp(n, tz="UTC")


# --- regular_ns_between against exchange-calendars ---------------------------------------------
_MINUTE = 60 * cv.NS_PER_S
# days whose sessions are odd: holidays and their neighbours, early closes, DST changes, weekends
_ODD_DAYS = [
    D(2024, 3, 8), D(2024, 3, 11), D(2024, 11, 1), D(2024, 11, 4), D(2024, 7, 3), D(2024, 7, 5),
    D(2025, 1, 9), D(2025, 4, 17), D(2025, 4, 21), D(2025, 11, 26), D(2025, 11, 28), D(2025, 12, 24),
    D(2025, 12, 26), D(2026, 3, 6), D(2026, 3, 9), D(2026, 6, 18), D(2026, 6, 22), D(2026, 10, 30),
    D(2026, 11, 2), D(2026, 1, 17), D(2026, 1, 20),
]  # fmt: skip


@functools.lru_cache(maxsize=1)
def _xnys_bounds() -> tuple[Any, Any]:
    """exchange-calendars' XNYS opens and closes (ns UTC), session by session."""
    sched = _xnys().schedule
    return sched["open"].astype("int64").to_numpy(), sched["close"].astype("int64").to_numpy()


def _regular_ns_by_schedule(a: int, b: int) -> int:
    """Regular ns in [a, b) summed session by session over exchange-calendars' own schedule."""
    if b <= a:
        return 0
    opens, closes = _xnys_bounds()
    lo, hi = int(closes.searchsorted(a, side="right")), int(opens.searchsorted(b, side="left"))
    return sum(max(0, min(int(c), b) - max(int(o), a)) for o, c in zip(opens[lo:hi], closes[lo:hi], strict=True))


def _regular_ns_by_minutes(a: int, b: int) -> int:
    """Minute-aligned [a, b): exchange-calendars' count of trading minutes (each labelled by its
    start) with a <= minute < b, times one minute."""
    if b <= a:
        return 0
    xs = _xnys()
    assert xs.side == "left"
    return len(xs.minutes_in_range(pd.Timestamp(a, tz="UTC"), pd.Timestamp(b - _MINUTE, tz="UTC"))) * _MINUTE


_R0, _R1 = _ns(2016, 1, 1, 0, 0, dt.UTC), _ns(2027, 12, 1, 0, 0, dt.UTC)
_odd_instants = st.builds(
    lambda d, minute, ns: _ns(d.year, d.month, d.day, 0, 0) + minute * _MINUTE + ns,
    st.sampled_from(_ODD_DAYS),
    st.integers(0, 24 * 60 - 1),
    st.integers(0, _MINUTE - 1) | st.just(0),
)
_spans = st.sampled_from(
    [0, 1, _MINUTE, 30 * _MINUTE, cv.NS_PER_HOUR, 6 * cv.NS_PER_HOUR, cv.NS_PER_DAY, 3 * cv.NS_PER_DAY]
)


@st.composite
def _pairs(draw: st.DrawFn) -> tuple[int, int]:
    """(a, b): random instants, instants on odd days, a plus a short or multi-day span (same-session
    pairs among them), either order."""
    a = draw(st.integers(_R0, _R1) | _odd_instants)
    kind = draw(st.sampled_from(["random", "span", "jitter"]))
    if kind == "random":
        b = draw(st.integers(_R0, _R1) | _odd_instants)
    elif kind == "span":
        b = a + draw(_spans) + draw(st.integers(0, 5 * cv.NS_PER_HOUR))
    else:
        b = a + draw(st.integers(-40 * cv.NS_PER_DAY, 40 * cv.NS_PER_DAY))
    return (a, b) if draw(st.booleans()) else (b, a)


@settings(max_examples=600, deadline=None)
@given(st.lists(_pairs(), min_size=1, max_size=8))
def test_regular_ns_between_matches_exchange_calendars_schedule(pairs: list[tuple[int, int]]) -> None:
    # several pairs in a row on the one calendar: the kept session is reused, missed and replaced
    cal = cv.calendar()
    for a, b in pairs:
        assert cal.regular_ns_between(a, b) == _regular_ns_by_schedule(a, b), (a, b)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_ODD_DAYS) | st.dates(D(2016, 1, 1), D(2027, 11, 1)),
    st.integers(0, 24 * 60 - 1),
    st.integers(-7 * 24 * 60, 7 * 24 * 60),
)
def test_regular_ns_between_matches_exchange_calendars_minutes(day: dt.date, minute: int, span_min: int) -> None:
    cal = cv.calendar()
    a = _ns(day.year, day.month, day.day, 0, 0) + minute * _MINUTE
    b = a + span_min * _MINUTE
    assert cal.regular_ns_between(a, b) == _regular_ns_by_minutes(a, b)
    assert cal.regular_ns_between(b, a) == _regular_ns_by_minutes(b, a)


def test_regular_ns_between_by_hand() -> None:
    cal = cv.calendar()
    # same session: 10:00 -> 10:30, and a horizon clipped by the close (15:45 -> 16:30 = 15 min)
    assert cal.regular_ns_between(_ns(2026, 3, 2, 10, 0), _ns(2026, 3, 2, 10, 30)) == 30 * _MINUTE
    assert cal.regular_ns_between(_ns(2026, 3, 2, 15, 45), _ns(2026, 3, 2, 16, 30)) == 15 * _MINUTE
    # Wed 2025-11-26 10:00 -> Mon 12-01 11:00: 360 + Thanksgiving 0 + early close 210 + 90 minutes
    got = cal.regular_ns_between(_ns(2025, 11, 26, 10, 0), _ns(2025, 12, 1, 11, 0))
    assert got == (360 + 210 + 90) * _MINUTE
    # across the 2026-03-08 spring-forward weekend: Fri 15:00 -> Mon 10:00 = 60 + 30 minutes
    assert cal.regular_ns_between(_ns(2026, 3, 6, 15, 0), _ns(2026, 3, 9, 10, 0)) == 90 * _MINUTE
    # a weekend, a holiday, reversed and empty spans hold no regular time
    assert cal.regular_ns_between(_ns(2026, 1, 17, 9, 0), _ns(2026, 1, 19, 17, 0)) == 0
    assert cal.regular_ns_between(_ns(2026, 3, 2, 10, 30), _ns(2026, 3, 2, 10, 0)) == 0
    assert cal.regular_ns_between(_ns(2026, 3, 2, 10, 0), _ns(2026, 3, 2, 10, 0)) == 0
    # before the table and past its end
    assert cal.regular_ns_between(0, _ns(2000, 1, 3, 9, 31)) == _MINUTE
    assert cal.regular_ns_between(cv.TIMESTAMP_MAX_NS - 10, cv.TIMESTAMP_MAX_NS) == 0


@settings(max_examples=200, deadline=None)
@given(_pairs(), st.sampled_from([0.0, 17.5]))
def test_trading_years_from_exchange_calendars(pair: tuple[int, int], overnight_minutes: float) -> None:
    """Regular minutes plus ``overnight_minutes`` for each session open strictly inside (a, b),
    in years of 252 sessions x 390 minutes; 0 when b <= a."""
    a, b = pair
    opens, _ = _xnys_bounds()
    crossings = int(((opens > a) & (opens < b)).sum()) if b > a else 0
    minutes = _regular_ns_by_schedule(a, b) / _MINUTE + crossings * overnight_minutes
    want = minutes / (cv.MINUTES_PER_REGULAR_SESSION * cv.SESSIONS_PER_YEAR)
    assert cv.calendar().trading_years(a, b, overnight_minutes) == pytest.approx(want, rel=1e-12, abs=0.0)
