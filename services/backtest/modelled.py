"""Modelled option premiums where no real quotes exist (underlying bars only).

A synthetic chain is built at the decision time from the listed expiries of the root
(:func:`aiots.core.conventions.listed_expiries`) inside the selection's DTE window and a strike
grid around the spot. Each contract is priced with the style of its root (American:
Bjerksund-Stensland 2002; European: Black-Scholes) at one IV, flat across strikes (no skew).
The IV comes, in order, from: a configured per-symbol IV, the ATM IV of the nearest real chain
snapshot of that symbol (the latest one at or before the time, else the earliest after), a
configured default IV, or the symbol's trailing realised volatility of regular-hours 1-minute
returns (no look-ahead) (those IV sources: :mod:`aiots.services.backtest.model_iv`). Quotes get
a modelled spread: the half-spread is a fraction of the model price (at least a minimum), rounded
outward to the tick. Every trade priced this way is labelled ``priced_from = "modelled"``.

Size: the modelled view, its cached strike grids and layouts, and the book that makes them share
one lazily priced state (which rows are priced, at what); apart they would pass it around.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import numpy.typing as npt

from aiots.core import options as opt
from aiots.core.conventions import (
    NS_PER_DAY,
    NS_PER_YEAR,
    ExerciseStyle,
    exercise_style,
    expiry_ns,
    format_occ,
    listed_expiries,
    ny_date,
    ny_midnight_ns,
)
from aiots.services.backtest.model_iv import ChainIV, RealisedVol
from aiots.services.backtest.modelled_atm_bound import atm_iv_exceeds
from aiots.services.signals.atm_iv import grid_first_iv, nearest_strikes, pair_iv
from aiots.services.signals.chainview import F64, I64, ChainView, ExpiryGrid, QuoteModel, Rows
from aiots.services.signals.engine import ChainBook
from aiots.services.signals.models import OptionQuote

__all__ = [  # ChainIV and RealisedVol live in model_iv; the runner imports them from here
    "ChainIV",
    "ModelSettings",
    "ModelledChainBook",
    "ModelledChainView",
    "RealisedVol",
    "model_price",
    "modelled_quote",
    "modelled_quote_prices",
    "strike_step",
]

LAYOUT_CACHE_SIZE = 4096  # modelled chain layouts kept per book
BS02_BLOCK = 64  # the core prices American (BS2002) contracts in blocks of this many rows of a batch
BS02_MIN_BLOCK = 4  # a batch's last block under this many rows is priced one row at a time
TICK_EPS = 1e-9  # ticks: a price within this of a tick boundary is on it (float noise)
PRICE_DECIMALS = 6  # modelled quotes are rounded to this many decimals after the tick rounding
PRICE_SCALE = 10.0**PRICE_DECIMALS
MIN_YEARS = 1e-9  # model prices at expiry are taken this long before it
STRIKE_GRID_CACHE = 4096  # (step, center, strikes per side) grids kept (~2.5 kB each)
EXPIRY_GRID_CACHE = 4096  # expiry grids (symbol, expiry, strike grid, first row) kept per book
STYLE_CACHE_SIZE = 65_536  # exercise styles of roots and OCC symbols kept per book
FLOAT_QUOTE_MAX_ROWS = 16  # batches of up to this many rows are quoted in floats (numpy costs more below)
MIN_STRIKES_PER_SIDE = 2  # an expiry's strike grid has at least this many strikes each side of its center
_MIN_WIDTH_YEARS = 1.0 / 365.0  # a strike grid spans at least one day's standard deviations
#: the expiries of a view without any (shared, never written)
_NO_EXPIRIES: tuple[list[tuple[dt.date, str, int]], list[int]] = ([], [])
_NO_ROWS = np.empty(0, dtype=np.intp)
_NO_ROWS.flags.writeable = False
_State = tuple[int, float, float]  # a modelled symbol's state: (time ns, spot, IV)
_ReadArgs = tuple[float, int, float, float, float, float]  # an ATM read's (spot, now ns, r, q, lo ns, hi ns)


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
    bid = np.floor((p - h) / t + TICK_EPS) * t
    ask = np.ceil((p + h) / t - TICK_EPS) * t
    return np.where(bid > 0, np.round(bid, PRICE_DECIMALS), 0.0), np.round(ask, PRICE_DECIMALS)


def _quote_batch(px: F64, settings: ModelSettings) -> tuple[F64, F64]:
    """:func:`modelled_quote_prices` of a float64 array of prices, the same numbers with fewer
    temporaries: the same IEEE operations in the same order, in place (``np.round(x, 6)`` is
    ``rint(x * 1e6) / 1e6``); the bid's sign is taken before its rounding, as ``np.where`` does."""
    h = px * settings.half_spread_frac
    np.maximum(h, settings.min_half_spread, out=h)
    t = settings.tick
    bid = px - h
    bid /= t
    bid += TICK_EPS
    np.floor(bid, out=bid)
    bid *= t
    ask = px + h
    ask /= t
    ask -= TICK_EPS
    np.ceil(ask, out=ask)
    ask *= t
    positive = bid > 0
    for side in (bid, ask):
        side *= PRICE_SCALE
        np.rint(side, out=side)
        side /= PRICE_SCALE
    return np.where(positive, bid, 0.0), ask


