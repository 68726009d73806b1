"""Bars built from trades equal pandas' resample of the same trades (the oracle), across batches."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiots.services.ingestion.bars import BarBuilder

NS = 1_000_000_000


def test_bars_match_pandas_resample_across_batch_boundaries() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    ts = np.sort(rng.integers(0, 600 * NS, n)) + 1_700_000_040 * NS
    sym = rng.integers(0, 3, n).astype(np.int32)
    px = 100 + np.cumsum(rng.normal(0, 0.01, n))
    sz = rng.integers(1, 100, n).astype(float)
    b = BarBuilder(60 * NS)
    parts = []
    for chunk in np.array_split(np.arange(n), 7):
        parts.append(b.on_trades(sym[chunk], ts[chunk], px[chunk], sz[chunk]))
    parts.append(b.close_all())
    got = pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    df = pd.DataFrame({"sym": sym, "px": px, "sz": sz, "pv": px * sz}, index=pd.to_datetime(ts, utc=True))
    for s in range(3):
        d = df[df["sym"] == s]
        exp = d.resample("1min").agg({"px": ["first", "max", "min", "last", "count"], "sz": "sum", "pv": "sum"})
        exp = exp[exp[("px", "count")] > 0]
        g = got[got["sym"] == s].sort_values("ts_event")
        np.testing.assert_array_equal(g["ts_event"], exp.index.as_unit("ns").asi8)
        np.testing.assert_allclose(g["open"], exp[("px", "first")])
        np.testing.assert_allclose(g["high"], exp[("px", "max")])
        np.testing.assert_allclose(g["low"], exp[("px", "min")])
        np.testing.assert_allclose(g["close"], exp[("px", "last")])
        np.testing.assert_allclose(g["volume"], exp[("sz", "sum")])
        np.testing.assert_allclose(g["vwap"], exp[("pv", "sum")] / exp[("sz", "sum")])
        np.testing.assert_array_equal(g["trade_count"], exp[("px", "count")])


def test_watermark_closes_and_late_trades_are_counted() -> None:
    b = BarBuilder(NS)
    one = np.array([0], np.int32)
    assert len(b.on_trades(one, np.array([5 * NS]), np.array([1.0]), np.array([1.0]))["sym"]) == 0
    assert len(b.close_until(5 * NS + 1)["sym"]) == 0
    c = b.close_until(6 * NS)
    assert list(c["ts_event"]) == [5 * NS]
    b.on_trades(one, np.array([8 * NS]), np.array([1.0]), np.array([1.0]))
    b.on_trades(one, np.array([7 * NS]), np.array([1.0]), np.array([1.0]))
    assert b.late == 1
