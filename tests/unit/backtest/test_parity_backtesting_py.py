"""Parity with an independent engine, backtesting.py, on the same real SPY bars.

A plain rule on the underlying: buy when EMA(5) crosses above EMA(20) (on bar closes), exit a
fixed 10 bars later; one position at a time. For our replay the "contract" is a zero-spread quote
equal to the bar's close (fees 0), so the only things compared are the clocks and fill rules: the
decision on a bar's close fills at that minute's quote, and the horizon exit at the quote of the
minute it ends. backtesting.py runs with ``trade_on_close=True`` (orders fill at the bar's close).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aiots.core.conventions import NS_PER_MIN, ny_ns
from aiots.core.execution import ExecutionModel
from aiots.services.backtest.readers import BarSeries, read_bars, read_option_quote_bars
from aiots.services.backtest.runner import BacktestSettings, Replay
from aiots.services.signals.config import load_config
from tests.unit.backtest.scripted import Script, ScriptedEngine

backtesting = pytest.importorskip("backtesting")

HOLD = 10
OCC = "SPY   241220C00001000"
DAYS = [dt.date(2024, 2, 20), dt.date(2024, 3, 1), dt.date(2024, 4, 15)]


def session_bars(all_bars: BarSeries, day: dt.date) -> BarSeries:
    lo, hi = ny_ns(day, dt.time(9, 30)), ny_ns(day, dt.time(15, 30))
    m = (all_bars.ts_ns >= lo) & (all_bars.ts_ns < hi)
    s = all_bars
    return BarSeries(
        s.symbol, s.ts_ns[m], s.open[m], s.high[m], s.low[m], s.close[m], s.volume[m], s.interval_ns, s.source
    )


def crosses(close: np.ndarray) -> np.ndarray:
    c = pd.Series(close)
    fast, slow = c.ewm(span=5, adjust=False).mean(), c.ewm(span=20, adjust=False).mean()
    up = (fast > slow) & (fast.shift(1) <= slow.shift(1))
    return up.fillna(False).to_numpy()


def entries(cross: np.ndarray) -> list[int]:
    """Bars where the rule opens (one position at a time, closed HOLD bars later, data end excluded)."""
    out: list[int] = []
    for i in np.flatnonzero(cross):
        if i + HOLD < cross.size and (not out or i - out[-1] > HOLD):
            out.append(int(i))
    return out


def ours(s: BarSeries, cross: np.ndarray, tmp: Path) -> list[tuple[int, float, int, float]]:
    path = tmp / "quotes.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "datetime",
                "underlying",
                "expiration",
                "option_type",
                "strike",
                "bid_close",
                "bid_size",
                "ask_close",
                "ask_size",
                "option_symbol",
            ]
        )
        for ts, c in zip(s.ts_ns.tolist(), s.close.tolist(), strict=True):
            start = pd.Timestamp(ts, tz="UTC").tz_convert("America/New_York").strftime("%Y-%m-%d %H:%M:%S")
            w.writerow([start, "SPY", "2024-12-20", "C", "1.0", c, 10, c, 10, OCC])
    q = read_option_quote_bars(path)
    scripts = [
        Script(f"s{i}", int(s.ts_ns[i]) + NS_PER_MIN, OCC, 1e9, -1.0, int(s.ts_ns[i]) + (HOLD + 1) * NS_PER_MIN)
        for i in entries(cross)
    ]
    st = BacktestSettings(execution=ExecutionModel(fee_per_contract=0.0))
    rp = Replay(load_config(), {"SPY": s}, [q], [], st)
    rp.engine = ScriptedEngine(rp.book, scripts)  # type: ignore[assignment]
    res = rp.run()
    return sorted((t.entry.ts_ns, t.entry.price, t.exit_ns, t.exit_price) for t in res.trades if t.entry is not None)


def theirs(s: BarSeries, cross: np.ndarray) -> list[tuple[int, float, int, float]]:
    idx = pd.to_datetime(s.ts_ns, utc=True)
    df = pd.DataFrame({"Open": s.open, "High": s.high, "Low": s.low, "Close": s.close, "Volume": s.volume}, index=idx)

    class EmaCross(backtesting.Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.cross = self.I(lambda: cross.astype(float), name="cross")
            self.entry_i: int | None = None

        def next(self) -> None:
            i = len(self.data) - 1
            if self.position and self.entry_i is not None and i - self.entry_i >= HOLD:
                self.position.close()
            elif (
                not self.position
                and self.cross[-1] > 0
                and i + HOLD < cross.size
                and (self.entry_i is None or i - self.entry_i > HOLD)
            ):
                self.buy(size=1)
                self.entry_i = i

    bt = backtesting.Backtest(df, EmaCross, cash=1_000_000, commission=0.0, trade_on_close=True, finalize_trades=True)
    tr = bt.run()["_trades"]
    # backtesting.py stamps a fill with the bar's index (its start); ours with the quote's time (the bar's end)
    return sorted(
        (
            int(r.EntryTime.value) + NS_PER_MIN,
            float(r.EntryPrice),
            int(r.ExitTime.value) + NS_PER_MIN,
            float(r.ExitPrice),
        )
        for r in tr.itertuples()
    )


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_same_trades_as_backtesting_py(shared_data: Path, tmp_path: Path, day: dt.date) -> None:
    s = session_bars(read_bars(shared_data / "ohlcv/SPY_1m_2024-02-20_2024-05-17.csv")["SPY"], day)
    cross = crosses(s.close)
    a, b = ours(s, cross, tmp_path), theirs(s, cross)
    assert len(a) >= 3
    assert a == b
