"""The modelled chain's fast paths equal the generic ones they stand in for, number for number:

* the ATM IV read from a view's strike grid (:func:`traded_atm_iv`, :func:`event_risk`) equals the
  generic row scan (:func:`scan_atm_ivs`) on a second view of the same state, and leaves the same
  rows priced at the same prices (later decisions read them);
* the lazily built view has the columns of the eager build (the listed expiries filtered one by one,
  the layout key of every expiry's strike grid);
* one modelled quote in floats equals the numpy version's element, and the in-place batch quote
  (:func:`_quote_batch`) the numpy version's array;
* the fused ATM pair (the core's ``modelled_atm_pair``) answers and prices as the grid path reading
  the pair through ``bid_ask_list``, on fresh views and on views whose columns exist with some rows
  priced or deferred (as selection leaves them), including sides priced before in other batches
  (the fused quote must match what is kept) and kept quotes the fused pair does not give.

Random states cover American daily (SPY) and weekly (AAPL) roots and a European one (SPX), spots
on a half strike (two nearest strikes), and spots and IVs so low that the ATM contracts have no bid
(the scan walks outward).
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from aiots.core.conventions import NS_PER_DAY, NS_PER_YEAR, ny_date, ny_ns
from aiots.services.backtest.modelled import (
    ModelledChainView,
    ModelSettings,
    _build_layout,
    _quote_batch,
    modelled_quote,
    modelled_quote_prices,
    strike_step,
)
from aiots.services.signals.atm_iv import event_risk, grid_scan, scan_atm_ivs, traded_atm_iv
from aiots.services.signals.chainview import ExpiryGrid
from aiots.services.signals.config import SignalsConfig
from tests.unit.backtest.modelled_states import AGE_NS, EVENT_RATIO, RATE, SPOTS, book, states


class RowsOnly(ModelledChainView):
    """The same view without its grid: the ATM-IV functions scan its rows (the generic path)."""

    def quote_ns(self) -> int | None:
        return None


class Unfused(ModelledChainView):
    """The same view without the fused ATM pair: the grid path reads the pair through bid_ask_list."""

    def atm_pair(
        self, grid: ExpiryGrid, i: int, spot: float, years: float, r: float, q: float
    ) -> tuple[float, float, float, float, float, float] | None:
        return None


def priced(view: ModelledChainView) -> dict[int, tuple[float, float]]:
    rows = np.flatnonzero(view._priced)
    return {int(i): (float(view._bid[i]), float(view._ask[i])) for i in rows}


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=300, deadline=None)
@given(states(), st.sampled_from([(2.0, 21.0), (0.0, 7.0), (5.0, 30.0)]), st.sampled_from([0.0, 0.013]))
def test_grid_atm_iv_equals_the_row_scan_and_prices_the_same_rows(
    state: tuple[str, int, float, float], window: tuple[float, float], q: float
) -> None:
    symbol, now, spot, iv = state
    b = book()
    cfg = SignalsConfig()
    cfg = cfg.model_copy(
        update={"selection": cfg.selection.model_copy(update={"dte_min": window[0], "dte_max": window[1]})}
    )
    fast, slow = ModelledChainView(b, symbol, now, spot, iv), RowsOnly(b, symbol, now, spot, iv)
    assert same(traded_atm_iv(fast, spot, now, cfg, q, AGE_NS), traded_atm_iv(slow, spot, now, cfg, q, AGE_NS))
    assert priced(fast) == priced(slow)  # built on first read, with the rows the grid priced
    # then selection's event-risk check over every fresh row (as the engine reads them in a bar)
    rows = np.flatnonzero(now - fast.ts_ns <= AGE_NS)
    args = (spot, now, RATE, q, EVENT_RATIO)
    assert event_risk(fast, *args, rows=rows) == event_risk(slow, *args, rows=rows)
    assert priced(fast) == priced(slow)
    # the event-risk check alone, on views nothing has read yet
    fast, slow = ModelledChainView(b, symbol, now, spot, iv), RowsOnly(b, symbol, now, spot, iv)
    assert event_risk(fast, *args) == event_risk(slow, *args)
    assert grid_scan(fast, spot, now, RATE, q, now, None) == scan_atm_ivs(
        slow, np.arange(len(slow)), spot, now, RATE, q, now, None
    )
    assert priced(fast) == priced(slow)


@settings(max_examples=200, deadline=None)
@given(states(), st.sampled_from([(2.0, 21.0), (0.0, 7.0), (1.5, 45.0)]), st.booleans())
def test_the_lazy_view_has_the_eager_builds_columns(
    state: tuple[str, int, float, float], window: tuple[float, float], columns_first: bool
) -> None:
    symbol, now, spot, iv = state
    b = book(*window)
    v = ModelledChainView(b, symbol, now, spot, iv)
    if columns_first:  # the columns read before any grid (else each grid before the columns)
        len(v)
    # the eager build: every listed expiry filtered one by one, one layout key for all of them
    s = b.settings
    lo, hi = window[0] * NS_PER_DAY, window[1] * NS_PER_DAY
    listed = b._expiries(symbol, ny_date(now))
    exps = sorted((e, e_ns) for e, _iso, e_ns in listed if lo <= e_ns - now <= hi)
    key: list[object] = [symbol]
    want: list[tuple[int, float, bool, int]] = []  # (expiry code, strike, call, expiry ns) per row
    if exps:
        step = strike_step(spot)
        center = round(spot / step) * step
        key += [step, center]
        for code, (e, e_ns) in enumerate(exps):
            t_years = (e_ns - now) / NS_PER_YEAR
            width = s.strikes_sd * iv * math.sqrt(max(t_years, 1.0 / 365.0)) * spot
            n = min(s.max_strikes_per_side, max(2, math.ceil(width / step)))
            key += [e, e_ns, n]
            ks = [k for k in np.round(center + step * np.arange(-n, n + 1), 6).tolist() if k > 0]
            want += [(code, k, call, e_ns) for call in (True, False) for k in ks]
    lay = _build_layout(tuple(key))
    got = zip(lay.exp_idx.tolist(), lay.strike.tolist(), lay.is_call.tolist(), lay.expiry_ns.tolist(), strict=True)
    assert list(got) == want
    assert v.expiry_list() == [e_ns for _e, e_ns in exps]
    for code in range(len(exps)):  # each grid's rows are the layout's rows of that expiry
        g = v.expiry_grid(code)
        assert g is not None
        m = len(g.strikes)
        assert lay.strike[g.call0 : g.call0 + m].tolist() == g.strikes == lay.strike[g.put0 : g.put0 + m].tolist()
        assert lay.is_call[g.call0 : g.call0 + m].all() and not lay.is_call[g.put0 : g.put0 + m].any()
        assert set(lay.exp_idx[g.call0 : g.put0 + m].tolist()) == {code}
    for code in range(len(exps)):
        g = v.expiry_grid(code)
        assert g is not None
        last = g.put0 + len(g.strikes) - 1
        assert [g.occ(i) for i in (g.call0, last)] == [v.occ(g.call0), v.occ(last)]
    assert np.array_equal(v.strike, lay.strike) and np.array_equal(v.is_call, lay.is_call)
    assert np.array_equal(v.expiry_ns, lay.expiry_ns) and (v.ts_ns == now).all() and len(v) == len(lay.strike)
    assert v.expiry_index()[0] == v.expiry_list()


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.floats(0.0, 5000.0),
        st.floats(0.0, 0.05),
        st.integers(0, 500_000).map(lambda c: c * 0.01),  # whole ticks
        st.integers(0, 500_000).map(lambda c: c / 0.9875 * 0.01),  # bids landing on a tick
        st.integers(0, 500_000).map(lambda c: c / 1.0125 * 0.01),  # asks landing on a tick
    )
)
def test_one_modelled_quote_in_floats_equals_the_numpy_element(p: float) -> None:
    s = ModelSettings()
    bid, ask = modelled_quote_prices(np.array([p]), s)
    assert modelled_quote(p, s) == (float(bid[0]), float(ask[0]))


_PRICES = st.one_of(
    st.floats(0.0, 5000.0),
    st.floats(0.0, 0.05),
    st.integers(0, 500_000).map(lambda c: c * 0.01),
    st.integers(0, 500_000).map(lambda c: c / 0.9875 * 0.01),
    st.integers(0, 500_000).map(lambda c: c / 1.0125 * 0.01),
    st.sampled_from([math.nan, math.inf, -0.0, 1e-300]),
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(_PRICES, min_size=1, max_size=80),
    st.sampled_from([ModelSettings(), ModelSettings(half_spread_frac=0.03, min_half_spread=0.05, tick=0.05)]),
)
def test_the_in_place_batch_quote_equals_the_numpy_definition(ps: list[float], s: ModelSettings) -> None:
    px = np.array(ps)
    with np.errstate(invalid="ignore"):
        want = modelled_quote_prices(px, s)
        got = _quote_batch(px.copy(), s)
    for w, g in zip(want, got, strict=True):  # bit for bit, NaN where NaN
        assert w.tobytes() == g.tobytes()
    assert px.tobytes() == np.array(ps).tobytes()  # the prices are not written


def test_non_finite_prices_quote_as_numpy_does() -> None:
    s = ModelSettings()
    for p in (math.nan, math.inf):
        with np.errstate(invalid="ignore"):
            bid, ask = modelled_quote_prices(np.array([p]), s)
            got = modelled_quote(p, s)
        assert [same(a, b) for a, b in zip(got, (float(bid[0]), float(ask[0])), strict=True)] == [True, True]


def test_a_chain_whose_atm_contracts_have_no_bid_walks_outward_as_the_scan_does() -> None:
    # a $2 stock at 5% vol three days out: the ATM call and put are worth a fraction of a cent
    b, cfg = book(), SignalsConfig()
    now = ny_ns(dt.date(2024, 3, 5), dt.time(11, 0))
    fast, slow = ModelledChainView(b, "AAPL", now, 2.0, 0.05), RowsOnly(b, "AAPL", now, 2.0, 0.05)
    assert same(traded_atm_iv(fast, 2.0, now, cfg, 0.0, AGE_NS), traded_atm_iv(slow, 2.0, now, cfg, 0.0, AGE_NS))
    assert priced(fast) == priced(slow) and len(priced(fast)) > 2  # more than the nearest strike's pair


def test_stale_or_empty_modelled_chains_have_no_atm_iv() -> None:
    b, cfg = book(), SignalsConfig()
    now = ny_ns(dt.date(2024, 3, 5), dt.time(11, 0))
    v = ModelledChainView(b, "SPY", now, 510.0, 0.2)
    assert math.isnan(traded_atm_iv(v, 510.0, now + 2 * AGE_NS, cfg, 0.0, AGE_NS))
    assert not v._ready  # nothing was read
    empty = ModelledChainView(b, "SPY", now, 0.0, 0.2)
    assert math.isnan(traded_atm_iv(empty, 0.0, now, cfg, 0.0, AGE_NS)) and len(empty) == 0


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(SPOTS)),
    st.integers(0, 40),
    st.integers(-3, 3),
    st.floats(0.0, 5.0),
    st.floats(0.1, 30.0),
    st.booleans(),
)
def test_the_window_is_the_listed_expiries_filtered_one_by_one_at_its_edges(
    symbol: str, pick: int, nudge_ns: int, dte_min: float, span: float, at_max: bool
) -> None:
    """book.window (exact int bisection) keeps the listed expiries with dte_min <= days <= dte_max,
    compared one by one in Python's exact int/float arithmetic, with ``now`` put on (and a few ns
    beside) the edge where an expiry enters or leaves the window, fractional day counts included."""
    b = book(dte_min, dte_min + span)
    day = dt.date(2024, 3, 4)
    listed = b._expiries(symbol, day)
    if not listed:
        return
    e_ns = listed[pick % len(listed)][2]
    edge = (dte_min + span if at_max else dte_min) * NS_PER_DAY
    now = e_ns - math.floor(edge) + nudge_ns  # this expiry's days to expiry sit at the edge
    lo, hi = dte_min * NS_PER_DAY, (dte_min + span) * NS_PER_DAY
    want = [e for e in b._expiries(symbol, ny_date(now)) if lo <= e[2] - now <= hi]  # the list of now's day
    event("edge expiry kept" if any(e[2] == e_ns for e in want) else "edge expiry out")
    exps, ns = b.window(symbol, now)
    assert exps == want
    assert ns == [e[2] for e in want]


@settings(max_examples=200, deadline=None)
@given(
    states(),
    st.booleans(),
    st.sampled_from([0.0, 1.0, math.nan]),
    st.sampled_from([0.0, 10.0, math.nan]),
    st.sampled_from([0.0, 1.0, 5.0]),
)
def test_liquid_rows_are_the_column_scan(
    state: tuple[str, int, float, float], want_call: bool, min_oi: float, min_vol: float, min_size: float
) -> None:
    """The modelled view's rows of one right (size, open interest and volume unknown) equal the scan of
    its columns with selection's liquidity test, whatever the floors."""
    from aiots.services.signals.config import SelectionConfig
    from aiots.services.signals.selection import _liquid

    symbol, now, spot, iv = state
    view = ModelledChainView(book(), symbol, now, spot, iv)
    sc = SelectionConfig().model_copy(
        update={"min_open_interest": min_oi, "min_volume": min_vol, "min_quote_size": min_size}
    )
    want = np.flatnonzero(_liquid(view, None, want_call, sc))
    got = view.liquid_rows(want_call, min_oi, min_vol)
    assert got is not None and np.array_equal(got, want)
    assert not got.flags.writeable


