"""Shared inputs of the modelled-chain tests: the book they build and the random states
(symbol, time ns, spot, IV) they draw. American daily (SPY) and weekly (AAPL) roots and a European
one (SPX); spots anywhere in each root's range, on a whole cent or half way between two strikes."""

from __future__ import annotations

import datetime as dt
import math

from hypothesis import strategies as st

from aiots.core.conventions import NS_PER_MIN, ny_ns
from aiots.services.backtest.modelled import ModelledChainBook, ModelSettings, strike_step

RATE = 0.045
DTE_MIN, DTE_MAX = 2.0, 21.0
AGE_NS = 60 * 10**9
EVENT_RATIO = 1.0  # low enough that the kink sentence is built whenever two expiries answer
DAYS = [dt.date(2024, 3, 4) + dt.timedelta(days=i) for i in range(40)]
SPOTS = {"SPY": (1.0, 900.0), "AAPL": (3.0, 300.0), "SPX": (1000.0, 6000.0)}
IVS = (0.05, 0.16, 0.3, 0.9)  # the IVs drawn by name (otherwise any in [0.05, 1.5])

State = tuple[str, int, float, float]


def book(dte_min: float = DTE_MIN, dte_max: float = DTE_MAX) -> ModelledChainBook:
    return ModelledChainBook(ModelSettings(), RATE, dte_min, dte_max)


@st.composite
def states(draw: st.DrawFn, ivs: tuple[float, ...] = IVS) -> State:
    symbol = draw(st.sampled_from(sorted(SPOTS)))
    day = draw(st.sampled_from(DAYS))
    now = ny_ns(day, dt.time(9, 30)) + draw(st.integers(0, 24 * 60)) * NS_PER_MIN - draw(st.integers(0, 59)) * 10**9
    lo, hi = SPOTS[symbol]
    spot = draw(st.floats(lo, hi))
    if draw(st.booleans()):  # a whole cent, or half way between two strikes
        step = strike_step(spot)
        spot = draw(st.sampled_from([round(spot, 2), (math.floor(spot / step) + 0.5) * step]))
    iv = draw(st.sampled_from(list(ivs))) if draw(st.booleans()) else draw(st.floats(0.05, 1.5))
    return symbol, now, spot, iv
