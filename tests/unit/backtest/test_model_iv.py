"""The modelled chain's IV sources: the realised vol is pandas' exponentially weighted mean of the
squared 1-minute log returns (gaps and out-of-hours bars skipped), annualised; a chain snapshot's
ATM IV is, by hand, the median vendor IV of the call and put where their mids are closest, on the
expiry nearest the target, and a time reads the latest snapshot at or before it."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from aiots.core.conventions import NS_PER_MIN, ny_ns
from aiots.services.backtest.model_iv import MINUTES_PER_YEAR, ChainIV, RealisedVol
from aiots.services.backtest.readers import ChainSnapshots

DAY = dt.date(2024, 3, 5)
OPEN = ny_ns(DAY, dt.time(9, 30))


def test_realised_vol_is_the_ewm_of_squared_returns_skipping_gaps_and_closed_hours() -> None:
    rng = np.random.default_rng(7)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, 80)))
    times = [OPEN + i * NS_PER_MIN for i in range(80)]
    times[40:] = [t + 3 * NS_PER_MIN for t in times[40:]]  # a 3-minute gap before bar 40
    rv = RealisedVol(halflife_bars=20.0, min_returns=10)
    rv.update("X", ny_ns(DAY, dt.time(8, 0)), 50.0, NS_PER_MIN)  # pre-market: ignored
    for t, c in zip(times, closes, strict=True):
        rv.update("X", t, float(c), NS_PER_MIN)
    r = np.log(closes[1:] / closes[:-1])
    r = np.delete(r, 39)  # the return across the gap is not a 1-minute return
    alpha = 1.0 - 0.5 ** (1.0 / 20.0)
    var = pd.Series(r * r).ewm(alpha=alpha, adjust=False).mean().iloc[-1]
    assert rv.vol("X", NS_PER_MIN) == pytest.approx(math.sqrt(var * MINUTES_PER_YEAR), rel=1e-12)
    few = RealisedVol(20.0, 10)
    for t, c in zip(times[:5], closes[:5], strict=True):
        few.update("X", t, float(c), NS_PER_MIN)
    assert math.isnan(few.vol("X", NS_PER_MIN)) and math.isnan(few.vol("Y", NS_PER_MIN))


def _rows(ts: int, expiration: str, rows: list[tuple[float, float, float, float, float, float, float]]) -> list[dict]:
    out = []
    for k, cb, ca, civ, pb, pa, piv in rows:
        for is_call, b, a, iv in ((True, cb, ca, civ), (False, pb, pa, piv)):
            out.append(
                {"ts_ns": ts, "underlying": "XYZ", "underlying_price": 100.0, "expiration": expiration}
                | {"is_call": is_call, "strike": k, "bid": b, "ask": a, "implied_vol": iv}
                | {"open_interest": 1.0, "volume": 1.0}
            )
    return out


def test_chain_iv_is_the_median_vendor_iv_where_call_and_put_mids_meet() -> None:
    t1, t2 = OPEN + 30 * NS_PER_MIN, OPEN + 90 * NS_PER_MIN
    near, far = "2024-03-15", "2024-04-19"  # ~10 and ~45 days out: a 30-day target picks the far one
    rows = (
        _rows(t1, near, [(100.0, 2.0, 2.2, 0.50, 2.0, 2.2, 0.52)])
        + _rows(
            t1,
            far,
            [
                (95.0, 7.0, 7.2, 0.31, 2.0, 2.1, 0.33),
                (100.0, 4.0, 4.2, 0.30, 3.9, 4.1, 0.26),  # |4.1 - 4.0| = 0.1: ATM
                (105.0, 2.0, 2.2, 0.29, 6.0, 6.4, 0.27),
            ],
        )
        + _rows(t2, far, [(100.0, 4.0, 4.2, 0.40, 3.9, 4.1, 7.0)])  # 7.0: not a plausible IV, left out
    )
    chains = [ChainSnapshots(pd.DataFrame(rows), "hand")]
    civ = ChainIV(chains, target_days=30.0)
    assert civ.symbols() == ["XYZ"]
    assert civ.iv("XYZ", t1) == (pytest.approx(0.28), t1)  # median of 0.30 and 0.26
    assert civ.iv("XYZ", t1 + NS_PER_MIN) == (pytest.approx(0.28), t1)  # the latest at or before
    assert civ.iv("XYZ", t2 + NS_PER_MIN) == (pytest.approx(0.40), t2)
    assert civ.iv("XYZ", t1 - NS_PER_MIN) == (pytest.approx(0.28), t1)  # none before: the earliest after
    iv, snap = civ.iv("ABC", t1)
    assert math.isnan(iv) and snap is None
    assert ChainIV(chains, 30.0, symbols={"ABC"}).symbols() == []
