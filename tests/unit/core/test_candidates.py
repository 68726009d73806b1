"""Selection's first cut, compiled (:mod:`aiots.core.candidates`).

Oracles: the rule written out here in NumPy (the expressions selection used before the kernel:
freshness in wrapping int64 arithmetic, the liquidity mask, one DTE flag per expiry, the two-sided
quote, its mid and its spread's fraction), checked on hypothesis chains with NaNs, infinities,
zero and negative sizes, crossed quotes and the int64 extremes; hand-built rows for each test; and
argument checks.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aiots.core.candidates import considered_rows

NOW = 1_760_000_000 * 10**9
AGE = 60 * 10**9
LIMITS = {"min_open_interest": 100.0, "min_volume": 10.0, "min_quote_size": 5.0, "min_premium": 0.10}


class Chain(NamedTuple):
    """The columns of a chain (one entry per row) and one DTE flag per distinct expiry."""

    ts: np.ndarray
    is_call: np.ndarray
    oi: np.ndarray
    vol: np.ndarray
    size: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    code: np.ndarray
    ok: np.ndarray


def reference(c: Chain, want_call: bool, max_spread: float) -> tuple[list[int], int]:
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        fresh = (np.int64(NOW) - c.ts) <= AGE  # NumPy's int64 subtraction wraps
        liquid = (
            (c.is_call == want_call)
            & (c.oi >= LIMITS["min_open_interest"])
            & (c.vol >= LIMITS["min_volume"])
            & ~((c.size > 0) & (c.size < LIMITS["min_quote_size"]))
        )
        mid = 0.5 * (c.bid + c.ask)
        quoted = (
            (c.bid > 0.0) & (c.ask >= c.bid) & (mid >= LIMITS["min_premium"]) & ((c.ask - c.bid) / mid <= max_spread)
        )
    keep = fresh & liquid & c.ok.astype(bool)[c.code] & quoted
    return np.flatnonzero(keep).tolist(), int(fresh.sum())


def call(c: Chain, want_call: bool, max_spread: float) -> tuple[list[int], int]:
    rows, n_fresh = considered_rows(
        c.ts, c.is_call.view(np.uint8), c.oi, c.vol, c.size, c.bid, c.ask, c.code, c.ok, NOW, AGE, want_call,
        LIMITS["min_open_interest"], LIMITS["min_volume"], LIMITS["min_quote_size"], LIMITS["min_premium"], max_spread,
    )  # fmt: skip
    assert rows.dtype == np.intp
    return rows.tolist(), n_fresh


FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 0.05, 0.1, 0.10000000000000002, 1.0, 2.0, 4.99, 5.0, 10.0, 100.0, 1e9]),
)


@st.composite
def chains(draw: st.DrawFn) -> Chain:
    n = draw(st.integers(0, 40))
    n_exp = draw(st.integers(1, 4))
    ts_vals = st.one_of(
        st.integers(NOW - 2 * AGE, NOW + AGE),
        st.sampled_from([NOW - AGE, NOW - AGE - 1, -(2**63), 2**63 - 1, 0]),
    )
    arr = lambda dtype, elems: draw(hnp.arrays(dtype, n, elements=elems))  # noqa: E731
    return Chain(
        arr(np.int64, ts_vals),
        arr(np.bool_, st.booleans()),
        arr(np.float64, FLOATS),
        arr(np.float64, FLOATS),
        arr(np.float64, FLOATS),
        arr(np.float64, FLOATS),
        arr(np.float64, FLOATS),
        arr(np.int64, st.integers(0, n_exp - 1)),
        draw(hnp.arrays(np.uint8, n_exp, elements=st.integers(0, 1))),
    )


@settings(max_examples=400, deadline=None)
@given(chain=chains(), want_call=st.booleans(), max_spread=st.sampled_from([0.0, 0.05, 0.25, 1.0, float("inf")]))
def test_the_kernel_is_the_rule_written_in_numpy(chain: Chain, want_call: bool, max_spread: float) -> None:
    assert call(chain, want_call, max_spread) == reference(chain, want_call, max_spread)


def _one(**kw: float) -> tuple[list[int], int]:
    """One call row, fresh, liquid, in the window and quoted 1.00 x 1.10, with ``kw`` changed."""
    row = {"ts": NOW - AGE, "oi": 100.0, "vol": 10.0, "size": 5.0, "bid": 1.00, "ask": 1.10} | kw
    one = Chain(
        np.array([row["ts"]], dtype=np.int64), np.array([True]), np.array([row["oi"]]), np.array([row["vol"]]),
        np.array([row["size"]]), np.array([row["bid"]]), np.array([row["ask"]]), np.zeros(1, dtype=np.int64),
        np.ones(1, dtype=np.uint8),
    )  # fmt: skip
    return call(one, True, 0.1)


def test_each_test_of_the_rule_on_one_row() -> None:
    """At each limit the row passes; just past it, it is dropped (a spread of 0.10 on a 1.05 mid is
    9.5 %, under the 10 % limit; 1.00 x 1.12 is 11.3 %)."""
    assert _one() == ([0], 1)
    assert _one(ts=NOW - AGE - 1) == ([], 0)  # a nanosecond too old: not fresh
    assert _one(oi=99.0) == ([], 1) and _one(vol=9.0) == ([], 1)
    assert _one(size=4.0) == ([], 1)  # a known size below the minimum
    assert _one(size=0.0) == ([0], 1) and _one(size=float("nan")) == ([0], 1)  # unknown sizes pass
    assert _one(bid=0.0) == ([], 1) and _one(bid=1.2, ask=1.1) == ([], 1)  # one-sided, crossed
    assert _one(ask=1.12) == ([], 1)  # spread 11.3 % of the mid
    assert _one(bid=0.04, ask=0.05) == ([], 1)  # mid 0.045 under the 0.10 premium floor


def test_the_window_and_the_right_are_per_row() -> None:
    ts = np.full(4, NOW, dtype=np.int64)
    is_call = np.array([True, False, True, True])
    ones = np.full(4, 1000.0)
    bid, ask = np.full(4, 1.0), np.full(4, 1.05)
    code = np.array([0, 0, 1, 2], dtype=np.int64)
    ok = np.array([1, 0, 1], dtype=np.uint8)  # the second expiry is outside the window
    chain = Chain(ts, is_call, ones, ones, ones, bid, ask, code, ok)
    assert call(chain, True, 0.1) == ([0, 3], 4) and call(chain, False, 0.1) == ([1], 4)


def test_columns_of_unequal_length_are_refused() -> None:
    one, two = np.ones(1), np.ones(2)
    with pytest.raises(ValueError, match="every column needs 1 rows"):
        considered_rows(
            np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.uint8), one, one, one, one, two,
            np.zeros(1, dtype=np.int64), np.ones(1, dtype=np.uint8), NOW, AGE, True, 1.0, 1.0, 1.0, 0.1, 0.1,
        )  # fmt: skip
