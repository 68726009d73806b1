"""ATM implied vol per expiry from a chain view, and the event-risk kink of the term structure.

The ATM IV of an expiry is the mean European IV of the two-sided contracts at the strike nearest
the spot (nearest first until one is quoted on both sides). ``cheap_volatility`` reads the nearest
expiry inside the selection's DTE window (:func:`traded_atm_iv`); selection skips an idea when the
front expiry's ATM IV is a multiple of the next one's (:func:`event_risk`, an earnings week).
Answers per expiry are kept on the view (``ChainView.atm_memo``): both read the same expiry per bar.

A view laid out as a strike grid per expiry with one quote time (the backtest's modelled chain,
:meth:`ChainView.expiry_grid`) is answered from the grid (:func:`grid_atm_iv`): the nearest strike
is found by bisection and only its call and put are priced and solved, as one batch each, the same
batch the row scan prices first, so the answer and the prices the view keeps are the same. A view
that can price and solve that pair in one step (``ChainView.atm_pair``: the backtest's American
modelled chain, one core call) does so, with the same numbers. The engine reads a symbol's ATM IV
through its book (:func:`book_atm_iv`): a book that answers it without making the view
(``first_atm_iv``: the backtest's modelled book on the usual bar) does so.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Protocol, cast

import numpy as np

from aiots.core import options as opt
from aiots.core.conventions import NS_PER_DAY, NS_PER_YEAR
from aiots.services.signals.chainview import F64, ChainView, ExpiryGrid, Rows, as_view
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.models import OptionQuote


def expiry_mask(view: ChainView, rows: Rows, keep: Callable[[int], bool]) -> Rows:
    """``rows`` whose expiry passes ``keep``, decided once per distinct expiry with Python's exact
    int/float comparisons (numpy would round ns timestamps to float first)."""
    uniq, codes = view.expiry_index()
    if not len(rows):
        return rows
    ok = np.array([keep(e) for e in uniq], dtype=np.bool_)
    return rows[ok[codes[rows]]]


def scan_atm_ivs(
    view: ChainView, rows: Rows, spot: float, now_ns: int, r: float, q: float, first_ns: int, limit: int | None
) -> list[tuple[int, float]]:
    """:func:`atm_iv_by_expiry` over ``rows`` of ``view``: prices are read only for the rows nearest
    the spot (nearest first, until a two-sided one is found), and only for the expiries needed."""
    out: list[tuple[int, float]] = []
    uniq, codes = view.expiry_index()
    row_codes = codes[rows]
    for code, exp in enumerate(uniq):
        if exp <= first_ns:
            continue
        if limit is not None and len(out) >= limit:
            break
        r_e = rows[row_codes == code]
        if not len(r_e):
            continue
        # one expiry's answer depends only on these rows and the arguments: kept on the view (the
        # ATM scan of cheap_volatility and selection's event-risk check read the same expiry per bar)
        key = (exp, spot, now_ns, r, q, r_e.tobytes())
        if key in view.atm_memo:
            iv = view.atm_memo[key]
        else:
            iv = view.atm_memo[key] = expiry_atm_iv(view, r_e, exp, spot, now_ns, r, q)
        if iv is not None:
            out.append((exp, iv))
    return out


def expiry_atm_iv(view: ChainView, r_e: Rows, exp: int, spot: float, now_ns: int, r: float, q: float) -> float | None:
    """The mean European IV of the two-sided contracts at the strike nearest ``spot`` among ``r_e``
    (one expiry's rows, in chain order); None when no strike is quoted on both sides or no IV solves."""
    dist = np.abs(view.strike[r_e] - spot)
    atm: Rows | None = None
    near = r_e[dist == dist.min()]  # the nearest strike's rows, in chain order: usually two-sided
    two = view.two_sided(near)
    if two.any():
        live = near[two]
        k = view.strike[min(live.tolist(), key=view.occ)]
        atm = live[view.strike[live] == k]
    order = np.argsort(dist, kind="stable") if atm is None else np.empty(0, dtype=np.intp)
    i = 0
    while i < len(order):  # nearest first, until a strike is quoted on both sides
        d = dist[order[i]]
        j = i + 1
        while j < len(order) and dist[order[j]] == d:
            j += 1
        grp = np.sort(r_e[order[i:j]])  # chain order
        two = view.two_sided(grp)
        if two.any():
            live = grp[two]
            k = view.strike[min(live.tolist(), key=view.occ)]
            atm = live[view.strike[live] == k]
            break
        i = j
    if atm is None:
        return None  # no two-sided quote of this expiry
    k = float(view.strike[atm[0]])
    T = (exp - now_ns) / NS_PER_YEAR
    bid, ask = view.bid_ask(atm)
    # one vectorised solve: element by element the same numbers as one call per contract
    solved = np.asarray(opt.implied_vol(0.5 * (bid + ask), spot, k, T, r, q, view.is_call[atm]), float)
    return _mean_iv(solved)


def grid_atm_iv(
    view: ChainView, grid: ExpiryGrid, exp: int, spot: float, now_ns: int, r: float, q: float
) -> float | None:
    """:func:`expiry_atm_iv` over every row of the expiry ``exp`` of a grid view, laid out as
    ``grid`` (kept in ``view.grid_memo``): the strikes nearest ``spot`` by bisection of the
    ascending grid (the distance to the spot falls up to the bisection point and grows after it, so
    the nearest strikes are those beside it and their equal neighbours), their calls and puts priced
    as the one batch the row scan prices first; when none of them is two-sided, the row scan itself."""
    key = (exp, spot, now_ns, r, q)
    memo = view.grid_memo
    if key in memo:
        return memo[key]
    iv = memo[key] = _grid_atm_iv(view, grid, exp, spot, now_ns, r, q)
    return iv


def _grid_atm_iv(
    view: ChainView, grid: ExpiryGrid, exp: int, spot: float, now_ns: int, r: float, q: float
) -> float | None:
    ks, c0, p0, _occ = grid
    m = len(ks)
    if not m:
        return None  # an expiry without rows has no answer (the row scan skips it)
    if not math.isfinite(spot):
        return expiry_atm_iv(view, _grid_rows(grid), exp, spot, now_ns, r, q)
    a, b = nearest_strikes(ks, spot)
    if b - a == 1:  # one nearest strike (the usual case): its call and put, chain order
        T = (exp - now_ns) / NS_PER_YEAR
        fused = view.atm_pair(grid, a, spot, T, r, q)  # quotes and IVs in one step, where the view can
        if fused is not None:
            bc, ac, bp, ap, c, p = fused
        else:
            (bc, bp), (ac, ap) = view.bid_ask_list([c0 + a, p0 + a])
        if bc > 0.0 and ac >= bc and bp > 0.0 and ap >= bp:  # both two-sided: the general path's
            # solve of the two mids (Python floats and a shared flag array: the core's scalar path,
            # the same kernel on the same float64 values), its mean without building lists
            if fused is None:
                mids = np.array([0.5 * (bc + ac), 0.5 * (bp + ap)])
                pair: list[float] = cast(F64, opt.implied_vol(mids, spot, ks[a], T, r, q, _CALL_PUT)).tolist()
                c, p = pair
            return pair_iv(c, p)
        near = [c0 + a, p0 + a]
        bids, asks = [bc, bp], [ac, ap]
    else:
        near = [*range(c0 + a, c0 + b), *range(p0 + a, p0 + b)]  # chain order: calls, then puts
        bids, asks = view.bid_ask_list(near)
    live = [j for j, (bid, ask) in enumerate(zip(bids, asks, strict=True)) if bid > 0.0 and ask >= bid]
    if not live:  # the row scan walks outward from here (its first batch is priced already)
        return expiry_atm_iv(view, _grid_rows(grid), exp, spot, now_ns, r, q)
    w = b - a  # near[j] is the call (j < w) or the put of strike ks[a + j % w]
    if w == 1:  # one nearest strike (the usual case): every live contract is at it
        k, atm = ks[a], live
    else:
        k = ks[a + live[0] % w]
        if any(ks[a + j % w] != k for j in live[1:]):  # two strikes: the first in OCC order
            k = ks[a + min(live, key=lambda j: grid.occ(near[j])) % w]
        atm = [j for j in live if ks[a + j % w] == k]
    T = (exp - now_ns) / NS_PER_YEAR
    mids = np.array([0.5 * (bids[j] + asks[j]) for j in atm])
    calls = np.array([j < w for j in atm])
    # the numbers as one-element views of one array: the core's direct path, the same values
    x = np.array([spot, k, T, r, q], dtype=np.float64)
    solved = np.asarray(opt.implied_vol(mids, x[0:1], x[1:2], x[2:3], x[3:4], x[4:5], calls), float)
    return _mean_iv(solved)


def nearest_strikes(ks: list[float], spot: float) -> tuple[int, int]:
    """``(a, b)``: the strikes of the ascending, non-empty grid ``ks`` nearest ``spot`` (a finite
    number) are ``ks[a:b]``, found by bisection (the distance to the spot falls up to the bisection
    point and grows after it, so they are the strikes beside it and their equal neighbours)."""
    m = len(ks)
    i = bisect.bisect_left(ks, spot)  # ks[:i] < spot <= ks[i:]
    d_lo = abs(ks[i - 1] - spot) if i > 0 else math.inf
    d_hi = abs(ks[i] - spot) if i < m else math.inf
    d = d_hi if d_hi < d_lo else d_lo  # min(d_lo, d_hi)
    a = b = i
    if d_lo == d:
        a -= 1
        while a > 0 and abs(ks[a - 1] - spot) == d:
            a -= 1
    if d_hi == d:
        b += 1
        while b < m and abs(ks[b] - spot) == d:
            b += 1
    return a, b


def pair_iv(c: float, p: float) -> float | None:
    """The ATM IV of a two-sided call and put whose mids solved to ``c`` and ``p``:
    :func:`_mean_iv` of the two (finite, positive ones), without building lists."""
    c_ok, p_ok = c > 0.0 and c < math.inf, p > 0.0 and p < math.inf  # finite and positive
    if c_ok and p_ok:
        return (c + p) / 2  # sum([c, p]) / len([c, p]): 0.0 + c is c
    return c if c_ok else p if p_ok else None


_CALL_PUT = np.array([True, False])  # the is-call flags of a (call, put) pair, shared read-only
_CALL_PUT.flags.writeable = False


def _mean_iv(solved: np.ndarray) -> float | None:
    """The ATM IV of an expiry: the mean of the IVs that solved (finite, positive), None if none did."""
    ivs = [v for v in solved.tolist() if math.isfinite(v) and v > 0]
    return sum(ivs) / len(ivs) if ivs else None


def _grid_rows(grid: ExpiryGrid) -> Rows:
    """Every row of one expiry's grid, in chain order."""
    m = len(grid.strikes)
    return np.concatenate([np.arange(grid.call0, grid.call0 + m), np.arange(grid.put0, grid.put0 + m)]).astype(np.intp)


def grid_scan(
    view: ChainView,
    spot: float,
    now_ns: int,
    r: float,
    q: float,
    first_ns: int,
    limit: int | None,
) -> list[tuple[int, float]] | None:
    """:func:`scan_atm_ivs` over every row of the expiries after ``first_ns``, from the view's grids
    (:func:`grid_atm_iv`); None when the view has no grid (scan the rows then)."""
    out: list[tuple[int, float]] = []
    for code, exp in enumerate(view.expiry_list()):
        if limit is not None and len(out) >= limit:
            break
        if exp <= first_ns:
            continue
        grid = view.expiry_grid(code)
        if grid is None:
            return None
        iv = grid_atm_iv(view, grid, exp, spot, now_ns, r, q)
        if iv is not None:
            out.append((exp, iv))
    return out


def atm_iv_by_expiry(
    chain: ChainView | Sequence[OptionQuote],
    spot: float,
    now_ns: int,
    r: float,
    q: float,
    *,
    after_ns: int | None = None,
    limit: int | None = None,
) -> list[tuple[int, float]]:
    """(expiry ns, ATM IV) per expiry expiring after ``after_ns`` (default: now), nearest first, at
    most ``limit`` of them: the European IV of the two-sided call and put closest to the spot,
    averaged (NaN-free expiries only)."""
    view = as_view(chain)
    first = now_ns if after_ns is None else after_ns
    return scan_atm_ivs(view, np.arange(len(view)), spot, now_ns, r, q, first, limit)


def traded_atm_iv(
    chain: ChainView | Sequence[OptionQuote],
    spot: float,
    now_ns: int,
    cfg: SignalsConfig,
    q: float,
    max_age_ns: int,
) -> float:
    """ATM IV of the nearest expiry inside the selection's DTE window (fresh quotes only; NaN if none)."""
    view = as_view(chain)
    sc = cfg.selection
    lo, hi = dte_bounds(now_ns, cfg)
    quoted = view.quote_ns()
    if quoted is not None:  # one quote time: every row is fresh or none is
        if not now_ns - quoted <= max_age_ns:
            return math.nan
        iv = grid_first_iv(view, spot, now_ns, sc.risk_free_rate, q, lo, hi)
        if iv is not None:
            return iv
    rows = np.flatnonzero(now_ns - view.ts_ns <= max_age_ns)
    rows = expiry_mask(view, rows, lambda e: lo <= e <= hi)
    ivs = scan_atm_ivs(view, rows, spot, now_ns, sc.risk_free_rate, q, now_ns, 1)
    return ivs[0][1] if ivs else math.nan


def dte_bounds(now_ns: int, cfg: SignalsConfig) -> tuple[float, float]:
    """The expiry instants (ns) of the selection's DTE window at ``now_ns``: ``[lo, hi]``."""
    sc = cfg.selection
    return now_ns + sc.dte_min * NS_PER_DAY, now_ns + sc.dte_max * NS_PER_DAY


class ViewBook(Protocol):
    """A book of chains by underlying (:class:`aiots.services.signals.engine.ChainBook`, the
    backtest's modelled book)."""

    def view(self, underlying: str) -> ChainView: ...

    def first_atm_iv(
        self, symbol: str, spot: float, now_ns: int, r: float, q: float, lo: float, hi: float, max_age_ns: int
    ) -> float | None:
        """:func:`traded_atm_iv` of ``view(symbol)`` without making the view, or None (make it)."""

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
        """True only if :func:`traded_atm_iv` of ``view(symbol)``, where finite, is provably above
        ``level``, known without reading it (False: read it)."""


def book_atm_iv(
    book: ViewBook, symbol: str, spot: float, now_ns: int, cfg: SignalsConfig, q: float, max_age_ns: int
) -> float:
    """:func:`traded_atm_iv` of ``book.view(symbol)``. A book that can answer it without making the
    view (``first_atm_iv``: the backtest's modelled book, the usual bar) does so, the same number;
    one that cannot (None: live chains always) makes the view."""
    lo, hi = dte_bounds(now_ns, cfg)
    iv = book.first_atm_iv(symbol, spot, now_ns, cfg.selection.risk_free_rate, q, lo, hi, max_age_ns)
    if iv is not None:
        return iv
    return traded_atm_iv(book.view(symbol), spot, now_ns, cfg, q, max_age_ns)


def book_atm_iv_exceeds(
    book: ViewBook,
    symbol: str,
    spot: float,
    now_ns: int,
    cfg: SignalsConfig,
    q: float,
    max_age_ns: int,
    level: float,
) -> bool:
    """Whether :func:`book_atm_iv` (NaN aside) is provably above ``level`` without computing it:
    the book's ``atm_iv_exceeds`` for the selection's DTE window (the backtest's modelled book can
    prove it from its pricing model; live books never claim it)."""
    lo, hi = dte_bounds(now_ns, cfg)
    return book.atm_iv_exceeds(symbol, spot, now_ns, cfg.selection.risk_free_rate, q, lo, hi, max_age_ns, level)


def grid_first_iv(view: ChainView, spot: float, now_ns: int, r: float, q: float, lo: float, hi: float) -> float | None:
    """:func:`grid_scan` of the expiries in ``[lo, hi]`` (ns) after ``now_ns``, limited to the first
    answer: its IV (NaN when no expiry answers); None when the view has no grid (scan the rows)."""
    for code, exp in enumerate(view.expiry_list()):
        if exp > hi:  # oldest first: no later expiry is in the window either
            break
        if exp <= now_ns or not lo <= exp:
            continue
        grid = view.expiry_grid(code)
        if grid is None:
            return None
        iv = grid_atm_iv(view, grid, exp, spot, now_ns, r, q)
        if iv is not None:
            return iv
    return math.nan


EVENT_MIN_DTE_DAYS = 1.0  # same-day and overnight expiries are not the "front" of an event kink


def event_risk(
    chain: ChainView | Sequence[OptionQuote],
    spot: float,
    now_ns: int,
    r: float,
    q: float,
    ratio: float,
    rows: Rows | None = None,
) -> str | None:
    """A sentence when the front expiry's ATM IV is ``ratio`` x the next expiry's or more, else None.

    The front is the first expiry at least a day out: a 0DTE or overnight expiry's ATM IV is
    dominated by its last hours (GOOG's same-day weekly on 2015-12-24 quoted 0.33-0.41 against 0.16
    for the next week), not by an event. ``rows``: only these rows of the chain (default: all)."""
    view = as_view(chain)
    after = now_ns + int(EVENT_MIN_DTE_DAYS * NS_PER_DAY)
    ivs = None
    if view.quote_ns() is not None and (rows is None or _every_row(view, rows)):
        ivs = grid_scan(view, spot, now_ns, r, q, after, 2)
    if ivs is None:
        ivs = scan_atm_ivs(view, np.arange(len(view)) if rows is None else rows, spot, now_ns, r, q, after, 2)
    if len(ivs) < 2:
        return None
    (e0, v0), (_, v1) = ivs[0], ivs[1]
    if v1 > 0 and v0 / v1 >= ratio:
        days = (e0 - now_ns) / NS_PER_DAY
        return f"event risk: front ATM IV {v0:.2f} is {v0 / v1:.2f}x the next expiry's {v1:.2f} ({days:.1f} days out)"
    return None


def _every_row(view: ChainView, rows: Rows) -> bool:
    """``rows`` is every row of ``view`` in chain order (``arange(len(view))``)."""
    n = len(view)
    if len(rows) != n:
        return False
    return n == 0 or (int(rows[0]) == 0 and int(rows[-1]) == n - 1 and bool(np.all(rows[1:] > rows[:-1])))
