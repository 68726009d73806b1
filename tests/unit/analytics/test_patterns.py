"""GetPatterns' scan over real daily bars (AAPL, shared data): every candlestick TA-Lib flags is a
hit at that bar with TA-Lib's direction, and nothing else is; hits are in bar order. Oracle: TA-Lib."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import talib

from aiots.services.analytics.patterns import scan

TALIB = {"engulfing": talib.CDLENGULFING, "hammer": talib.CDLHAMMER, "doji": talib.CDLDOJI, "harami": talib.CDLHARAMI}


def test_candlestick_hits_are_talib_s(shared_data: Path) -> None:
    df = pd.read_csv(shared_data / "ohlcv" / "AAPL_1d_2015-02-17_2017-02-16.csv")
    cols = {c: df[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close", "volume")}
    res = scan(SimpleNamespace(**cols))
    for name, fn in TALIB.items():
        want = fn(cols["open"], cols["high"], cols["low"], cols["close"])
        expected = {(int(i), "bullish" if want[i] > 0 else "bearish") for i in np.flatnonzero(want)}
        got = {(p.start, p.direction) for p in res.patterns if p.category == "candlestick" and p.name == name}
        assert got == expected, name
        assert expected, f"{name}: no TA-Lib hit in two years of bars (the comparison proves nothing)"
    starts = [(p.start, p.end, p.name) for p in res.patterns]
    assert starts == sorted(starts)
    assert res.trend.direction in ("up", "down", "sideways")
