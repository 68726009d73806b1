"""The columnar chain view: its columns are the quotes' own fields, and the ATM-IV scan that reads
prices only near the spot gives py_vollib's Black-Scholes IV of the ATM call and put (the nearest
two-sided strike; one-sided or stale quotes skipped)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from py_vollib.black_scholes_merton.implied_volatility import implied_volatility as bsm_iv

from aiots.core.conventions import NS_PER_MIN, NS_PER_YEAR, expiry_ns, format_occ, ny_ns
from aiots.services.signals.atm_iv import atm_iv_by_expiry, traded_atm_iv
from aiots.services.signals.chainview import ChainView, QuoteListView, as_view, expiry_codes
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.engine import ChainBook
from aiots.services.signals.models import OptionQuote

NOW = ny_ns(dt.date(2024, 3, 5), dt.time(11, 0))
R = 0.05
SPOT = 100.3


def q(root: str, e: dt.date, right: str, k: float, bid: float, ask: float, age_min: int = 0) -> OptionQuote:
    return OptionQuote(
        format_occ(root, e, right, k),
        root,
        e.isoformat(),
        expiry_ns(e),
        k,
        right == "C",
        bid,
        ask,
        ask_size=7.0,
        open_interest=3.0,
        volume=2.0,
        ts_ns=NOW - age_min * NS_PER_MIN,
        multiplier=10,
    )


E1, E2 = dt.date(2024, 3, 8), dt.date(2024, 3, 15)
CHAIN = [
    q("XYZ", E1, "C", 100.0, 0.0, 1.50),  # one-sided: the nearest strike of E1 has no two-sided quote
    q("XYZ", E1, "P", 100.0, 1.20, 1.10),  # crossed
    q("XYZ", E1, "C", 101.0, 0.95, 1.05),
    q("XYZ", E1, "P", 101.0, 1.55, 1.65),
    q("XYZ", E2, "C", 100.0, 2.10, 2.20),
    q("XYZ", E2, "P", 100.0, 1.70, 1.80),
    q("XYZ", E2, "C", 102.0, 1.30, 1.40, age_min=5),
]


def vollib_iv(price: float, k: float, e: dt.date, is_call: bool, r: float = R) -> float:
    t = (expiry_ns(e) - NOW) / NS_PER_YEAR
    return float(bsm_iv(price, SPOT, k, t, r, 0.0, "c" if is_call else "p"))


def test_columns_are_the_quotes_fields_in_list_order() -> None:
    v = as_view(CHAIN)
    assert isinstance(v, QuoteListView) and as_view(v) is v and len(v) == len(CHAIN)
    assert v.strike.tolist() == [c.strike for c in CHAIN]
    assert v.is_call.tolist() == [c.is_call for c in CHAIN]
    assert v.expiry_ns.tolist() == [c.expiry_ns for c in CHAIN]
    assert v.multiplier.tolist() == [10] * len(CHAIN)
    bid, ask = v.bid_ask(np.array([2, 0]))
    assert bid.tolist() == [0.95, 0.0] and ask.tolist() == [1.05, 1.50]
    assert v.two_sided(np.arange(len(CHAIN))).tolist() == [c.two_sided for c in CHAIN]
    assert v.quote(4) is CHAIN[4] and v.occ(4) == CHAIN[4].occ_symbol
    assert v.styles(np.array([0])) == ["american"]
    spxw = as_view([q("SPXW", E1, "C", 5000.0, 1.0, 1.1)])
    assert spxw.styles(np.array([0])) == ["european"]
    assert len(ChainView.from_quotes([])) == 0


def test_atm_iv_skips_one_sided_and_crossed_strikes() -> None:
    got = atm_iv_by_expiry(CHAIN, SPOT, NOW, R, 0.0)
    # E1: strike 100 has no two-sided quote, so 101 (the next nearest) is ATM; E2: strike 100
    e1 = 0.5 * (vollib_iv(1.00, 101.0, E1, True) + vollib_iv(1.60, 101.0, E1, False))
    e2 = 0.5 * (vollib_iv(2.15, 100.0, E2, True) + vollib_iv(1.75, 100.0, E2, False))
    assert [e for e, _ in got] == [expiry_ns(E1), expiry_ns(E2)]
    assert got[0][1] == pytest.approx(e1, abs=1e-7)
    assert got[1][1] == pytest.approx(e2, abs=1e-7)
    assert atm_iv_by_expiry(CHAIN, SPOT, NOW, R, 0.0, limit=1) == got[:1]
    assert atm_iv_by_expiry(CHAIN, SPOT, NOW, R, 0.0, after_ns=expiry_ns(E1)) == got[1:]


def test_traded_atm_iv_uses_the_dte_window_and_fresh_quotes() -> None:
    cfg = SignalsConfig()
    sel = cfg.selection.model_copy(update={"dte_min": 5.0, "dte_max": 21.0})  # E1 (3.2 days) is outside
    cfg = cfg.model_copy(update={"selection": sel})
    iv = traded_atm_iv(CHAIN, SPOT, NOW, cfg, 0.0, 60 * 10**9)
    r = sel.risk_free_rate
    want = 0.5 * (vollib_iv(2.15, 100.0, E2, True, r) + vollib_iv(1.75, 100.0, E2, False, r))
    assert iv == pytest.approx(want, abs=1e-7)
    stale = [c for c in CHAIN if c.expiry == E2.isoformat() and c.ts_ns < NOW]
    assert math.isnan(traded_atm_iv(stale, SPOT, NOW, cfg, 0.0, 60 * 10**9))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(2**62), 2**62), max_size=60), st.integers(1, 6))
def test_expiry_codes_equal_numpys_unique_with_inverse(values: list[int], distinct: int) -> None:
    """The oracle is ``np.unique(..., return_inverse=True)``: same distinct values (as Python ints,
    ascending) and the same code per row, for few distinct values (a chain) and for many."""
    few = np.array([v % distinct for v in values], dtype=np.int64) * 86_400_000_000_000
    for arr in (few, np.array(values, dtype=np.int64)):
        uniq, codes = expiry_codes(arr)
        want_uniq, want_codes = np.unique(arr, return_inverse=True)
        assert uniq == want_uniq.tolist() and all(type(u) is int for u in uniq)
        assert codes.dtype == np.int64 and codes.tolist() == want_codes.tolist()


def _requoted(x: OptionQuote, bump: float, ts_ns: int) -> OptionQuote:
    return dataclasses.replace(x, bid=x.bid + bump, ask=x.ask + bump, ts_ns=ts_ns, volume=x.volume + 1)


def _assert_view_is_of(view: ChainView, quotes: list[OptionQuote]) -> None:
    """Every column and quote of ``view`` is the field of ``quotes`` in OCC order (the oracle: the
    quotes themselves, and ``np.unique`` for the expiry index)."""
    want = sorted(quotes, key=lambda x: x.occ_symbol)
    rows = np.arange(len(want), dtype=np.intp)
    for col in ("expiry_ns", "strike", "is_call", "ts_ns", "ask_size", "open_interest", "volume", "multiplier"):
        assert getattr(view, col).tolist() == [getattr(x, col) for x in want], col
    assert [a.tolist() for a in view.bid_ask(rows)] == [[x.bid for x in want], [x.ask for x in want]]
    uniq, codes = np.unique([x.expiry_ns for x in want], return_inverse=True)
    assert view.expiry_index()[0] == uniq.tolist()
    assert view.expiry_index()[1].tolist() == codes.tolist()
    assert [view.quote(i) for i in range(len(view))] == want


def test_a_requoted_books_view_equals_a_fresh_view_and_shares_only_read_only_contract_columns() -> None:
    book = ChainBook()
    for x in CHAIN:
        book.update(x)
    first = book.view("XYZ")
    _assert_view_is_of(first, CHAIN)
    requoted = [_requoted(x, 0.05, NOW + NS_PER_MIN) for x in CHAIN]
    for x in requoted:
        book.update(x)
    second = book.view("XYZ")
    assert second is not first
    _assert_view_is_of(second, requoted)
    assert second.strike is first.strike  # the contract set is unchanged: its columns are kept
    with pytest.raises(ValueError):
        second.strike[0] = 1.0  # shared columns can't be written through a view
    _assert_view_is_of(first, CHAIN)  # the earlier view still shows the earlier quotes


def test_a_new_contract_or_a_renamed_one_rebuilds_the_contract_columns() -> None:
    book = ChainBook()
    for x in CHAIN:
        book.update(x)
    before = book.view("XYZ")
    added = q("XYZ", E2, "P", 102.0, 1.9, 2.0)
    book.update(added)
    _assert_view_is_of(book.view("XYZ"), [*CHAIN, added])
    assert book.view("XYZ").strike is not before.strike
    # a later quote of a known OCC symbol that states another expiry, strike, right or multiplier is
    # taken as given
    now = [*CHAIN, added]
    for i, change in enumerate(
        ({"expiry_ns": expiry_ns(E2)}, {"strike": 101.5}, {"is_call": False}, {"multiplier": 100})
    ):
        moved = dataclasses.replace(now[2], ts_ns=NOW + (i + 1) * NS_PER_MIN, **change)
        book.update(moved)
        now[2] = moved
        _assert_view_is_of(book.view("XYZ"), now)
    # an older quote is ignored and changes nothing
    kept = book.view("XYZ")
    book.update(dataclasses.replace(CHAIN[3], bid=0.01, ts_ns=NOW - NS_PER_MIN))
    assert book.view("XYZ") is kept
