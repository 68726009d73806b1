"""Trades priced from real quotes match the quote file minute by minute.

The oracle is the file itself, read here with the csv module (not the backtest's reader): the
entry is the ask of the quote bar ending at the decision minute, no earlier minute's bid crossed
the target or the stop, and the exit is the bid of the exit minute's quote bar. A deadline exit
(HORIZON, CLOSE, EXPIRY) follows the issue's rule: the bid of the latest quote bar known at the
deadline, at the deadline, when it has a bid and is at most 60 s old; else the bid of the first
later quote bar that has one, at that bar's end.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

from aiots.core.conventions import NS_PER_MIN, NS_PER_S, calendar, expiry_ns, ny_ns
from aiots.services.backtest.api import BacktestInputs, run_backtest
from aiots.services.backtest.readers import read_bars, read_option_quote_bars
from aiots.services.backtest.runner import BacktestSettings, Replay
from aiots.services.signals.config import load_config
from tests.unit.backtest.scripted import Script, ScriptedEngine

GOOG_BARS = "ohlcv/lean_GOOG_1m_2015-12-23_2015-12-28.csv"
GOOG_Q24 = "options-intraday/lean_GOOG_options_1m_quotes_2015-12-24.csv.gz"
SPX_BARS = "ohlcv/lean_SPX-index_1m_2021-01-04_2023-07-03.csv"
SPX_Q = "options-intraday/lean_SPX-SPXW_options_1m_quotes_2021-01-04_2023-06-26.csv"
MAX_AGE_NS = 60 * NS_PER_S  # the default execution model's quote age


def file_quotes(path: Path, occ: str) -> dict[int, tuple[float | None, float | None]]:
    """bar END ns -> (bid, ask) of ``occ``, straight from the CSV (empty = None)."""
    opener = gzip.open if path.suffix == ".gz" else open
    out: dict[int, tuple[float | None, float | None]] = {}
    with opener(path, "rt", newline="") as f:  # type: ignore[operator]
        for row in csv.DictReader(f):
            if row["option_symbol"] != occ:
                continue
            start = dt.datetime.strptime(row["datetime"], "%Y-%m-%d %H:%M:%S")
            end = ny_ns(start.date(), start.time()) + NS_PER_MIN
            out[end] = (
                float(row["bid_close"]) if row["bid_close"] else None,
                float(row["ask_close"]) if row["ask_close"] else None,
            )
    return out


def expected_trade(
    q: dict[int, tuple[float | None, float | None]], at: int, target_f: float, stop_f: float, deadline: int
) -> tuple[float, float, int, str]:
    """(entry, exit price, exit ns, reason) by walking the file's minutes after the entry."""
    _bid, ask = q[at]
    assert ask is not None
    target, stop = ask * target_f, ask * stop_f
    for end in sorted(k for k in q if at < k < deadline):
        b = q[end][0]
        if b is None:
            continue
        if b >= target:
            return ask, b, end, "TARGET"
        if b <= stop:
            return ask, b, end, "STOP"
    known = max(k for k in q if k <= deadline)
    b = q[known][0]
    if b is not None and deadline - known <= MAX_AGE_NS:
        return ask, b, deadline, "deadline"
    for end in sorted(k for k in q if k > deadline):
        b = q[end][0]
        if b is not None:
            return ask, b, end, "deadline"
    raise AssertionError("no exit in the file")


def known_at(q: dict[int, tuple[float | None, float | None]], rfc: str) -> tuple[float | None, float | None]:
    """(bid, ask) of the latest quote bar ending at or before the RFC 3339 time ``rfc``, at most 60 s old."""
    t = dt.datetime.fromisoformat(rfc)
    at = int(t.timestamp()) * NS_PER_S + t.microsecond * 1000
    end = max(k for k in q if k <= at)
    assert at - end <= MAX_AGE_NS, (rfc, end)
    return q[end]


@pytest.mark.parametrize(
    ("bars", "quotes", "occ", "day", "at", "tf", "sf"),
    [
        # GOOG 2015-12-24 (a 13:00 early close), a 7-day call
        (GOOG_BARS, GOOG_Q24, "GOOG  151231C00752500", dt.date(2015, 12, 24), dt.time(10, 30), 1.04, 0.96),
        (GOOG_BARS, GOOG_Q24, "GOOG  151231C00752500", dt.date(2015, 12, 24), dt.time(11, 15), 1.50, 0.50),
        # SPXW 0DTE on 2021-01-04: expires at that day's 16:00 close
        (SPX_BARS, SPX_Q, "SPXW  210104C03700000", dt.date(2021, 1, 4), dt.time(11, 0), 1.05, 0.95),
    ],
)
def test_scripted_trade_matches_the_quote_file(
    shared_data: Path, bars: str, quotes: str, occ: str, day: dt.date, at: dt.time, tf: float, sf: float
) -> None:
    qfile = shared_data / quotes
    q = file_quotes(qfile, occ)
    at_ns = ny_ns(day, at)
    horizon = at_ns + 60 * NS_PER_MIN
    close = calendar().session(day).close_ns
    deadline = min(
        horizon,
        close - 5 * NS_PER_MIN,
        expiry_ns(dt.date(2000 + int(occ[6:8]), int(occ[8:10]), int(occ[10:12]))) - 5 * NS_PER_MIN,
    )
    entry, exit_price, exit_ns, reason = expected_trade(q, at_ns, tf, sf, deadline)

    bar_series = read_bars(shared_data / bars)
    qb = read_option_quote_bars(qfile)
    rp = Replay(load_config(), bar_series, [qb], [], BacktestSettings())
    rp.engine = ScriptedEngine(rp.book, [Script("s", at_ns, occ, entry * tf, entry * sf, horizon)])  # type: ignore[assignment]
    res = rp.run()
    (tr,) = res.trades
    assert tr.priced_from == "quotes"
    assert tr.entry is not None and tr.entry.price == entry and tr.entry.ts_ns == at_ns
    assert tr.entry.bid == q[at_ns][0]
    assert tr.exit_price == exit_price and tr.exit_ns == exit_ns
    if reason != "deadline":
        assert tr.exit_reason == reason
    else:
        assert tr.exit_reason in ("HORIZON", "CLOSE", "EXPIRY")
    assert tr.pnl_usd == pytest.approx(exit_price * 100 - 0.65 - (entry * 100 + 0.65))


def test_engine_trades_on_goog_match_the_file(shared_data: Path, tmp_path: Path) -> None:
    """Every trade the live engine makes on the GOOG days enters at the file's ask and exits at its bid."""
    qfile = shared_data / GOOG_Q24
    report = run_backtest(
        BacktestInputs(
            bars=(str(shared_data / GOOG_BARS),),
            option_quotes=(str(qfile),),
            date_to=dt.date(2015, 12, 24),
        )
    )
    json.dumps(report)  # serialisable
    assert report["data"]["priced_from_by_symbol"] == {"GOOG": "quotes"}
    trades = report["trades"]
    if not trades:
        pytest.skip(
            f"the engine opened no GOOG trade with today's strategies ({report['data']['ideas_without_contract']})"
        )
    for t in trades:
        q = file_quotes(qfile, t["contract"])
        assert known_at(q, t["entry_time"])[1] == t["entry_price"] == t["ask_at_entry"]
        if t["exit_note"] == "":
            assert known_at(q, t["exit_time"])[0] == t["exit_price"]
