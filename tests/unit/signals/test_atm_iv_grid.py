"""The ATM IV read from a strike grid (:func:`grid_atm_iv`, :func:`traded_atm_iv` on a view with
:meth:`ChainView.expiry_grid`) equals, number for number, the generic row scan of the same quotes
and an independent oracle: a brute force over the quotes (the two-sided contracts at the strike
nearest the spot, the first in OCC order on a tie) solved one contract at a time with plain floats.

Random chains of one to three expiries cover what the grid's fast pair (one nearest strike, call and
put both two-sided) hands to the general path: a spot half way between two strikes, one-sided,
empty and crossed quotes, mids below intrinsic or above the no-arbitrage bound (no IV), and every
contract of the nearest strike unquoted (the scan walks outward).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import options as opt
from aiots.core.conventions import NS_PER_DAY, NS_PER_YEAR, format_occ, ny_ns
from aiots.services.signals.atm_iv import expiry_atm_iv, grid_atm_iv, scan_atm_ivs, traded_atm_iv
from aiots.services.signals.chainview import ExpiryGrid, QuoteListView
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.models import OptionQuote

NOW: int = ny_ns(dt.date(2024, 3, 5), dt.time(11, 0))
DAY = dt.date(2024, 3, 5)
AGE_NS = 60 * 10**9


class GridQuotes(QuoteListView):
    """Quotes laid out as a strike grid per expiry (calls then puts, ascending strikes), one quote time."""

    def __init__(self, quotes: list[OptionQuote], sizes: list[int]) -> None:
        super().__init__(quotes)
        self._sizes = sizes

    def quote_ns(self) -> int | None:
        return NOW

    def expiry_grid(self, code: int) -> ExpiryGrid | None:
        c0 = 2 * sum(self._sizes[:code])
        m = self._sizes[code]
        ks = [self.quotes[c0 + i].strike for i in range(m)]
        return ExpiryGrid(ks, c0, c0 + m, lambda i: self.quotes[i].occ_symbol)


def _side(draw: st.DrawFn, fair: float) -> tuple[float, float]:
    """(bid, ask) around ``fair``: usually a spread around it, else an edge case."""
    kind = draw(st.sampled_from(["fair"] * 6 + ["no bid", "no ask", "crossed", "empty", "cheap", "dear"]))
    half = draw(st.floats(0.0, 0.2)) * fair + draw(st.sampled_from([0.0, 0.005, 0.05]))
    bid, ask = max(fair - half, 0.0), fair + half
    if kind == "no bid":
        return 0.0, ask
    if kind == "no ask":
        return bid, 0.0
    if kind == "crossed":
        return ask + 0.01, bid
    if kind == "empty":
        return 0.0, 0.0
    if kind == "cheap":  # below intrinsic: no IV
        return 1e-4, 2e-4
    if kind == "dear":  # above the spot / strike: no IV
        return 1e4, 1e4 + 1.0
    return bid, ask


@st.composite
def chains(draw: st.DrawFn) -> tuple[GridQuotes, QuoteListView, float, float, float]:
    spot = draw(st.floats(5.0, 900.0))
    step = draw(st.sampled_from([0.5, 1.0, 2.5, 5.0]))
    center = round(spot / step) * step
    if draw(st.booleans()):  # on a strike, or half way between two
        spot = center + draw(st.sampled_from([0.0, 0.5 * step, -0.5 * step]))
    r, q = draw(st.sampled_from([0.0, 0.045])), draw(st.sampled_from([0.0, 0.013]))
    quotes: list[OptionQuote] = []
    sizes: list[int] = []
    days = sorted(draw(st.sets(st.integers(1, 30), min_size=1, max_size=3)))
    for d in days:
        expiry = DAY + dt.timedelta(days=d)
        e_ns = ny_ns(expiry, dt.time(16, 0))
        T = (e_ns - NOW) / NS_PER_YEAR
        n = draw(st.integers(1, 4))
        ks = [center + i * step for i in range(-n, n + 1) if center + i * step > 0]
        vol = draw(st.floats(0.03, 2.0))
        dead = draw(st.booleans()) and draw(st.booleans())  # the nearest strikes unquoted
        for right in "CP":
            for k in ks:
                fair = float(opt.bs_price(spot, k, T, r, vol, q, right == "C"))
                bid, ask = (0.0, 0.0) if dead and abs(k - spot) <= step else _side(draw, fair)
                occ = format_occ("XYZ", expiry, right, k)
                quotes.append(OptionQuote(occ, "XYZ", expiry.isoformat(), e_ns, k, right == "C", bid, ask, ts_ns=NOW))
        sizes.append(len(ks))
    return GridQuotes(quotes, sizes), QuoteListView(quotes), spot, r, q


def oracle(quotes: list[OptionQuote], spot: float, r: float, q: float) -> float | None:
    """One expiry's ATM IV by brute force: each contract solved alone, in plain floats."""
    live = [x for x in quotes if x.bid > 0.0 and x.ask >= x.bid]
    if not live:
        return None
    d = min(abs(x.strike - spot) for x in live)
    k = min((x for x in live if abs(x.strike - spot) == d), key=lambda x: x.occ_symbol).strike
    T = (quotes[0].expiry_ns - NOW) / NS_PER_YEAR
    ivs = [float(opt.implied_vol(0.5 * (x.bid + x.ask), spot, k, T, r, q, x.is_call)) for x in live if x.strike == k]
    ok = [v for v in ivs if math.isfinite(v) and v > 0]
    return sum(ok) / len(ok) if ok else None


