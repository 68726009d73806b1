"""A simulator run over several days against exchange-calendars and the model's own quoted vol.

- every trade/quote lies in a session (options in regular hours only), none on closed days;
- the expiries listed are XNYS sessions and follow the weekly/monthly/daily schedule;
- open interest is stamped at the previous session's close (exchange-calendars), never later;
- ``prev_close`` is the last price before the previous session's regular close;
- realised (20-day) over implied (30-day ATM) volatility stays in [0.7, 1.4] over a long run;
- volumes agree between live trades and seeded 1-minute bars; seeded history has no closed days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import exchange_calendars as xcals
import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from aiots.core import conventions as cv
from aiots.services.ingestion.sources.simulator import history
from aiots.services.ingestion.sources.simulator import model as m
from aiots.services.ingestion.sources.simulator.clock import SessionClock
from aiots.services.ingestion.sources.simulator.records import MarketSimulator

XNYS = xcals.get_calendar("XNYS", start="2024-01-01", end="2027-12-31")
CLOSES = {t.date(): int(c.value) for t, c in XNYS.schedule["close"].items()}
OPENS = {t.date(): int(o.value) for t, o in XNYS.schedule["open"].items()}


def et(y: int, mo: int, d: int, hh: int, mm: int = 0) -> int:
    return int(dt.datetime(y, mo, d, hh, mm, tzinfo=cv.NY).timestamp()) * cv.NS_PER_S


def _session_bounds(day: dt.date) -> tuple[int, int]:
    return et(day.year, day.month, day.day, 4), et(day.year, day.month, day.day, 20)


@pytest.fixture(scope="module")
def run() -> Iterator[dict[str, Any]]:
    """Wednesday 2025-11-26 15:00 ET to Tuesday 2025-12-02 (Thanksgiving, an early close, a weekend)."""
    with pytest.MonkeyPatch.context() as mp:  # fewer trades: this run checks times, not volumes
        for s in ("SPY", "AAPL"):
            mp.setitem(m.PROFILES, s, m.Profile(m.PROFILES[s].price, m.PROFILES[s].vol, 5e5))
        yield _run()


def _run() -> dict[str, Any]:
    sim = MarketSimulator(["SPY", "AAPL"], seed=3, start_ns=et(2025, 11, 26, 15, 0))
    recs: list[Any] = []
    prev_closes: dict[dt.date, dict[str, float]] = {}
    expiries: dict[dt.date, set[tuple[str, dt.date]]] = {}
    while sim.now_ns < et(2025, 12, 2, 20, 0):
        out = sim.step(120.0, option_quotes=sim.clock.cal.phase(sim.now_ns) == "regular" and len(recs) % 7 == 0)
        day = sim.clock.session.date
        if day not in prev_closes:
            prev_closes[day] = {s: st.prev_close for s, st in sim.state.items()}
            expiries[day] = {(s, c.expiry) for s, st in sim.state.items() for c in st.contracts}
        recs.extend(out)
    return {"sim": sim, "recs": recs, "prev_closes": prev_closes, "expiries": expiries}


def test_no_record_outside_sessions(run: dict[str, Any]) -> None:
    kinds = {"TradeMsg": 0, "MBP1Msg": 0, "CBBOMsg": 0}
    for r in run["recs"]:
        name = type(r).__name__
        if name not in kinds:
            continue
        kinds[name] += 1
        day = cv.ny_date(r.ts_event)
        assert XNYS.is_session(pd.Timestamp(day)), (name, day)
        lo, hi = _session_bounds(day)
        assert lo <= r.ts_event < hi
        if name == "CBBOMsg":  # options quote in regular hours only
            assert OPENS[day] <= r.ts_event < CLOSES[day]
    assert all(kinds.values())
    days = {cv.ny_date(r.ts_event) for r in run["recs"] if type(r).__name__ == "TradeMsg"}
    assert days == {dt.date(2025, 11, 26), dt.date(2025, 11, 28), dt.date(2025, 12, 1), dt.date(2025, 12, 2)}


def test_expiries_are_sessions_on_the_schedule(run: dict[str, Any]) -> None:
    for day, pairs in run["expiries"].items():
        assert pairs
        for root, exp in pairs:
            assert XNYS.is_session(pd.Timestamp(exp)) and exp >= day
            friday = exp + dt.timedelta(days=(4 - exp.weekday()) % 7)
            is_weekly = exp.weekday() == 4 or not XNYS.is_session(pd.Timestamp(friday))
            if root != "SPY":  # single stocks: weeklies (Fridays, or the session before a Friday holiday)
                assert is_weekly, (root, exp)
        spy = sorted(e for r, e in pairs if r == "SPY")
        assert spy[0] == day  # SPY lists a daily for the session itself


def test_open_interest_stamped_at_previous_close(run: dict[str, Any]) -> None:
    stats = [r for r in run["recs"] if type(r).__name__ == "StatMsg"]
    assert stats
    for r in stats:
        day = cv.ny_date(r.ts_event)
        prev = XNYS.previous_session(pd.Timestamp(day)).date()
        assert r.ts_ref == CLOSES[prev] and r.ts_ref < r.ts_event


def test_prev_close_is_the_previous_sessions_close(run: dict[str, Any]) -> None:
    quotes: dict[int, list[tuple[int, float]]] = {}
    for r in run["recs"]:
        if type(r).__name__ == "MBP1Msg":
            mid = (r.levels[0].bid_px + r.levels[0].ask_px) / 2e9
            quotes.setdefault(r.instrument_id, []).append((r.ts_event, mid))
    sim = run["sim"]
    checked = 0
    for day, pcs in run["prev_closes"].items():
        prev = XNYS.previous_session(pd.Timestamp(day)).date()
        if prev < dt.date(2025, 11, 26):
            continue
        for sym, pc in pcs.items():
            before = [q for t, q in quotes[sim.state[sym].instrument_id] if t < CLOSES[prev]]
            assert pc == pytest.approx(before[-1], abs=0.011), (sym, day)
            checked += 1
    assert checked == 6  # 11-28, 12-01, 12-02 x 2 symbols
    # and the first session opens from the last seeded close
    path = history.daily_path(3, "SPY", dt.date(2025, 11, 26))
    assert run["prev_closes"][dt.date(2025, 11, 26)]["SPY"] == pytest.approx(path.closes[-1])


def _realised_over_implied(symbol: str, seed: int, sessions: int) -> tuple[float, npt.NDArray[np.float64]]:
    """Run the live model (clock + variance time) in 5-minute steps; daily closes and 30d ATM IV."""
    clock = SessionClock(et(2024, 1, 2, 4, 0), follow_wall=False)
    st = m.UnderlyingState(symbol, 1, m.profile(symbol), 100.0, m.profile(symbol).vol, 100.0, [])
    rng = np.random.default_rng(seed)
    closes: list[float] = []
    ivs: list[float] = []
    day = None
    while len(closes) < sessions:
        t = clock.advance(300.0)
        assert t is not None
        st.advance(rng, m.variance_years(t.session, t.phase, (t.end_ns - t.start_ns) / cv.NS_PER_S))
        if t.end_ns == t.session.close_ns and day != t.session.date:
            day = t.session.date
            closes.append(st.price)
            ivs.append(st.atm_iv)
    r = np.diff(np.log(closes))
    rv20 = np.sqrt(np.convolve(r * r, np.ones(20) / 20, mode="valid") * 252)
    ratio = rv20 / np.asarray(ivs[20:])
    long_run = float(np.sqrt(np.mean(r * r) * 252) / np.mean(ivs))
    return long_run, ratio


@pytest.mark.parametrize("symbol", ["AAPL", "SPY", "TSLA"])
def test_realised_matches_implied_over_a_long_run(symbol: str) -> None:
    long_run, ratio = _realised_over_implied(symbol, seed=5, sessions=250)
    assert 0.7 <= long_run <= 1.4
    assert 0.7 <= float(np.median(ratio)) <= 1.4
    assert np.mean((ratio > 0.5) & (ratio < 2.0)) > 0.9


def test_seeded_history_sessions_ranges_and_realised_vs_implied() -> None:
    anchor = dt.date(2026, 6, 22)
    sessions = [t.date() for t in XNYS.sessions_in_range("2025-01-01", "2026-06-19")][-252:]
    for sym in ("AAPL", "SPY"):
        p = history.daily_path(9, sym, anchor)
        assert p.days == sessions  # no bar on a closed day (2026-06-19 Juneteenth, 2026-04-03, ...)
        r = np.diff(np.log(p.closes))
        iv = np.array([m.atm_iv(s, m.profile(sym).vol, 30 / 365) for s in p.sigmas])
        assert 0.7 <= np.sqrt(np.mean(r * r) * 252) / np.mean(iv) <= 1.4


def test_history_batches_bars_in_sessions_and_volumes_agree_with_live() -> None:
    start = et(2025, 12, 1, 9, 30)
    sim = MarketSimulator(["AAPL"], seed=4, start_ns=start, history_days=30)
    batches = history.history_batches(sim, sessions=5)
    d = next(b.columns["bars_1d"] for b in batches if "bars_1d" in b.columns)
    mb = next(b.columns["bars_1m"] for b in batches if "bars_1m" in b.columns)
    days = [cv.ny_date(int(t) + 12 * cv.NS_PER_HOUR) for t in d["ts_event"]]  # 00:00 UTC of the date
    assert days == [t.date() for t in XNYS.sessions_in_range("2025-01-01", "2025-11-28")][-30:]
    assert np.all(d["high"] >= np.maximum(d["open"], d["close"])) and np.all(
        d["low"] <= np.minimum(d["open"], d["close"])
    )
    rng_pct = (d["high"] - d["low"]) / d["close"]
    assert 0.005 < float(np.median(rng_pct)) < 0.05  # realistic daily ranges for a 25%-vol stock
    by_day: dict[dt.date, int] = {}
    for t in mb["ts_event"]:
        day = cv.ny_date(int(t))
        assert OPENS[day] <= int(t) < CLOSES[day]
        by_day[day] = by_day.get(day, 0) + 1
    assert by_day[dt.date(2025, 11, 28)] == 210  # early close: 09:30-13:00
    assert sum(v == 390 for v in by_day.values()) == 4
    assert float(d["close"][-1]) == pytest.approx(sim.state["AAPL"].prev_close, abs=0.005)
    # live volume over the first regular hour vs the seeded bars' first hours
    seeded = mb["volume"][mb["ts_event"] < np.int64(et(2025, 11, 26, 10, 30))]
    seeded_first_hour = float(seeded[-60:].sum())  # 2025-11-26 09:30-10:30
    live = 0
    while sim.now_ns < et(2025, 12, 1, 10, 30):
        for r in sim.step(10.0, option_quotes=False):
            if type(r).__name__ == "TradeMsg":
                live += r.size
    assert 0.75 < live / seeded_first_hour < 1.33
