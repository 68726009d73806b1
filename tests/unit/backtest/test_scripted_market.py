"""A scripted market whose fills and exits are known by hand.

The decisions are scripted (a stand-in with the engine's interface fires given signals at given
minutes), so these tests pin the replay clock and the execution rules, independently of the
strategies: each fill must equal the quote bar ending at its minute (ask in, bid out), fees
$0.65 per contract per leg, the exit reason as derived by hand.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from aiots.core.conventions import NS_PER_MIN, ny_ns
from aiots.services.backtest.readers import BarSeries, read_option_quote_bars
from aiots.services.backtest.runner import BacktestSettings, Replay
from aiots.services.signals.config import load_config
from tests.unit.backtest.scripted import Script, ScriptedEngine

DAY = dt.date(2024, 3, 1)  # a regular Friday session, 09:30-16:00 ET
C1 = "TEST  240308C00100000"
P1 = "TEST  240308P00100000"
C2 = "TEST  240308C00105000"
C3 = "TEST  240308C00110000"
C4 = "TEST  240308C00095000"
C5 = "TEST  240308P00095000"
X0 = "TEST  240301C00100000"  # expires today at 16:00
C6 = "TEST  240308C00115000"
C7 = "TEST  240308C00120000"
C8 = "TEST  240308C00125000"
C9 = "TEST  240308C00130000"
HEADER = [
    "datetime",
    "underlying",
    "expiration",
    "option_type",
    "strike",
    "bid_open",
    "bid_high",
    "bid_low",
    "bid_close",
    "bid_size",
    "ask_open",
    "ask_high",
    "ask_low",
    "ask_close",
    "ask_size",
    "option_symbol",
]


def t(hh: int, mm: int) -> int:
    return ny_ns(DAY, dt.time(hh, mm))


def quote_row(start: tuple[int, int], occ: str, bid: float | None, ask: float | None) -> list[str]:
    exp = f"20{occ[6:8]}-{occ[8:10]}-{occ[10:12]}"
    b = "" if bid is None else f"{bid}"
    a = "" if ask is None else f"{ask}"
    return [
        f"{DAY} {start[0]:02d}:{start[1]:02d}:00",
        "TEST",
        exp,
        occ[12],
        str(int(occ[13:]) / 1000),
        b,
        b,
        b,
        b,
        "10" if bid is not None else "",
        a,
        a,
        a,
        a,
        "10" if ask is not None else "",
        occ,
    ]


def flat(occ: str, a: tuple[int, int], b: tuple[int, int], bid: float, ask: float) -> list[list[str]]:
    """One quote bar per minute with the same quote, bars starting from ``a`` to ``b`` inclusive."""
    out = []
    m = a[0] * 60 + a[1]
    while m <= b[0] * 60 + b[1]:
        out.append(quote_row((m // 60, m % 60), occ, bid, ask))
        m += 1
    return out


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    rows: list[list[str]] = []
    # A: TARGET. Decision at 10:00 (bar 09:59 closes); the quote bar 09:59-10:00 is 1.95/2.05.
    rows += [quote_row((9, 59), C1, 1.95, 2.05), quote_row((10, 0), C1, 2.00, 2.10), quote_row((10, 1), C1, 2.25, 2.35)]
    # B: STOP. Decision at 11:00 at 3.00/3.10; 2.90/3.00 holds; bid 2.70 <= stop 2.80 sells at 2.70.
    rows += [
        quote_row((10, 59), P1, 3.00, 3.10),
        quote_row((11, 0), P1, 2.90, 3.00),
        quote_row((11, 1), P1, 2.70, 2.80),
    ]
    # C: HORIZON at 12:05, flat 1.00/1.10 from 11:59.
    rows += flat(C2, (11, 59), (12, 10), 1.00, 1.10)
    # D: stale. The last C3 quote bar ends at 12:58; the decision at 13:00 is 120 s later.
    rows += [quote_row((12, 57), C3, 0.50, 0.55)]
    # E: no ask in the bar ending at 13:30 (an empty field = no quote, not zero).
    rows += [quote_row((13, 29), C4, 6.00, None)]
    # F: CLOSE. Decision at 15:40, horizon 16:30; five minutes before the 16:00 close = 15:55.
    rows += flat(C5, (15, 39), (15, 58), 0.80, 0.85)
    # G: expiring today: decision at 15:00; the close and the expiry coincide -> EXPIRY at 15:55.
    rows += flat(X0, (14, 59), (15, 58), 0.40, 0.45)
    # Deadlines (the live tracker's rule): sell at the deadline at the bid of the latest quote known
    # then if it is executable (fresh within 60 s, a bid), else at the first executable quote after.
    # J: stale at the horizon. Entry 13:40; the last quote before the 14:00 horizon ends at 13:46
    # (14 min old at 14:00): no sale then; the next quote (ends 14:08) is executable -> 14:08 at 1.20.
    rows += [
        quote_row((13, 39), C6, 1.00, 1.10),
        quote_row((13, 45), C6, 1.05, 1.15),
        quote_row((14, 7), C6, 1.20, 1.30),
    ]
    # K: fresh at the horizon. Entry 14:10; the quote ending 14:29 is 60 s old at the 14:30 horizon
    # (allowed): sold at 14:30 at its bid 0.90, not at the next quote's (ends 14:33) 1.30.
    rows += [
        quote_row((14, 9), C7, 1.00, 1.10),
        quote_row((14, 28), C7, 0.90, 1.00),
        quote_row((14, 32), C7, 1.30, 1.40),
    ]
    # L: no bid at the horizon. Entry 14:40; the quotes ending 14:50 (the horizon) and 14:53 have no
    # bid (empty field): it waits; the quote ending 14:56 has a bid -> 14:56 at 0.95.
    rows += [
        quote_row((14, 39), C8, 1.00, 1.10),
        quote_row((14, 49), C8, None, 1.10),
        quote_row((14, 52), C8, None, 1.10),
    ]
    rows += [quote_row((14, 55), C8, 0.95, 1.05)]
    # M: no quote after the horizon at all. Entry 15:10; the quote ending 15:19 is the latest known
    # at the 15:20 horizon (60 s old): sold at 15:20 at 0.97 (not when the data ends).
    rows += [quote_row((15, 9), C9, 1.00, 1.10), quote_row((15, 18), C9, 0.97, 1.07)]
    path = tmp_path / "quotes.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(sorted(rows, key=lambda r: (r[0], r[-1])))
    quotes = read_option_quote_bars(path)
    starts = np.arange(t(8, 59), t(16, 0), NS_PER_MIN, dtype=np.int64)  # 08:59 .. 15:59 bar starts
    n = starts.size
    close = np.full(n, 100.0)
    bars = {"TEST": BarSeries("TEST", starts, close, close, close, close, np.full(n, 1000.0), NS_PER_MIN, "scripted")}

    def sc(at: tuple[int, int], occ: str, target: float, stop: float, horizon: tuple[int, int]) -> Script:
        return Script(f"sig-{at[0]:02d}{at[1]:02d}", t(*at), occ, target, stop, t(*horizon))

    scripts = [
        sc((10, 0), C1, 2.20, 1.80, (11, 0)),
        sc((11, 0), P1, 3.40, 2.80, (12, 0)),
        sc((12, 0), C2, 1.50, 0.50, (12, 5)),
        sc((13, 0), C3, 1.00, 0.10, (14, 0)),
        sc((13, 30), C4, 9.00, 1.00, (14, 0)),
        sc((15, 40), C5, 2.00, 0.10, (16, 30)),
        sc((15, 0), X0, 2.00, 0.01, (16, 30)),
        sc((15, 57), C5, 2.00, 0.10, (16, 30)),  # H: within 5 minutes of the close -> refused
        sc((9, 0), C1, 2.20, 1.80, (10, 0)),  # I: pre-market: no quote exists yet, so no signal
        sc((13, 40), C6, 2.00, 0.10, (14, 0)),
        sc((14, 10), C7, 2.00, 0.10, (14, 30)),
        sc((14, 40), C8, 2.00, 0.10, (14, 50)),
        sc((15, 10), C9, 2.00, 0.10, (15, 20)),
    ]
    rp = Replay(load_config(), bars, [quotes], [], BacktestSettings())
    rp.engine = ScriptedEngine(rp.book, scripts)  # type: ignore[assignment]
    res = rp.run()
    return {tr.signal.id: tr for tr in res.trades}


def pnl(entry: float, exit_: float) -> tuple[float, float]:
    cost = entry * 100 + 0.65
    dollars = exit_ * 100 - 0.65 - cost
    return dollars, 100 * dollars / cost


def test_target_fills_at_the_ask_and_exits_at_the_bid_of_the_minute(run) -> None:  # type: ignore[no-untyped-def]
    tr = run["sig-1000"]
    assert tr.entry.price == 2.05 and tr.entry.ts_ns == t(10, 0) and tr.entry.bid == 1.95
    assert tr.exit_reason == "TARGET" and tr.exit_price == 2.25 and tr.exit_ns == t(10, 2)
    assert tr.pnl_usd == pytest.approx(18.70) and tr.pnl_pct == pytest.approx(pnl(2.05, 2.25)[1])
    assert tr.priced_from == "quotes"


def test_stop_triggers_on_the_bid(run) -> None:  # type: ignore[no-untyped-def]
    tr = run["sig-1100"]
    assert tr.entry.price == 3.10
    assert tr.exit_reason == "STOP" and tr.exit_price == 2.70 and tr.exit_ns == t(11, 2)
    assert tr.pnl_usd == pytest.approx(pnl(3.10, 2.70)[0]) == pytest.approx(-41.30)


def test_horizon_exits_at_the_bid(run) -> None:  # type: ignore[no-untyped-def]
    tr = run["sig-1200"]
    assert tr.entry.price == 1.10 and tr.exit_reason == "HORIZON"
    assert tr.exit_ns == t(12, 5) and tr.exit_price == 1.00
    assert tr.pnl_usd == pytest.approx(-11.30)


def test_no_fill_on_a_stale_quote_or_a_missing_ask(run) -> None:  # type: ignore[no-untyped-def]
    assert run["sig-1300"].entry is None and run["sig-1300"].refusal == "STALE_QUOTE"
    assert run["sig-1330"].entry is None and run["sig-1330"].refusal == "NO_ASK"


def test_close_and_expiry_exits_five_minutes_before_the_close(run) -> None:  # type: ignore[no-untyped-def]
    tr = run["sig-1540"]
    assert tr.entry.price == 0.85 and tr.exit_reason == "CLOSE" and tr.exit_ns == t(15, 55) and tr.exit_price == 0.80
    tx = run["sig-1500"]
    assert tx.entry.price == 0.45 and tx.exit_reason == "EXPIRY" and tx.exit_ns == t(15, 55) and tx.exit_price == 0.40


def test_no_entry_near_the_close_or_outside_regular_hours(run) -> None:  # type: ignore[no-untyped-def]
    assert run["sig-1557"].entry is None and run["sig-1557"].refusal == "NEAR_CLOSE"
    assert "sig-0900" not in run  # no quote at all before the open: no signal


def test_horizon_with_a_stale_quote_sells_at_the_first_executable_quote_after(run) -> None:  # type: ignore[no-untyped-def]
    tr = run["sig-1340"]
    assert tr.entry.price == 1.10 and tr.exit_reason == "HORIZON"
    assert (tr.exit_ns, tr.exit_price) == (t(14, 8), 1.20)


def test_horizon_with_a_fresh_quote_sells_at_its_bid_at_the_horizon(run) -> None:  # type: ignore[no-untyped-def]
    tr = run["sig-1410"]
    assert tr.exit_reason == "HORIZON" and (tr.exit_ns, tr.exit_price) == (t(14, 30), 0.90)
    tm = run["sig-1510"]  # no quote after the horizon: the same decision, when the data ends
    assert tm.exit_reason == "HORIZON" and (tm.exit_ns, tm.exit_price) == (t(15, 20), 0.97)


def test_horizon_without_a_bid_waits_for_one(run) -> None:  # type: ignore[no-untyped-def]
    tr = run["sig-1440"]
    assert tr.exit_reason == "HORIZON" and (tr.exit_ns, tr.exit_price) == (t(14, 56), 0.95)