def modelled_quote(model_price: float, settings: ModelSettings) -> tuple[float, float]:
    """:func:`modelled_quote_prices` of one finite price in plain floats, the same numbers: the same
    IEEE operations in the same order (``np.round(x, 6)`` is ``rint(x * 1e6) / 1e6``, and Python's
    ``round`` of a float is ``rint``), without numpy's per-call cost on a one-element array."""
    p = model_price
    h = settings.half_spread_frac * p
    if not h >= settings.min_half_spread:  # np.maximum: the larger (the minimum when equal: same value)
        h = settings.min_half_spread
    if not math.isfinite(p):
        b, a = modelled_quote_prices(p, settings)
        return float(b), float(a)
    t = settings.tick
    bid = math.floor((p - h) / t + TICK_EPS) * t
    ask = math.ceil((p + h) / t - TICK_EPS) * t
    return (round(bid * PRICE_SCALE) / PRICE_SCALE if bid > 0 else 0.0), round(ask * PRICE_SCALE) / PRICE_SCALE


def model_price(
    spot: float,
    strike: float | np.ndarray,
    years: float | np.ndarray,
    rate: float,
    iv: float,
    q: float,
    is_call: np.ndarray,
    style: str,
) -> np.ndarray:
    """Model value per share: American (BS2002) or European (BSM) by the root's style."""
    # a plain number: max keeps a NaN first argument, as np.maximum does, without a ufunc call
    t = max(years, MIN_YEARS) if isinstance(years, float) else np.maximum(years, MIN_YEARS)
    if style == "european":
        return np.asarray(opt.bs_price(spot, strike, t, rate, iv, q, is_call), dtype=np.float64)
    return np.asarray(opt.american_price(spot, strike, t, rate, iv, q, is_call), dtype=np.float64)


@dataclass(frozen=True)
class _Layout:
    """The contracts of a modelled chain (no prices): rows in OCC order."""

    exp_idx: np.ndarray
    strike: np.ndarray
    is_call: np.ndarray
    expiry_ns: np.ndarray
    zeros: np.ndarray = field(default_factory=lambda: np.empty(0))  # size, open interest, volume: unknown
    multiplier: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    expiry_index: tuple[list[int], np.ndarray] = field(default_factory=lambda: ([], np.empty(0, np.int64)))
    right_rows: dict[bool, np.ndarray] = field(default_factory=dict)  # is_call -> its rows (read-only), on demand

    def rows_of_right(self, call: bool) -> np.ndarray:
        """The rows of the calls (``call``) or of the puts, ascending, read-only (kept)."""
        rows = self.right_rows.get(call)
        if rows is None:
            rows = self.right_rows[call] = np.flatnonzero(self.is_call == call)
            rows.flags.writeable = False
        return rows


def _same_or_array(xs: list[float]) -> float | F64:
    """``xs`` as one number when all are equal (the core broadcasts it: the same value in every
    element, so the same results), else as an array."""
    return xs[0] if xs.count(xs[0]) == len(xs) else np.array(xs)


@functools.lru_cache(maxsize=STRIKE_GRID_CACHE)
def _grid_strikes(step: float, center: float, n: int) -> tuple[np.ndarray, list[float]]:
    """The positive strikes of the grid ``center + step * (-n..n)`` (rounded to 1e-6 dollars),
    ascending, as a read-only array and as floats (one computation for the layout and the grid)."""
    k = np.round(center + step * np.arange(-n, n + 1), PRICE_DECIMALS)
    k = k[k > 0]
    k.flags.writeable = False
    return k, k.tolist()


@functools.lru_cache(maxsize=STRIKE_GRID_CACHE)
def _layout_offsets(sides: tuple[int, ...]) -> tuple[I64, npt.NDArray[np.bool_], I64]:
    """For expiries whose grids have ``sides`` strikes per side, every row's (strike offset ``j``:
    its strike is ``center + step * j`` before the rounding, is call, expiry code), each expiry's
    calls then puts, strikes ascending, nonpositive strikes not dropped yet (read-only; kept: the
    sides change far less often than the grid's center)."""
    n = np.array(sides, dtype=np.int64)
    width = 2 * n + 1  # strikes per grid: -n..n
    idx = np.repeat(np.arange(len(sides), dtype=np.int64), 2 * width)
    first = np.cumsum(2 * width) - 2 * width  # each expiry's first row
    pos = np.arange(len(idx), dtype=np.int64) - first[idx]  # place in its expiry: calls, then puts
    w = width[idx]
    is_call = pos < w
    j = pos - n[idx] - np.where(is_call, 0, w)
    j.flags.writeable = is_call.flags.writeable = idx.flags.writeable = False
    return j, is_call, idx


def _strikes_per_side(
    s: ModelSettings, now_ns: int, spot: float, iv: float, step: float, e_ns: int
) -> tuple[float, int]:
    """(years from ``now_ns`` to the expiry at ``e_ns``, strikes per side of its grid: +-
    ``strikes_sd`` IV standard deviations to expiry, at least 2, at most ``max_strikes_per_side``)."""
    t_years = (e_ns - now_ns) / NS_PER_YEAR
    # max(t, m) is ``m if t < m else t``, max(2, n) ``n if n > 2 else 2``, min(m, n) ``n if n < m else m``
    t = _MIN_WIDTH_YEARS if t_years < _MIN_WIDTH_YEARS else t_years
    width = s.strikes_sd * iv * math.sqrt(t) * spot
    n = math.ceil(width / step)
    n = n if n > MIN_STRIKES_PER_SIDE else MIN_STRIKES_PER_SIDE
    m = s.max_strikes_per_side
    return t_years, n if n < m else m


