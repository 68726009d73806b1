"""The book's one-step ATM read (:meth:`ModelledChainBook.first_atm_iv`, through
:func:`book_atm_iv`) answers as the view's general read it stands in for, number for number, and the
view made after it keeps the same state.

Oracle: a second book of the same settings and states, read the old way
(``traded_atm_iv(book.view(symbol), ...)``: the view made at once, its grid read). After the read,
both books' views must hold the same grids, priced rows (prices included) and ATM memo, and answer
the reads selection makes later (event risk, the same and another ATM read, every row's quotes) the
same. Random states cover American daily (SPY) and weekly (AAPL) roots and a European one (SPX, the
general read), spots on a half strike (two nearest strikes: the general read), IVs so low that the
ATM contracts have no bid, stale states, and read windows other than the book's.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from aiots.core.conventions import ny_ns
from aiots.services.backtest.modelled import ModelledChainBook, ModelledChainView
from aiots.services.signals.atm_iv import book_atm_iv, event_risk, traded_atm_iv
from aiots.services.signals.config import SignalsConfig
from tests.unit.backtest.modelled_states import (
    AGE_NS,
    DTE_MAX,
    DTE_MIN,
    EVENT_RATIO,
    IVS,
    RATE,
    State,
    book,
    states,
)


def config(window: tuple[float, float]) -> SignalsConfig:
    cfg = SignalsConfig()
    return cfg.model_copy(
        update={"selection": cfg.selection.model_copy(update={"dte_min": window[0], "dte_max": window[1]})}
    )


def low_iv_states() -> st.SearchStrategy[State]:
    """States whose named IVs include 0.01: ATM contracts with no bid."""
    return states(ivs=(0.01, *IVS))


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def kept(view: ModelledChainView) -> tuple[object, ...]:
    """What a view keeps between reads: its grids, the quotes of its priced rows, its memos."""
    grids = [(g.strikes, g.call0, g.put0) for g in view._grids]
    if view._ready:
        rows = np.flatnonzero(view._priced)
        px = {int(i): (float(view._bid[i]), float(view._ask[i])) for i in rows}
    else:
        px = dict(view._px)
    return grids, view._starts, view._years, view._sides, view._next_row, px, view.grid_memo, view.atm_memo


def read_both(
    fast: ModelledChainBook,
    slow: ModelledChainBook,
    symbol: str,
    spot: float,
    now_ns: int,
    cfg: SignalsConfig,
    q: float,
) -> float:
    """The ATM read of ``symbol`` at ``spot`` and ``now_ns`` on both books, the same answer (returned)."""
    a = book_atm_iv(fast, symbol, spot, now_ns, cfg, q, AGE_NS)
    b = traded_atm_iv(slow.view(symbol), spot, now_ns, cfg, q, AGE_NS)
    assert same(a, b)
    return a


@settings(max_examples=400, deadline=None)
@given(
    low_iv_states(),
    st.sampled_from([(DTE_MIN, DTE_MAX), (0.0, 7.0), (5.0, 30.0)]),
    st.sampled_from([0.0, 0.013]),
    st.sampled_from([0, 30 * 10**9, AGE_NS + 1]),
    st.sampled_from([0.0, 0.3, -0.5]),
    st.sampled_from([None, 0.5]),
)
def test_the_one_step_read_answers_and_keeps_as_the_views_read(
    state: State, window: tuple[float, float], q: float, lag_ns: int, off: float, moved: float | None
) -> None:
    """``off``: the bar's close minus the state's spot (the read solves at the close, the chain is
    priced at the state's spot); ``moved``: a second read in the same state at another close."""
    symbol, now, spot, iv = state
    fast, slow = book(), book()
    for b in (fast, slow):
        b.set_state(symbol, now, spot, iv)
    cfg = config(window)
    at = now + lag_ns
    answered = fast.first_atm_iv(symbol, spot + off, at, RATE, q, *window_ns(at, cfg), AGE_NS)
    event("one step" if answered is not None else "the view's read")
    fast = book()  # first_atm_iv's read on its own above; now through book_atm_iv, as the engine reads it
    fast.set_state(symbol, now, spot, iv)
    read_both(fast, slow, symbol, spot + off, at, cfg, q)
    read_both(fast, slow, symbol, spot + off, at, cfg, q)  # the same read again (another strategy asks): the same
    if moved is not None:  # another read in the same state (its memo and priced rows differ from the first)
        read_both(fast, slow, symbol, spot + moved, at, cfg, q)
    vf, vs = fast.view(symbol), slow.view(symbol)
    assert isinstance(vf, ModelledChainView) and isinstance(vs, ModelledChainView)
    assert kept(vf) == kept(vs)
    # selection's later reads of the view: event risk over the fresh rows, then every row's quotes
    args = (spot, now, RATE, q, EVENT_RATIO)
    rows = np.flatnonzero(now - vf.ts_ns <= AGE_NS)
    assert event_risk(vf, *args, rows=rows) == event_risk(vs, *args, rows=rows)
    assert kept(vf) == kept(vs)
    every = np.arange(len(vf))
    bf, af = vf.bid_ask(every)
    bs, as_ = vs.bid_ask(every)
    assert bf.tolist() == bs.tolist() and af.tolist() == as_.tolist()


def window_ns(now_ns: int, cfg: SignalsConfig) -> tuple[float, float]:
    sc = cfg.selection
    day = 86_400 * 10**9
    return now_ns + sc.dte_min * day, now_ns + sc.dte_max * day


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(low_iv_states(), st.booleans()), min_size=1, max_size=8), st.sampled_from([0.0, 0.013]))
def test_a_book_read_bar_after_bar_answers_as_views_made_at_once(steps: list[tuple[State, bool]], q: float) -> None:
    """States one after another on one book, the view made (selection read it) after some reads."""
    fast, slow = book(), book()
    cfg = config((DTE_MIN, DTE_MAX))
    for state, selected in steps:
        symbol, now, spot, iv = state
        for b in (fast, slow):
            b.set_state(symbol, now, spot, iv)
        read_both(fast, slow, symbol, spot, now, cfg, q)
        if selected:
            vf, vs = fast.view(symbol), slow.view(symbol)
            assert isinstance(vf, ModelledChainView) and isinstance(vs, ModelledChainView)
            assert kept(vf) == kept(vs)
            read_both(fast, slow, symbol, spot, now, cfg, q)  # the made view answers now
            assert kept(vf) == kept(vs)