@settings(max_examples=300, deadline=None)
@given(
    states(),
    st.sampled_from([(2.0, 21.0), (0.0, 7.0), (5.0, 30.0)]),
    st.sampled_from([0.0, 0.013]),
    st.sampled_from(["fresh", "columns", "deferred", "priced", "puts", "both", "quoted otherwise", "read first"]),
)
def test_the_fused_atm_pair_answers_and_prices_as_bid_ask_list(
    state: tuple[str, int, float, float], window: tuple[float, float], q: float, before: str
) -> None:
    symbol, now, spot, iv = state
    b = book(*window)
    cfg = SignalsConfig()
    cfg = cfg.model_copy(
        update={"selection": cfg.selection.model_copy(update={"dte_min": window[0], "dte_max": window[1]})}
    )
    fast, slow = ModelledChainView(b, symbol, now, spot, iv), Unfused(b, symbol, now, spot, iv)
    for v in (fast, slow):  # the state selection may leave a view in before an ATM read
        if before == "read first":  # a pair priced before the columns exist (kept in _px), at another spot
            grid_scan(v, spot * 1.001, now, RATE, q, now, 1)
        if before != "fresh":
            v._build_columns()
        calls = v.liquid_rows(True, 0.0, 0.0)
        puts = v.liquid_rows(False, 0.0, 0.0)
        assert calls is not None and puts is not None
        if before == "deferred":
            v.defer_batch(puts)
        elif before == "priced":
            v.bid_ask(calls[::3])
        elif before == "puts":  # the puts priced in one batch (SIMD blocks: last bits of their own)
            v.bid_ask(puts)
        elif before == "both":
            v.bid_ask(calls)
            v.bid_ask(puts[::2])
        elif before == "quoted otherwise":  # priced rows whose quotes the fused pair does not give
            v.bid_ask(np.concatenate([calls[1::2], puts[::2]]))
            v._ask[v._priced] += 0.01
    args = (spot, now, RATE, q, EVENT_RATIO)
    assert same(traded_atm_iv(fast, spot, now, cfg, q, AGE_NS), traded_atm_iv(slow, spot, now, cfg, q, AGE_NS))
    assert event_risk(fast, *args) == event_risk(slow, *args)
    assert grid_scan(fast, spot, now, RATE, q, now, None) == grid_scan(slow, spot, now, RATE, q, now, None)
    assert priced(fast) == priced(slow)
    assert fast._px == slow._px


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(SPOTS)),
    st.sampled_from([(2.0, 21.0), (0.0, 7.0), (1.5, 45.0), (0.25, 0.75), (5.0, 3.0)]),
    st.lists(st.integers(-2 * NS_PER_DAY, 2 * NS_PER_DAY), min_size=1, max_size=30),
    st.booleans(),
)
def test_the_kept_window_is_the_window_of_a_fresh_book_at_every_time(
    symbol: str, window: tuple[float, float], offsets: list[int], near_edges: bool
) -> None:
    """One book asked at a walk of times (forwards, back, across New York midnights and across the
    times an expiry enters or leaves the window) answers as a fresh book asked once (the oracle:
    no kept window)."""
    kept = book(*window)
    now = ny_ns(dt.date(2024, 3, 6), dt.time(9, 30))
    edges: list[int] = []
    if near_edges:  # the times at which an expiry crosses either bound, and a nanosecond beside them
        for e in kept._expiries(symbol, ny_date(now)):
            for days in window:
                edge = e[2] - math.floor(days * NS_PER_DAY)
                edges += [edge - 1, edge, edge + 1]
    times = [now + d for d in offsets] + edges
    for t in times:
        assert kept.window(symbol, t) == book(*window).window(symbol, t)


