"""Modelled option premiums where no real quotes exist (underlying bars only).

A synthetic chain is built at the decision time from the listed expiries of the root
(:func:`aiots.core.conventions.listed_expiries`) inside the selection's DTE window and a strike
grid around the spot. Each contract is priced with the style of its root (American:
Bjerksund-Stensland 2002; European: Black-Scholes) at one IV, flat across strikes (no skew).
The IV comes, in order, from: a configured per-symbol IV, the ATM IV of the nearest real chain
snapshot of that symbol (the latest one at or before the time, else the earliest after), a
configured default IV, or the symbol's trailing realised volatility of regular-hours 1-minute
returns (no look-ahead). Quotes get a modelled spread: the half-spread is a fraction of the
model price (at least a minimum), rounded outward to the tick. Every trade priced this way is
labelled ``priced_from = "modelled"``.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from aiots.core import options as opt
from aiots.core.conventions import (
    NS_PER_DAY,
    NS_PER_MIN,
    NS_PER_YEAR,
    ExerciseStyle,
    calendar,
    exercise_style,
    expiry_ns,
    format_occ,
    listed_expiries,
    ny_date,
)
from aiots.services.backtest.readers import ChainSnapshots
from aiots.services.signals.chainview import F64, ChainView, Rows
from aiots.services.signals.engine import ChainBook
from aiots.services.signals.models import OptionQuote

MINUTES_PER_YEAR = 390.0 * 252.0
LAYOUT_CACHE_SIZE = 4096  # modelled chain layouts kept per book


@functools.lru_cache(maxsize=200_000)
def _occ(root: str, expiry: dt.date, right: str, strike: float) -> str:
    return format_occ(root, expiry, right, strike)


@dataclass(frozen=True)
class ModelSettings:
    """How modelled premiums are made (fractions of the model price; dollars per share)."""

    half_spread_frac: float = (
        0.0125  # SPXW median half-spread/mid of selectable contracts is 1.84%, yfinance Mag-7 2.72%
    )
    min_half_spread: float = 0.01
    tick: float = 0.01
    strikes_sd: float = 0.8  # each expiry's strike grid spans +- this many IV standard deviations to expiry
    max_strikes_per_side: int = 40
    iv_by_symbol: dict[str, float] = field(default_factory=dict)
    default_iv: float | None = None
    realised_halflife_bars: float = 390.0
    realised_min_returns: int = 60
    min_iv: float = 0.05
    dividend_yield: float = 0.0

    def half_spread_frac_for(self, _symbol: str) -> float:
        return self.half_spread_frac


def strike_step(spot: float) -> float:
    """A listed-strike increment typical for the price level (dollars)."""
    if spot < 25:
        return 0.5
    if spot < 1000:
        return 1.0
    return 5.0


def modelled_quote_prices(model_price: float | np.ndarray, settings: ModelSettings) -> tuple[np.ndarray, np.ndarray]:
    """(bid, ask) around ``model_price`` with the modelled half-spread, rounded outward to the tick."""
    p = np.asarray(model_price, dtype=np.float64)
    h = np.maximum(settings.half_spread_frac * p, settings.min_half_spread)
    t = settings.tick
    bid = np.floor((p - h) / t + 1e-9) * t
    ask = np.ceil((p + h) / t - 1e-9) * t
    return np.where(bid > 0, np.round(bid, 6), 0.0), np.round(ask, 6)


def model_price(
    spot: float,
    strike: np.ndarray,
    years: np.ndarray,
    rate: float,
    iv: float,
    q: float,
    is_call: np.ndarray,
    style: str,
) -> np.ndarray:
    """Model value per share: American (BS2002) or European (BSM) by the root's style."""
    t = np.maximum(years, 1e-9)
    if style == "european":
        return np.asarray(opt.bs_price(spot, strike, t, rate, iv, q, is_call), dtype=np.float64)
    return np.asarray(opt.american_price(spot, strike, t, rate, iv, q, is_call), dtype=np.float64)


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


@dataclass(frozen=True)
class _Layout:
    """The contracts of a modelled chain (no prices): expiries and rows in OCC order."""

    exps: list[tuple[dt.date, str, int]]
    exp_idx: np.ndarray
    strike: np.ndarray
    is_call: np.ndarray
    expiry_ns: np.ndarray
    zeros: np.ndarray = field(default_factory=lambda: np.empty(0))  # size, open interest, volume: unknown
    multiplier: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    expiry_index: tuple[list[int], np.ndarray] = field(default_factory=lambda: ([], np.empty(0, np.int64)))


