"""The lazily priced modelled chain: every row it prices equals py_vollib's Black-Scholes-Merton
price (European root) inside the modelled half-spread, rounded outward to the cent; rows come in
OCC order; a row priced alone equals the row priced with the whole chain."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from py_vollib.black_scholes_merton import black_scholes_merton as bsm

from aiots.core.conventions import NS_PER_YEAR, ny_ns
from aiots.services.backtest.modelled import ModelledChainBook, ModelledChainView, ModelSettings

NOW = ny_ns(dt.date(2024, 3, 5), dt.time(11, 0))
IV, RATE, SPOT = 0.16, 0.05, 5101.7


def book() -> ModelledChainBook:
    return ModelledChainBook(ModelSettings(), RATE, 2.0, 21.0)


def test_rows_are_bsm_prices_inside_the_modelled_spread_in_occ_order() -> None:
    b = book()
    b.set_state("SPX", NOW, SPOT, IV)
    v = b.view("SPX")
    assert isinstance(v, ModelledChainView) and len(v) > 50
    assert b.view("SPX") is v  # same state: same view
    occ = [v.occ(i) for i in range(len(v))]
    assert occ == sorted(occ)
    rows = np.arange(len(v))
    bid, ask = v.bid_ask(rows)
    s = ModelSettings()
    for i in range(0, len(v), 7):
        t = (int(v.expiry_ns[i]) - NOW) / NS_PER_YEAR
        px = bsm("c" if v.is_call[i] else "p", SPOT, float(v.strike[i]), t, RATE, IV, 0.0)
        h = max(s.half_spread_frac * px, s.min_half_spread)
        assert ask[i] == pytest.approx(np.ceil((px + h) * 100 - 1e-6) / 100, abs=0.0100001)
        assert ask[i] >= px + h - 1e-9 and (bid[i] == 0 or bid[i] <= px - h + 1e-9)
        assert round(bid[i] * 100, 6) % 1 == 0 and round(ask[i] * 100, 6) % 1 == 0
    assert v.styles(rows[:3]) == ["european"] * 3
    quotes = b.chain("SPX")
    assert [c.occ_symbol for c in quotes] == occ and [c.bid for c in quotes] == bid.tolist()


def test_a_row_priced_alone_equals_the_whole_chain_priced_at_once() -> None:
    b = book()
    whole = ModelledChainView(b, "AAPL", NOW, 171.3, 0.3)
    rows = np.arange(len(whole))
    all_bid, all_ask = whole.bid_ask(rows)
    lazy = ModelledChainView(b, "AAPL", NOW, 171.3, 0.3)
    pick = np.array([len(lazy) - 1, 3, 0])
    lb, la = lazy.bid_ask(pick)
    assert lb.tolist() == all_bid[pick].tolist() and la.tolist() == all_ask[pick].tolist()
    assert lazy.bid_ask(rows)[0].tolist() == all_bid.tolist()
    q = lazy.quote(3)
    assert (q.occ_symbol, q.bid, q.ask, q.ts_ns) == (whole.occ(3), all_bid[3], all_ask[3], NOW)
    assert lazy.styles(pick) == ["american"] * 3


def test_no_state_or_no_iv_is_an_empty_chain() -> None:
    b = book()
    assert len(b.view("SPY")) == 0
    b.set_state("SPY", NOW, 500.0, float("nan"))
    assert b.chain("SPY") == []