def _strikes_per_side_of(
    s: ModelSettings, now_ns: int, spot: float, iv: float, step: float, e_ns: list[int]
) -> tuple[list[float], list[int]]:
    """:func:`_strikes_per_side` of each expiry in ``e_ns`` (years, strikes per side), the same
    operations in the same order in one loop (a view's columns need every expiry's: ~13 calls)."""
    years: list[float] = []
    sides: list[int] = []
    a = s.strikes_sd * iv  # the product's first factor: ``sd * iv * sqrt(t) * spot`` is ((sd * iv) * sqrt(t)) * spot
    m = s.max_strikes_per_side
    for e in e_ns:
        t_years = (e - now_ns) / NS_PER_YEAR
        n = math.ceil(a * math.sqrt(_MIN_WIDTH_YEARS if t_years < _MIN_WIDTH_YEARS else t_years) * spot / step)
        n = n if n > MIN_STRIKES_PER_SIDE else MIN_STRIKES_PER_SIDE
        years.append(t_years)
        sides.append(n if n < m else m)
    return years, sides


def _grid_origin(spot: float) -> tuple[float, float]:
    """(strike step, grid center) of a modelled chain at ``spot`` (dollars): the step's multiple nearest the spot."""
    step = strike_step(spot)
    return step, round(spot / step) * step


def _american_atm_pair(
    s: ModelSettings,
    spot: float,
    k: float,
    t: float,
    rate: float,
    iv: float,
    spot_iv: float,
    years: float,
    r: float,
    q: float,
) -> tuple[float, float, float, float, float, float] | None:
    """``opt.modelled_atm_pair`` of the American call and put at strike ``k``, ``t`` years to expiry,
    priced at (``spot``, ``rate``, ``iv``) with the settings' yield and spread, their mids solved at
    (``spot_iv``, ``years``, ``r``, ``q``): (bid call, ask call, bid put, ask put, IV call, IV put),
    None when a price is not finite."""
    return opt.modelled_atm_pair(
        spot,
        k,
        MIN_YEARS if t < MIN_YEARS else t,  # model_price's floor, max(t, MIN_YEARS) (a NaN stays NaN)
        rate,
        iv,
        s.dividend_yield,
        s.half_spread_frac,
        s.min_half_spread,
        s.tick,
        TICK_EPS,
        PRICE_SCALE,
        spot_iv,
        years,
        r,
        q,
    )


def _build_layout(key: tuple[object, ...]) -> _Layout:
    """Rows for ``key`` = (symbol[, step, center, (expiry, expiry ns, strikes per side)...])."""
    if len(key) <= 3:
        return _Layout(np.empty(0, np.int64), np.empty(0), np.empty(0, np.bool_), np.empty(0, np.int64))
    step, center = cast(float, key[1]), cast(float, key[2])
    exp_ns = cast(list[int], list(key[4::3]))
    j, is_call, idx = _layout_offsets(cast(tuple[int, ...], key[5::3]))
    # each expiry's strikes as _grid_strikes makes them (the same IEEE operations, element by element,
    # over every expiry at once): round(center + step * j, 6), the positive ones
    strike = np.round(center + step * j, PRICE_DECIMALS)
    row_ns = np.array(exp_ns, dtype=np.int64)[idx]
    positive = strike > 0
    if not positive.all():
        strike, is_call, idx, row_ns = strike[positive], is_call[positive], idx[positive], row_ns[positive]
    zeros, mult = _constant_columns(len(strike))
    return _Layout(idx, strike, is_call, row_ns, zeros, mult, (exp_ns, idx), {})


@functools.lru_cache(maxsize=STRIKE_GRID_CACHE)
def _constant_columns(n: int) -> tuple[F64, I64]:
    """(zeros, the contract multiplier) for ``n`` rows, read-only: the same in every layout of that size."""
    zeros, mult = np.zeros(n), np.full(n, OptionQuote.multiplier, dtype=np.int64)
    zeros.flags.writeable = mult.flags.writeable = False
    return zeros, mult


#: the columns a :class:`ModelledChainView` builds on first read (``__getattr__``)
_LAZY_COLUMNS = frozenset(
    {
        "expiry_ns",
        "strike",
        "is_call",
        "ask_size",
        "open_interest",
        "volume",
        "multiplier",
        "_expiry_index",
        "_exp_idx",
        "_exp_years",
        "_bid",
        "_ask",
        "_priced",
        "_layout",
        "_block",
        "_blocks",
    }
)