def same(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))


@settings(max_examples=600, deadline=None)
@given(chains())
def test_grid_atm_iv_equals_the_row_scan_and_a_brute_force(
    chain: tuple[GridQuotes, QuoteListView, float, float, float],
) -> None:
    grid_view, rows_view, spot, r, q = chain
    exps = grid_view.expiry_list()
    for code, exp in enumerate(exps):
        grid = grid_view.expiry_grid(code)
        assert grid is not None
        rows = np.flatnonzero(rows_view.expiry_ns == exp)
        got = grid_atm_iv(grid_view, grid, exp, spot, NOW, r, q)
        assert same(got, expiry_atm_iv(rows_view, rows, exp, spot, NOW, r, q))
        assert same(got, oracle([rows_view.quotes[i] for i in rows], spot, r, q))
    assert scan_atm_ivs(rows_view, np.arange(len(rows_view)), spot, NOW, r, q, NOW, None) == [
        (e, v) for e in exps if (v := oracle([x for x in rows_view.quotes if x.expiry_ns == e], spot, r, q)) is not None
    ]


@settings(max_examples=400, deadline=None)
@given(chains(), st.sampled_from([(2.0, 21.0), (0.0, 7.0), (5.0, 30.0), (3.5, 4.5)]))
def test_traded_atm_iv_from_the_grid_equals_the_row_scan(
    chain: tuple[GridQuotes, QuoteListView, float, float, float], window: tuple[float, float]
) -> None:
    grid_view, rows_view, spot, r, q = chain
    cfg = SignalsConfig()
    sel = cfg.selection.model_copy(update={"dte_min": window[0], "dte_max": window[1], "risk_free_rate": r})
    cfg = cfg.model_copy(update={"selection": sel})
    got = traded_atm_iv(grid_view, spot, NOW, cfg, q, AGE_NS)
    want = traded_atm_iv(rows_view, spot, NOW, cfg, q, AGE_NS)
    assert got == want or (math.isnan(got) and math.isnan(want))
    lo, hi = NOW + window[0] * NS_PER_DAY, NOW + window[1] * NS_PER_DAY
    first = next(
        (
            v
            for e in grid_view.expiry_list()
            if lo <= e <= hi
            and (v := oracle([x for x in rows_view.quotes if x.expiry_ns == e], spot, r, q)) is not None
        ),
        math.nan,
    )
    assert got == first or (math.isnan(got) and math.isnan(first))
