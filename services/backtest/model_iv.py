"""Where a modelled chain's IV comes from when none is configured: the ATM IV of the nearest real
chain snapshot (:class:`ChainIV`), else the symbol's trailing realised volatility of regular-hours
1-minute returns (:class:`RealisedVol`, no look-ahead). :mod:`aiots.services.backtest.modelled`
prices the chain at that IV.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Collection

import numpy as np

from aiots.core.conventions import NS_PER_DAY, NS_PER_MIN, calendar, expiry_ns
from aiots.services.backtest.readers import ChainSnapshots

MINUTES_PER_YEAR = 390.0 * 252.0


class RealisedVol:
    """Trailing EW realised vol of regular-hours 1-minute log returns, annualised (390 x 252)."""

    def __init__(self, halflife_bars: float, min_returns: int) -> None:
        self._alpha = 1.0 - 0.5 ** (1.0 / halflife_bars)
        self._min = min_returns
        self._var: dict[str, float] = {}
        self._n: dict[str, int] = {}
        self._last: dict[str, tuple[int, float]] = {}

    def update(self, symbol: str, ts_ns: int, close: float, interval_ns: int, *, regular: bool | None = None) -> None:
        """One bar; ``regular``: whether ``ts_ns`` is in regular hours, when the caller knows already."""
        if not (calendar().is_regular_hours(ts_ns) if regular is None else regular):
            return
        prev = self._last.get(symbol)
        self._last[symbol] = (ts_ns, close)
        if prev is None or ts_ns - prev[0] != interval_ns or prev[1] <= 0 or close <= 0:
            return
        r = math.log(close / prev[1])
        v = self._var.get(symbol)
        self._var[symbol] = r * r if v is None else (1 - self._alpha) * v + self._alpha * r * r
        self._n[symbol] = self._n.get(symbol, 0) + 1

    def vol(self, symbol: str, interval_ns: int) -> float:
        if self._n.get(symbol, 0) < self._min:
            return math.nan
        per_year = MINUTES_PER_YEAR * NS_PER_MIN / interval_ns
        return math.sqrt(self._var[symbol] * per_year)


class ChainIV:
    """ATM IV per (symbol, snapshot time) from real chain snapshots.

    ATM is the strike where |call mid - put mid| is smallest (no spot needed); the IV is the
    median of the vendor IVs of the call and put there, on the expiry nearest ``target_days``.
    """

    def __init__(
        self, chains: list[ChainSnapshots], target_days: float, symbols: Collection[str] | None = None
    ) -> None:
        """``symbols``: only these underlyings (default: every one in ``chains``)."""
        self._points: dict[str, list[tuple[int, float]]] = {}
        for c in chains:
            f = c.frame
            if symbols is not None:
                f = f[f["underlying"].isin(list(symbols))]
            f = f[(f["bid"] > 0) & (f["ask"] > 0) & (f["ask"] >= f["bid"]) & np.isfinite(f["implied_vol"])]
            for (und, ts), g in f.groupby(["underlying", "ts_ns"]):
                iv = self._atm_iv(g, int(ts), target_days)
                if math.isfinite(iv):
                    self._points.setdefault(str(und), []).append((int(ts), iv))
        for v in self._points.values():
            v.sort()

    @staticmethod
    def _atm_iv(frame: object, ts: int, target_days: float) -> float:
        import pandas as pd

        assert isinstance(frame, pd.DataFrame)
        days = (frame["expiration"].map(lambda e: expiry_ns(e)) - ts) / NS_PER_DAY
        g: pd.DataFrame = frame.assign(days=days)
        g = g[g["days"] > 0.5]
        if g.empty:
            return math.nan
        exp_days = g.groupby("expiration")["days"].first()
        best = (exp_days - target_days).abs().idxmin()
        e = g[g["expiration"] == best].assign(mid=lambda x: 0.5 * (x["bid"] + x["ask"]))
        calls = e[e["is_call"]].set_index("strike")
        puts = e[~e["is_call"]].set_index("strike")
        both = calls.index.intersection(puts.index)
        if len(both) == 0:
            return math.nan
        diff = (calls.loc[both, "mid"] - puts.loc[both, "mid"]).abs()
        k = diff.idxmin()
        ivs = [float(calls.at[k, "implied_vol"]), float(puts.at[k, "implied_vol"])]
        ivs = [v for v in ivs if 0.01 < v < 5.0]
        return float(np.median(ivs)) if ivs else math.nan

    def iv(self, symbol: str, ts_ns: int) -> tuple[float, int | None]:
        """(IV, snapshot ns) of the latest snapshot at or before ``ts_ns``, else the earliest after."""
        pts = self._points.get(symbol)
        if not pts:
            return math.nan, None
        i = bisect.bisect_right(pts, (ts_ns, math.inf)) - 1
        t, v = pts[i] if i >= 0 else pts[0]
        return v, t

    def symbols(self) -> list[str]:
        return sorted(self._points)