@settings(max_examples=100, deadline=None)
@given(st.lists(states(), min_size=1, max_size=8), st.sampled_from([(2.0, 21.0), (0.0, 7.0), (1.5, 45.0)]))
def test_views_of_one_book_answer_as_views_of_fresh_books(
    walk: list[tuple[str, int, float, float]], window: tuple[float, float]
) -> None:
    """The grids, windows and styles a book keeps for its next views change no view: each view of a
    walk of states on one book has the grids, ATM IV and prices of a view on a fresh book."""
    kept = book(*window)
    cfg = SignalsConfig()
    cfg = cfg.model_copy(
        update={"selection": cfg.selection.model_copy(update={"dte_min": window[0], "dte_max": window[1]})}
    )
    for symbol, now, spot, iv in walk:
        fast = ModelledChainView(kept, symbol, now, spot, iv)
        fresh = ModelledChainView(book(*window), symbol, now, spot, iv)
        got, want = traded_atm_iv(fast, spot, now, cfg, 0.0, AGE_NS), traded_atm_iv(fresh, spot, now, cfg, 0.0, AGE_NS)
        assert same(got, want) and fast._px == fresh._px
        assert fast.expiry_list() == fresh.expiry_list()
        for code in range(len(fresh.expiry_list())):
            g, h = fast.expiry_grid(code), fresh.expiry_grid(code)
            assert g is not None and h is not None
            assert (g.strikes, g.call0, g.put0) == (h.strikes, h.call0, h.put0)
            assert [g.occ(i) for i in (g.call0, g.put0)] == [h.occ(i) for i in (h.call0, h.put0)]
        one = np.arange(min(1, len(fresh)))
        assert np.array_equal(fast.strike, fresh.strike) and fast.styles(one) == fresh.styles(one)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(0.0, 5000.0),
            st.floats(0.0, 0.05),
            st.integers(0, 500_000).map(lambda c: c * 0.01),
            st.integers(0, 500_000).map(lambda c: c / 0.9875 * 0.01),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_modelled_quotes_in_floats_equal_the_numpy_batch(ps: list[float]) -> None:
    """Each element of a batch quoted by numpy (any length: its SIMD body and tail) equals the float
    path's quote of that price (small batches are quoted in floats)."""
    s = ModelSettings()
    bid, ask = modelled_quote_prices(np.array(ps), s)
    assert [modelled_quote(p, s) for p in ps] == list(zip(bid.tolist(), ask.tolist(), strict=True))