class ModelledChainView(ChainView):
    """The modelled chain of one symbol at one time, in OCC order (expiry, calls then puts, strike),
    priced lazily: :meth:`bid_ask` prices only the rows asked for (each row alone gives the same
    number as the whole chain priced at once), so a decision pays for the contracts it reads.

    Built lazily too (one is made per bar; most bars read only the ATM IV of one expiry): the
    expiries in the DTE window are known at once; each expiry's strike grid (:meth:`expiry_grid`)
    when asked for, in expiry order (a grid's rows follow the earlier expiries'); the columns
    (``strike``, ``ts_ns``, ...) on their first read, from the book's cached layout. Rows priced
    before that (:meth:`bid_ask_list`) keep their prices. Every number equals the eager build's."""

    def __init__(self, book: ModelledChainBook, symbol: str, now_ns: int, spot: float, iv: float) -> None:
        self.symbol, self.now_ns, self.spot, self.iv = symbol, now_ns, spot, iv
        self._book = book
        self._rate, self._s, self._style = book.rate, book.settings, book.style(symbol)
        self._exps, self._exp_list = book.window(symbol, now_ns) if spot > 0 else _NO_EXPIRIES
        self._step, self._center = _grid_origin(spot) if self._exps else (math.nan, math.nan)
        # the expiries' grids built so far, in expiry order, and per grid: its first row (ascending),
        # years to its expiry and strikes per side (parallel lists: no record made per grid and bar)
        self._grids: list[ExpiryGrid] = []
        self._starts: list[int] = []
        self._years: list[float] = []
        self._sides: list[int] = []
        self._next_row = 0  # the first row of the next grid
        self._px: dict[int, tuple[float, float]] = {}  # (bid, ask) of rows priced before the columns exist
        self._ready = False  # the columns are built
        self.atm_memo = {}
        self.grid_memo = {}

    def __getattr__(self, name: str) -> object:
        """A column read before the columns exist builds them (only the names in ``_LAZY_COLUMNS``)."""
        if name in _LAZY_COLUMNS and not self.__dict__.get("_ready", True):
            self._build_columns()
            return getattr(self, name)
        raise AttributeError(name)

    def _per_side(self, e_ns: int) -> tuple[float, int]:
        """:func:`_strikes_per_side` of the expiry at ``e_ns`` for this view."""
        return _strikes_per_side(self._s, self.now_ns, self.spot, self.iv, self._step, e_ns)

    def _rows_of(self, code: int) -> ExpiryGrid:
        """Expiry ``code``'s grid (the grids before it are built first: their rows come first)."""
        grids = self._grids
        while len(grids) <= code:
            e, _iso, e_ns = self._exps[len(grids)]
            t_years, n = self._per_side(e_ns)
            c0 = self._next_row
            grid = self._book.grid(self.symbol, e, self._step, self._center, n, c0)
            self._next_row = grid.put0 + len(grid.strikes)
            grids.append(grid)
            self._starts.append(c0)
            self._years.append(t_years)
            self._sides.append(n)
        return grids[code]

    def _build_columns(self) -> None:
        key: list[object] = [self.symbol]
        years: list[float] = []
        if self._exps:
            # the grids built so far know their sizes; the rest only their size (built when read)
            built = len(self._grids)
            years, sides = self._years.copy(), self._sides.copy()
            if built < len(self._exps):
                rest = self._exp_list[built:]
                more = _strikes_per_side_of(self._s, self.now_ns, self.spot, self.iv, self._step, rest)
                years += more[0]
                sides += more[1]
            key += [self._step, self._center]
            for (e, _iso, e_ns), n in zip(self._exps, sides, strict=True):
                key += [e, e_ns, n]
        lay = self._book.layout(tuple(key))
        n_rows = len(lay.strike)
        self.expiry_ns, self.strike, self.is_call = lay.expiry_ns, lay.strike, lay.is_call
        self.multiplier = lay.multiplier
        self.ask_size = self.open_interest = self.volume = lay.zeros  # shared read-only columns of the layout
        self._expiry_index = lay.expiry_index
        self._layout = lay
        self._exp_idx = lay.exp_idx
        self._exp_years = np.array(years)  # years to each expiry (rows index it by ``_exp_idx``)
        self._bid = np.zeros(n_rows)
        self._ask = np.zeros(n_rows)
        self._priced = np.zeros(n_rows, dtype=np.bool_)
        self._block = np.full(n_rows, -1, dtype=np.int64)  # the deferred batch block of each row (-1: none)
        self._blocks: list[Rows | None] = []  # None: a group of rows priced alone whatever the batch
        for i, (b, a) in self._px.items():
            self._bid[i], self._ask[i], self._priced[i] = b, a, True
        self._ready = True

    @property
    def ts_ns(self) -> I64:  # type: ignore[override]
        """Every row's quote time, ``now_ns`` (made on read: the modelled paths ask ``quote_ns``)."""
        ts = self.__dict__.get("_ts_ns")
        if ts is None:
            ts = self.__dict__["_ts_ns"] = np.full(len(self), self.now_ns, dtype=np.int64)
        return ts

    # --- the grid view (:mod:`aiots.services.signals.atm_iv` reads the ATM contracts from it) ----
    def quote_ns(self) -> int | None:
        return self.now_ns

    def expiry_list(self) -> list[int]:
        return self._exp_list

    def expiry_grid(self, code: int) -> ExpiryGrid | None:
        grids = self._grids
        return grids[code] if code < len(grids) else self._rows_of(code)

    def bid_ask_list(self, rows: list[int]) -> tuple[list[float], list[float]]:
        # the rows not priced yet, priced as bid_ask would: one batch, in the order asked
        ready = self._ready
        px = self._px
        need = [i for i in rows if not self._priced[i]] if ready else [i for i in rows if i not in px]
        if need and ready and self._blocks:  # deferred rows: with their blocks (as priced before: not in the batch)
            need = self._price_deferred(np.array(need, dtype=np.intp)).tolist()
        if need:
            ks: list[float] = []
            years: list[float] = []
            calls: list[bool] = []
            grids, starts = self._grids, self._starts
            for i in need:
                j = bisect.bisect_right(starts, i) - 1
                if j < 0 or i >= grids[j].put0 + len(grids[j].strikes):
                    if not ready:  # a row of no grid built yet: through the columns
                        self._build_columns()
                    return super().bid_ask_list(rows)
                grid = grids[j]
                call = i < grid.put0
                ks.append(grid.strikes[i - (grid.call0 if call else grid.put0)])
                years.append(self._years[j])
                calls.append(call)
            s = self._s
            prices = self._model_prices(ks, years, calls)
            quotes = [modelled_quote(p, s) for p in prices.tolist()]
            if ready:
                for i, (b, a) in zip(need, quotes, strict=True):
                    self._bid[i], self._ask[i], self._priced[i] = b, a, True
            else:
                px.update(zip(need, quotes, strict=True))
                if len(need) == len(rows):  # every row asked for was priced now (need keeps their order)
                    return [b for b, _a in quotes], [a for _b, a in quotes]
        if ready:
            return [float(self._bid[i]) for i in rows], [float(self._ask[i]) for i in rows]
        return [px[i][0] for i in rows], [px[i][1] for i in rows]

    def atm_pair(
        self, grid: ExpiryGrid, i: int, spot: float, years: float, r: float, q: float
    ) -> tuple[float, float, float, float, float, float] | None:
        # American views whose call and put at strike i are not deferred: the core's fused call
        # (opt.modelled_atm_pair) prices the pair as bid_ask_list would price the unpriced ones (the
        # same kernel, rows under BS02_MIN_BLOCK one at a time, modelled_quote's arithmetic) and
        # solves the mids as implied_vol does. A side priced already keeps its quote: the answer is
        # used only when the fused call quotes it the same (then its mid, so its IV, is the same)
        if self._style != "american":
            return None
        c, p = grid.call0 + i, grid.put0 + i
        ready = self._ready
        if ready:
            if self._batched(c) or self._batched(p):
                return None
            old_c = (float(self._bid[c]), float(self._ask[c])) if self._priced[c] else None
            old_p = (float(self._bid[p]), float(self._ask[p])) if self._priced[p] else None
        else:
            old_c, old_p = self._px.get(c), self._px.get(p)
        j = bisect.bisect_right(self._starts, grid.call0) - 1
        if j < 0 or self._grids[j] is not grid:
            return None
        out = _american_atm_pair(
            self._s, self.spot, grid.strikes[i], self._years[j], self._rate, self.iv, spot, years, r, q
        )
        if out is None:  # a price that is not finite: the general path quotes it
            return None
        bc, ac, bp, ap = out[0], out[1], out[2], out[3]
        if (old_c is not None and old_c != (bc, ac)) or (old_p is not None and old_p != (bp, ap)):
            return None  # a side priced in another batch, quoted otherwise: the general path reads it
        if ready:
            if old_c is None:
                self._bid[c], self._ask[c], self._priced[c], self._block[c] = bc, ac, True, -1
            if old_p is None:
                self._bid[p], self._ask[p], self._priced[p], self._block[p] = bp, ap, True, -1
        else:
            if old_c is None:
                self._px[c] = (bc, ac)
            if old_p is None:
                self._px[p] = (bp, ap)
        return out

    def _model_prices(self, ks: list[float], years: list[float], calls: list[bool]) -> F64:
        """:func:`model_price` of the contracts (strike, years to expiry, is call) at the view's spot,
        rate, IV and yield: the same numbers. The numbers go to the core as one-element views of one
        array (broadcast with the same value in every element), its direct path, instead of being
        converted one by one on every call (~1 us of a ~7 us call for a few rows)."""
        ys = _same_or_array(years)
        # model_price's floor on the years: Python's max for a number (a NaN first argument stays NaN,
        # as np.maximum keeps it), np.maximum for an array
        one = isinstance(ys, float)
        x = np.array([self.spot, max(ys, MIN_YEARS) if one else 0.0, self._rate, self.iv, self._s.dividend_yield])
        t = x[1:2] if one else np.maximum(ys, MIN_YEARS)
        price = opt.bs_price if self._style == "european" else opt.american_price
        k = np.array(ks, dtype=np.float64)
        return np.asarray(price(x[0:1], k, t, x[2:3], x[3:4], x[4:5], np.array(calls)), dtype=np.float64)

    # --- the chain view ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.strike)

    def defer_batch(self, rows: Rows) -> None:
        """Price the unpriced ``rows`` as one batch, as :meth:`bid_ask` would now, but later: each
        row when it is read, with the block of that batch it belongs to (the core prices American
        contracts in blocks of :data:`BS02_BLOCK` rows, each row's last bits depending on its block;
        a last block under :data:`BS02_MIN_BLOCK` rows one row at a time). Rows deferred already
        count as priced, as they are in the batch that is now not run. Every number read later is
        the one the batch would have given (an American view; a European one prices now).

        Calls of a view with a :meth:`quote_model` (American, no yield: the core prices each alone
        whatever the batch) are deferred as one group instead: each is priced when read, with the
        others of the group read at the same time and apart from any other row (whose batch it
        would otherwise change), the number any batch gives it."""
        if self._style != "american":
            self.bid_ask(rows)
            return
        b = rows[~self._priced[rows] & (self._block[rows] < 0)]
        if self._s.dividend_yield == 0.0 and self.is_call[b].all():
            self._block[b] = len(self._blocks)
            self._blocks.append(None)
            return
        for lo in range(0, len(b), BS02_BLOCK):
            blk = b[lo : lo + BS02_BLOCK]
            for part in [blk] if len(blk) >= BS02_MIN_BLOCK else [blk[j : j + 1] for j in range(len(blk))]:
                self._block[part] = len(self._blocks)
                self._blocks.append(part)

    def priced(self, rows: Rows) -> npt.NDArray[np.bool_]:
        # priced: quoted already (a deferred row is not: reading it prices its block)
        if not self._ready:
            px = self._px
            return np.array([int(i) in px for i in rows.tolist()], dtype=np.bool_)
        out: npt.NDArray[np.bool_] = self._priced[rows]
        return out

    def _batched(self, i: int) -> bool:
        """Row ``i`` is deferred with a batch block (its number depends on that block)."""
        block = int(self._block[i])
        return block >= 0 and self._blocks[block] is not None

    def _price_deferred(self, need: Rows) -> Rows:
        """Price each deferred block holding any of ``need`` (all of it, as its batch) and the rows of
        ``need`` deferred alone (as one batch of their own); the rest of ``need``."""
        ids = self._block[need]
        deferred = ids >= 0
        if not deferred.any():
            return need
        for block in dict.fromkeys(ids[deferred].tolist()):
            blk = self._blocks[block]
            if blk is None:  # calls priced alone whatever the batch: those read now, apart from the rest
                blk = need[ids == block]
            self._block[blk] = -1
            self._price_batch(blk)
        rest: Rows = need[~deferred]
        return rest

    def bid_ask(self, rows: Rows) -> tuple[F64, F64]:
        need = rows[~self._priced[rows]]
        if len(need) and self._blocks:
            need = self._price_deferred(need)
        if len(need):
            self._price_batch(need)
        return self._bid[rows], self._ask[rows]

    def _price_batch(self, need: Rows) -> None:
        """Price the rows ``need`` (not priced yet) as one batch, in this order, and keep the quotes."""
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
            if len(need) <= FLOAT_QUOTE_MAX_ROWS:  # a few rows: modelled_quote's floats, the same numbers
                quotes = [modelled_quote(p, s) for p in px.tolist()]
                self._bid[need] = [b for b, _a in quotes]
                self._ask[need] = [a for _b, a in quotes]
                self._priced[need] = True
            else:
                b, a = _quote_batch(px, s)
                self._bid[need], self._ask[need], self._priced[need] = b, a, True

    def quote_model(self) -> QuoteModel | None:
        # American calls with no yield are priced alone whatever the batch (BS2002's no-early-exercise
        # branch, one row at a time): the only calls selection may leave unpriced or price apart
        s = self._s
        if self._style != "american" or s.dividend_yield != 0.0 or not self._exps:
            return None
        return QuoteModel(self.spot, self._rate, self.iv, s.half_spread_frac, s.min_half_spread, s.tick)

    def liquid_rows(self, want_call: bool, min_open_interest: float, min_volume: float) -> Rows | None:
        # size, open interest and volume are unknown (0) on every row: all rows of the right pass, or none
        if not (min_open_interest <= 0.0 and min_volume <= 0.0):  # NaN floors: none pass, as 0 >= NaN
            return _NO_ROWS
        if not self._ready:
            self._build_columns()
        return self._layout.rows_of_right(want_call)

    def occ(self, i: int) -> str:
        e = self._exps[int(self._exp_idx[i])][0]
        return _occ(self.symbol, e, "C" if self.is_call[i] else "P", float(self.strike[i]))

    def styles(self, rows: Rows) -> list[ExerciseStyle]:
        # one root per modelled chain: the style of its first contract's OCC symbol
        return [self._book.style(self.occ(int(rows[0])))] * len(rows) if len(rows) else []

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