def _build_layout(key: tuple[object, ...]) -> _Layout:
    """Rows for ``key`` = (symbol[, step, center, (expiry, expiry ns, strikes per side)...])."""
    exps: list[tuple[dt.date, str, int]] = []
    cols: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    if len(key) > 1:
        step, center = float(key[1]), float(key[2])  # type: ignore[arg-type]
        for j in range((len(key) - 3) // 3):
            e, e_ns, n = key[3 + 3 * j : 6 + 3 * j]
            assert isinstance(e, dt.date) and isinstance(e_ns, int) and isinstance(n, int)
            k = np.round(center + step * np.arange(-n, n + 1), 6)
            k = k[k > 0]
            m = len(k)
            exps.append((e, e.isoformat(), e_ns))
            cols.append(
                (
                    np.full(2 * m, j, dtype=np.int64),
                    np.concatenate([k, k]),
                    np.repeat(np.array([True, False]), m),
                    np.full(2 * m, e_ns, dtype=np.int64),
                )
            )
    if not cols:
        return _Layout(exps, np.empty(0, np.int64), np.empty(0), np.empty(0, np.bool_), np.empty(0, np.int64))
    idx, strike, is_call, exp_ns = (np.concatenate(c) for c in zip(*cols, strict=True))
    n = len(strike)
    mult = np.full(n, OptionQuote.multiplier, dtype=np.int64)
    # the expiries are in date order, so each row's expiry code is its position in ``exps``
    return _Layout(exps, idx, strike, is_call, exp_ns, np.zeros(n), mult, ([e_ns for _e, _iso, e_ns in exps], idx))


class ModelledChainView(ChainView):
    """The modelled chain of one symbol at one time, in OCC order (expiry, calls then puts, strike),
    priced lazily: :meth:`bid_ask` prices only the rows asked for (each row alone gives the same
    number as the whole chain priced at once), so a decision pays for the contracts it reads."""

    def __init__(self, book: ModelledChainBook, symbol: str, now_ns: int, spot: float, iv: float) -> None:
        s = book.settings
        self.symbol, self.now_ns, self.spot, self.iv = symbol, now_ns, spot, iv
        self._rate, self._s, self._style = book.rate, s, exercise_style(symbol)
        lo, hi = book.dte_min * NS_PER_DAY, book.dte_max * NS_PER_DAY
        exps = sorted(e for e in book._expiries(symbol, ny_date(now_ns)) if lo <= e[1] - now_ns <= hi)
        years: list[float] = []
        key: list[object] = [symbol]
        if exps and spot > 0:
            step = strike_step(spot)
            center = round(spot / step) * step
            key += [step, center]
            for e, e_ns in exps:
                t_years = (e_ns - now_ns) / NS_PER_YEAR
                width = s.strikes_sd * iv * math.sqrt(max(t_years, 1.0 / 365.0)) * spot
                n = min(s.max_strikes_per_side, max(2, math.ceil(width / step)))
                years.append(t_years)
                key += [e, e_ns, n]
        lay = book.layout(tuple(key))
        self._exps = lay.exps
        self._exp_idx = lay.exp_idx
        self._exp_years = np.array(years)  # years to each expiry (rows index it by ``_exp_idx``)
        n_rows = len(lay.strike)
        z = lay.zeros  # shared read-only columns of the layout
        super().__init__(
            lay.expiry_ns, lay.strike, lay.is_call, np.full(n_rows, now_ns, dtype=np.int64), z, z, z, lay.multiplier
        )
        self._expiry_index = lay.expiry_index
        self._bid = np.zeros(n_rows)
        self._ask = np.zeros(n_rows)
        self._priced = np.zeros(n_rows, dtype=np.bool_)

    def bid_ask(self, rows: Rows) -> tuple[F64, F64]:
        need = rows[~self._priced[rows]]
        if len(need):
            s = self._s
            px = model_price(
                self.spot,
                self.strike[need],
                self._exp_years[self._exp_idx[need]],
                self._rate,
                self.iv,
                s.dividend_yield,
                self.is_call[need],
                self._style,
            )
            b, a = modelled_quote_prices(px, s)
            self._bid[need], self._ask[need], self._priced[need] = b, a, True
        return self._bid[rows], self._ask[rows]

    def occ(self, i: int) -> str:
        e = self._exps[int(self._exp_idx[i])][0]
        return _occ(self.symbol, e, "C" if self.is_call[i] else "P", float(self.strike[i]))

    def styles(self, rows: Rows) -> list[ExerciseStyle]:
        # one root per modelled chain: the style of its first contract's OCC symbol
        return [exercise_style(self.occ(int(rows[0])))] * len(rows) if len(rows) else []

    def quote(self, i: int) -> OptionQuote:
        b, a = self.bid_ask(np.array([i], dtype=np.intp))
        _e, iso, e_ns = self._exps[int(self._exp_idx[i])]
        return OptionQuote(
            self.occ(i),
            self.symbol,
            iso,
            e_ns,
            float(self.strike[i]),
            bool(self.is_call[i]),
            float(b[0]),
            float(a[0]),
            ts_ns=self.now_ns,
        )


class ModelledChainBook(ChainBook):
    """A :class:`ChainBook` whose chain for a modelled symbol is synthesised at the current time.

    Symbols fed real quotes (``update``) keep the plain ChainBook behaviour; for the others the
    runner sets the time, spot and IV with :meth:`set_state` before the engine selects. The chain is
    a lazily priced :class:`ModelledChainView`, built only when the engine reads it.
    """

    def __init__(self, settings: ModelSettings, rate: float, dte_min: float, dte_max: float) -> None:
        super().__init__()
        self.settings = settings
        self.rate = rate
        self.dte_min, self.dte_max = dte_min, dte_max
        self._state: dict[str, tuple[int, float, float]] = {}
        self._cache: dict[str, tuple[tuple[int, float, float], ModelledChainView]] = {}
        self._exp_cache: dict[tuple[str, dt.date], list[tuple[dt.date, int]]] = {}
        self._layouts: dict[tuple[object, ...], _Layout] = {}
        self.real: set[str] = set()

    def layout(self, key: tuple[object, ...]) -> _Layout:
        """The chain's contracts for a (symbol, strike grid, expiries) key (cached: the spot's strike
        grid and the expiries change far less often than the bars)."""
        lay = self._layouts.get(key)
        if lay is None:
            if len(self._layouts) >= LAYOUT_CACHE_SIZE:
                self._layouts.clear()
            lay = self._layouts[key] = _build_layout(key)
        return lay

    def update(self, q: OptionQuote) -> None:
        self.real.add(q.underlying)
        super().update(q)

    def set_state(self, symbol: str, now_ns: int, spot: float, iv: float) -> None:
        self._state[symbol] = (now_ns, spot, iv)

    def view(self, underlying: str) -> ChainView:
        if underlying in self.real:
            return super().view(underlying)
        st = self._state.get(underlying)
        if st is None or not math.isfinite(st[2]):
            return ChainView.from_quotes([])
        hit = self._cache.get(underlying)
        if hit is not None and hit[0] == st:
            return hit[1]
        v = ModelledChainView(self, underlying, *st)
        self._cache[underlying] = (st, v)
        return v

    def chain(self, underlying: str) -> list[OptionQuote]:
        if underlying in self.real:
            return super().chain(underlying)
        v = self.view(underlying)
        return [v.quote(i) for i in range(len(v))]

    def _expiries(self, symbol: str, day: dt.date) -> list[tuple[dt.date, int]]:
        """(expiry, expiry ns) listed for ``symbol`` from ``day`` to ``dte_max`` days on (cached per day)."""
        key = (symbol, day)
        hit = self._exp_cache.get(key)
        if hit is None:
            end = day + dt.timedelta(days=math.ceil(self.dte_max) + 1)
            hit = self._exp_cache[key] = [(e, expiry_ns(e)) for e in listed_expiries(symbol, day, end)]
        return hit

    def synthesise(self, symbol: str, now_ns: int, spot: float, iv: float) -> list[OptionQuote]:
        """The modelled chain of ``symbol`` at ``now_ns`` (calls and puts, sorted by OCC symbol)."""
        v = ModelledChainView(self, symbol, now_ns, spot, iv)
        v.bid_ask(np.arange(len(v)))
        return [v.quote(i) for i in range(len(v))]

    def reprice(self, q: OptionQuote, now_ns: int, spot: float, iv: float) -> tuple[float, float]:
        """(bid, ask) of contract ``q`` at ``now_ns`` for spot ``spot`` at the entry IV."""
        years = np.array([(q.expiry_ns - now_ns) / NS_PER_YEAR])
        px = model_price(
            spot,
            np.array([q.strike]),
            years,
            self.rate,
            iv,
            self.settings.dividend_yield,
            np.array([q.is_call]),
            exercise_style(q.occ_symbol),
        )
        if years[0] <= 0:
            px = np.array([max(0.0, (spot - q.strike) if q.is_call else (q.strike - spot))])
        bid, ask = modelled_quote_prices(px, self.settings)
        return float(bid[0]), float(ask[0])