def test_the_usual_bar_is_answered_without_making_the_view() -> None:
    """An American daily root at a whole-dollar-and-a-quarter spot (one nearest strike), ordinary IV."""
    b = book()
    now = ny_ns(dt.date(2024, 3, 5), dt.time(10, 0))
    b.set_state("SPY", now, 510.25, 0.16)
    cfg = config((DTE_MIN, DTE_MAX))
    iv = b.first_atm_iv("SPY", 510.25, now, RATE, 0.0, *window_ns(now, cfg), AGE_NS)
    assert iv is not None and 0.05 < iv < 0.5  # the modelled chain's IV back, near 0.16
    assert "SPY" not in b._cache  # no view made
    view = b.view("SPY")
    assert isinstance(view, ModelledChainView) and len(view.grid_memo) == 1  # made, with the read kept


def test_real_or_unset_symbols_and_stale_states_are_left_to_the_view() -> None:
    b = book()
    now = ny_ns(dt.date(2024, 3, 5), dt.time(10, 0))
    lo, hi = window_ns(now, config((DTE_MIN, DTE_MAX)))
    assert b.first_atm_iv("SPY", 510.25, now, RATE, 0.0, lo, hi, AGE_NS) is None  # no state
    b.set_state("SPY", now, 510.25, 0.16)
    assert b.first_atm_iv("SPY", 510.25, now + AGE_NS + 1, RATE, 0.0, lo, hi, AGE_NS) is None  # stale
    assert b.first_atm_iv("SPY", math.nan, now, RATE, 0.0, lo, hi, AGE_NS) is None  # no spot
    b.real.add("SPY")
    assert b.first_atm_iv("SPY", 510.25, now, RATE, 0.0, lo, hi, AGE_NS) is None  # real quotes