def _grid_occ(symbol: str, expiry: dt.date, strikes: list[float], call0: int, put0: int, i: int) -> str:
    """The OCC symbol of row ``i`` of one expiry's grid (as :meth:`ModelledChainView.occ`)."""
    call = i < put0
    return _occ(symbol, expiry, "C" if call else "P", strikes[i - (call0 if call else put0)])


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
        self._state: dict[str, _State] = {}
        self._cache: dict[str, tuple[tuple[int, float, float], ModelledChainView]] = {}
        self._exp_cache: dict[tuple[str, dt.date], list[tuple[dt.date, str, int]]] = {}
        self._exp_ns: dict[tuple[str, dt.date], list[int]] = {}  # the expiry ns of each list in _exp_cache
        self._expiry_ns_of: dict[dt.date, int] = {}  # expiry date -> its expiry instant (ns)
        self._layouts: dict[tuple[object, ...], _Layout] = {}
        self._grids: dict[tuple[object, ...], ExpiryGrid] = {}  # (symbol, expiry, step, center, n, row) -> grid
        self._styles: dict[str, ExerciseStyle] = {}  # root or OCC symbol -> its exercise style
        # symbol -> (from ns, until ns, expiries, their ns): the latest window and the times it holds for
        self._windows: dict[str, tuple[int, int, list[tuple[dt.date, str, int]], list[int]]] = {}
        self.real: set[str] = set()
        # symbol -> (state, the read's arguments (spot, now ns, r, q, lo, hi), its answer): the ATM
        # read first_atm_iv answered without making that state's view (made again when it is made)
        self._unmade: dict[str, tuple[_State, _ReadArgs, float]] = {}

    def style(self, root_or_occ: str) -> ExerciseStyle:
        """``exercise_style(root_or_occ)`` (kept: a view is made per bar, and selection asks per idea)."""
        st = self._styles.get(root_or_occ)
        if st is None:
            if len(self._styles) >= STYLE_CACHE_SIZE:
                self._styles.clear()
            st = self._styles[root_or_occ] = exercise_style(root_or_occ)
        return st

    def grid(self, symbol: str, expiry: dt.date, step: float, center: float, n: int, call0: int) -> ExpiryGrid:
        """The grid of ``expiry`` for the strikes ``center + step * (-n..n)`` (positive ones) with its
        first call at row ``call0`` and its puts after its calls (cached: a view is made per bar, and
        the spot's grid and the rows before it change far less often)."""
        key = (symbol, expiry, step, center, n, call0)
        g = self._grids.get(key)
        if g is None:
            if len(self._grids) >= EXPIRY_GRID_CACHE:
                self._grids.clear()
            ks = _grid_strikes(step, center, n)[1]
            put0 = call0 + len(ks)
            occ = functools.partial(_grid_occ, symbol, expiry, ks, call0, put0)
            g = self._grids[key] = ExpiryGrid(ks, call0, put0, occ)
        return g

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
        unmade = self._unmade.pop(underlying, None)
        if unmade is not None and unmade[0] == st:  # the ATM read answered without it, made on it now:
            grid_first_iv(v, *unmade[1])  # the same numbers, and the state the view would have kept
        self._cache[underlying] = (st, v)
        return v

    def first_atm_iv(
        self, symbol: str, spot: float, now_ns: int, r: float, q: float, lo: float, hi: float, max_age_ns: int
    ) -> float | None:
        """:func:`~aiots.services.signals.atm_iv.traded_atm_iv` of ``view(symbol)`` (the ATM IV of the
        first expiry in ``[lo, hi]`` ns after ``now_ns``; NaN when none has one), answered without
        making the view on the usual bar: a modelled American symbol whose view of the current state
        is not made yet, each expiry read with one strike nearest ``spot`` (finite) and its call and
        put two-sided (their quotes and IVs: one core call, :meth:`ModelledChainView.atm_pair`'s).
        None otherwise (make the view and read it). The same number as the view's read; when the view
        is made later (selection reads it), it makes this read itself first, so it keeps the same
        state (grids, priced rows, ``grid_memo``) as if it had been made for this read."""
        st = self._state.get(symbol)
        if st is None or symbol in self.real or not math.isfinite(spot):
            return None
        now_st, spot_st, iv_st = st
        if not (math.isfinite(iv_st) and now_ns - now_st <= max_age_ns and spot_st > 0):
            return None  # view() makes an empty view, or traded_atm_iv answers NaN (stale)
        hit = self._cache.get(symbol)
        if hit is not None and hit[0] == st:
            return None  # the view is made: it answers (from what it keeps)
        args = (spot, now_ns, r, q, lo, hi)
        unmade = self._unmade.get(symbol)
        if unmade is not None and unmade[0] == st:  # read before in this state: the same read, else the view's
            return unmade[2] if unmade[1] == args else None
        if self.style(symbol) != "american":
            return None
        exps = self.window(symbol, now_st)[0]
        if not exps:
            return None
        step, center = _grid_origin(spot_st)
        s = self.settings
        c0 = 0  # the first row of the next grid (the grids before it come first)
        ans = math.nan
        for e, _iso, e_ns in exps:
            if e_ns > hi:  # oldest first: no later expiry is in the window either
                break
            t_years, n = _strikes_per_side(s, now_st, spot_st, iv_st, step, e_ns)
            grid = self.grid(symbol, e, step, center, n, c0)
            ks = grid.strikes
            c0 = grid.put0 + len(ks)
            if e_ns <= now_ns or not lo <= e_ns or not ks:  # out of the window, or no rows: no answer
                continue
            a, b = nearest_strikes(ks, spot)
            if b - a != 1:
                return None
            out = _american_atm_pair(
                s, spot_st, ks[a], t_years, self.rate, iv_st, spot, (e_ns - now_ns) / NS_PER_YEAR, r, q
            )
            if out is None or not (out[0] > 0.0 and out[1] >= out[0] and out[2] > 0.0 and out[3] >= out[2]):
                return None  # not both two-sided (or a price not finite): the view's general read
            iv = pair_iv(out[4], out[5])
            if iv is not None:
                ans = iv
                break
        self._unmade[symbol] = (st, args, ans)
        return ans

    def atm_iv_exceeds(
        self,
        symbol: str,
        spot: float,
        now_ns: int,
        r: float,
        q: float,
        lo: float,
        hi: float,
        max_age_ns: int,
        level: float,
    ) -> bool:
        """Whether the ATM IV that :meth:`first_atm_iv` or the view's read gives (NaN aside) is
        provably above ``level`` without reading it (:func:`~aiots.services.backtest.
        modelled_atm_bound.atm_iv_exceeds`): a modelled symbol read at its current state (the same
        spot and time, solved at the model's rate and yield), fresh, with expiries ``lo..hi`` ns."""
        st = self._state.get(symbol)
        if st is None or symbol in self.real:
            return False
        now_st, spot_st, iv_st = st
        s = self.settings
        if not (now_ns == now_st and spot == spot_st and r == self.rate and q == s.dividend_yield):
            return False  # (read at the state's own time: its quotes are fresh for any max_age_ns >= 0)
        return max_age_ns >= 0 and atm_iv_exceeds(
            level,
            spot,
            iv_st,
            r,
            q,
            strike_step(spot),
            (lo - now_ns) / NS_PER_YEAR,
            (hi - now_ns) / NS_PER_YEAR,
            s.tick,
            TICK_EPS,
            PRICE_SCALE,
            s.half_spread_frac,
            s.min_half_spread,
        )

    def chain(self, underlying: str) -> list[OptionQuote]:
        if underlying in self.real:
            return super().chain(underlying)
        v = self.view(underlying)
        return [v.quote(i) for i in range(len(v))]

    def _expiries(self, symbol: str, day: dt.date) -> list[tuple[dt.date, str, int]]:
        """(expiry, ISO date, expiry ns) listed for ``symbol`` from ``day`` to ``dte_max`` days on,
        in date order (cached per day)."""
        key = (symbol, day)
        hit = self._exp_cache.get(key)
        if hit is None:
            end = day + dt.timedelta(days=math.ceil(self.dte_max) + 1)
            listed = sorted((e, self._expiry_ns(e)) for e in listed_expiries(symbol, day, end))
            hit = self._exp_cache[key] = [(e, e.isoformat(), e_ns) for e, e_ns in listed]
            self._exp_ns[key] = [e_ns for _e, e_ns in listed]
        return hit

    def _expiry_ns(self, e: dt.date) -> int:
        """``expiry_ns(e)`` (kept per date: the next days list most of the same expiries)."""
        ns = self._expiry_ns_of.get(e)
        if ns is None:
            ns = self._expiry_ns_of[e] = expiry_ns(e)
        return ns

    def window(self, symbol: str, now_ns: int) -> tuple[list[tuple[dt.date, str, int]], list[int]]:
        """The listed expiries (expiry, ISO date, expiry ns) with ``dte_min`` <= days to expiry <=
        ``dte_max`` at ``now_ns``, in date order, and their expiry ns. Days to expiry grow with the
        expiry, so they are one slice of the day's list, found by bisection with the same exact
        int/float comparisons as a filter."""
        hit = self._windows.get(symbol)
        if hit is not None and hit[0] <= now_ns < hit[1]:
            return hit[2], hit[3]
        day = ny_date(now_ns)
        listed = self._expiries(symbol, day)
        lo, hi = self.dte_min * NS_PER_DAY, self.dte_max * NS_PER_DAY
        if math.isfinite(lo) and math.isfinite(hi):
            # for an integer x, x >= lo is x >= ceil(lo) and x <= hi is x <= floor(hi): the same
            # comparisons in exact int arithmetic, on the expiries' ns (kept with the day's list)
            ns = self._exp_ns[(symbol, day)]
            c_lo, f_hi = math.ceil(lo), math.floor(hi)
            i = bisect.bisect_left(ns, now_ns + c_lo)  # ns[:i] < now + c_lo <= ns[i:]
            k = bisect.bisect_right(ns, now_ns + f_hi)  # ns[:k] <= now + f_hi < ns[k:]
            exps, exp_ns = listed[i : max(i, k)], ns[i : max(i, k)]
            # the same i and k (so the same answer) for every time of this New York day at which
            # neither bound crosses an expiry: kept for the next views (the lists are never written)
            since, until = ny_midnight_ns(day), ny_midnight_ns(day + dt.timedelta(days=1))
            if i > 0:
                since = max(since, ns[i - 1] - c_lo + 1)
            if i < len(ns):
                until = min(until, ns[i] - c_lo + 1)
            if k > 0:
                since = max(since, ns[k - 1] - f_hi)
            if k < len(ns):
                until = min(until, ns[k] - f_hi)
            self._windows[symbol] = (since, until, exps, exp_ns)
            return exps, exp_ns

        def days_ns(e: tuple[dt.date, str, int]) -> int:
            return e[2] - now_ns

        i = bisect.bisect_left(listed, lo, key=days_ns)
        j = bisect.bisect_right(listed, hi, lo=i, key=days_ns)
        exps = listed[i:j]
        return exps, [e_ns for _e, _iso, e_ns in exps]

    def synthesise(self, symbol: str, now_ns: int, spot: float, iv: float) -> list[OptionQuote]:
        """The modelled chain of ``symbol`` at ``now_ns`` (calls and puts, sorted by OCC symbol)."""
        v = ModelledChainView(self, symbol, now_ns, spot, iv)
        v.bid_ask(np.arange(len(v)))
        return [v.quote(i) for i in range(len(v))]

    def reprice(self, q: OptionQuote, now_ns: int, spot: float, iv: float) -> tuple[float, float]:
        """(bid, ask) of contract ``q`` at ``now_ns`` for spot ``spot`` at the entry IV."""
        years = (q.expiry_ns - now_ns) / NS_PER_YEAR
        if years <= 0:
            return modelled_quote(max(0.0, (spot - q.strike) if q.is_call else (q.strike - spot)), self.settings)
        px = model_price(
            spot,
            np.array([q.strike]),
            np.array([years]),
            self.rate,
            iv,
            self.settings.dividend_yield,
            np.array([q.is_call]),
            exercise_style(q.occ_symbol),
        )
        return modelled_quote(float(px[0]), self.settings)
