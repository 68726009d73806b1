"""Batches are behaviour: selection on a modelled chain prices every contract in the core batch the
generic path gives it, whatever shortcut it takes (the refusal without pricing, deferred batches,
calls deferred alone, the fused ATM pair of a side priced already).

The core's American pricer (BS2002) prices a batch in blocks of ``BS02_BLOCK`` rows from its
start; a block under ``BS02_MIN_BLOCK`` rows is priced one row at a time, a longer one in SIMD lanes
where a row's last bits may depend on its block. Tick rounding hides most last-bit differences in
the quotes, so the quotes alone are a weak oracle: here every core pricing call of both paths is
recorded and each contract's *batch signature* (priced alone, or its block's contracts and its
place in it) is compared between a view that takes the shortcuts and a twin view of the same state
that takes the generic path (scans its columns, prices every contract of the window at once). Calls
of an American view with no yield are exempt (the core prices each alone whatever the batch: the
premise of ``QuoteModel``); every other contract priced by both must have the same signature.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

import aiots.services.backtest.modelled as modelled
from aiots.services.backtest.modelled import BS02_BLOCK, BS02_MIN_BLOCK, MIN_YEARS, ModelledChainView
from aiots.services.signals.atm_iv import grid_first_iv
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.models import Direction, Idea, Reason
from aiots.services.signals.selection import ContractSelector
from tests.unit.backtest.modelled_states import book, states

Contract = tuple[float, float, bool]  # (strike, years as priced, is call)
Signature = tuple[Contract, ...] | tuple[tuple[Contract, ...], int]  # () alone, else (block, place)
ALONE: Signature = ()


class _Recorder:
    """``aiots.core.options`` as the modelled module sees it, recording each contract's signature:
    the first pricing of a contract is the one a view keeps (a row is priced once; the fused ATM
    pair may price a side again and keeps it only when it quotes the same, so later pricings of a
    contract are not its signature)."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.signature: dict[Contract, Signature] = {}
        self.calls = 0  # core pricing calls (American or European)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def american_price(self, S: Any, K: Any, T: Any, r: Any, sigma: Any, q: Any, is_call: Any, **kw: Any) -> Any:
        self.calls += 1
        k, t, c = np.broadcast_arrays(np.asarray(K, float), np.asarray(T, float), np.asarray(is_call, bool))
        rows = list(zip(k.ravel().tolist(), t.ravel().tolist(), c.ravel().tolist(), strict=True))
        for b0 in range(0, len(rows), BS02_BLOCK):
            block = tuple(rows[b0 : b0 + BS02_BLOCK])
            for j, row in enumerate(block):
                self.signature.setdefault(row, ALONE if len(block) < BS02_MIN_BLOCK else (block, j))
        return self.real.american_price(S, K, T, r, sigma, q, is_call, **kw)

    def bs_price(self, *args: Any, **kw: Any) -> Any:
        self.calls += 1
        return self.real.bs_price(*args, **kw)

    def modelled_atm_pair(self, S: float, K: float, T: float, *rest: Any) -> Any:
        # two rows: under BS02_MIN_BLOCK, each priced alone
        self.signature.setdefault((K, T, True), ALONE)
        self.signature.setdefault((K, T, False), ALONE)
        return self.real.modelled_atm_pair(S, K, T, *rest)


@contextmanager
def _recording() -> Iterator[_Recorder]:
    rec = _Recorder(modelled.opt)
    modelled.opt = rec
    try:
        yield rec
    finally:
        modelled.opt = rec.real


class _Generic(ModelledChainView):
    """The same view on selection's generic path: its columns scanned, every contract priced at once."""

    def liquid_rows(self, want_call: bool, min_open_interest: float, min_volume: float) -> None:
        return None

    def quote_model(self) -> None:
        return None


def _exempt(view: ModelledChainView, contract: Contract) -> bool:
    """A call the core prices alone whatever the batch (American, no yield)."""
    return contract[2] and view._style == "american" and view._s.dividend_yield == 0.0


@settings(max_examples=400, deadline=None)
@given(
    states(),
    st.booleans(),
    st.one_of(st.floats(0.00002, 0.0015), st.floats(0.0002, 0.02)),
    st.integers(5, 390),
    st.sampled_from([0.0, 0.0, 0.013]),
    st.booleans(),
    st.lists(st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=4), max_size=3),
)
def test_every_contract_is_priced_in_the_generic_paths_batch(
    state: tuple[str, int, float, float],
    bullish: bool,
    move_frac: float,
    horizon_min: int,
    q: float,
    read: bool,
    pre: list[list[float]],
) -> None:
    """``pre``: batches of rows (as fractions of the chain) read before the idea, the same on both
    views: the refusal's witness tries rows priced already first, so these move which row it is."""
    symbol, now, spot, iv = state
    cfg = SignalsConfig()
    sc = cfg.selection
    sc.min_open_interest, sc.min_volume = 0.0, 0.0  # as the backtest
    b = book(sc.dte_min, sc.dte_max)
    idea = Idea(
        symbol=symbol,
        strategy="momentum_breakout",
        direction=Direction.BULLISH if bullish else Direction.BEARISH,
        underlying_price=spot,
        projected_move=(1.0 if bullish else -1.0) * move_frac * spot,
        horizon_ns=horizon_min * 60 * 10**9,
        evidence=0.6,
        reasons=(Reason("x", 1.0, 0.5, "test"),),
    )
    runs = []
    for kind in (ModelledChainView, _Generic):
        view = kind(b, symbol, now, spot, iv)
        view._s = dataclasses.replace(view._s, dividend_yield=q)
        with _recording() as rec:
            if read:  # the ATM read of cheap_volatility first (the replay's usual bar)
                lo, hi = now + sc.dte_min * 86_400e9, now + sc.dte_max * 86_400e9
                grid_first_iv(view, spot, now, sc.risk_free_rate, 0.0, lo, hi)
            for batch in pre if len(view) else []:  # earlier reads: priced rows, the same batches
                view.bid_ask(np.array(sorted({int(f * len(view)) for f in batch}), dtype=np.intp))
            selector = ContractSelector()
            got = selector.select(idea, view, now, cfg, dividend_yield=q)
            # and what a later read would price: every row, as the view stands
            view.bid_ask(np.arange(len(view), dtype=np.intp))
        runs.append((view, rec.signature, selector.last_skip, got))
    (fast, sig_fast, skip_fast, got_fast), (_, sig_gen, skip_gen, got_gen) = runs
    event(skip_gen.split(":")[0][:30] or "selected")
    assert skip_fast == skip_gen
    assert repr(got_fast) == repr(got_gen)
    both = sig_fast.keys() & sig_gen.keys()
    assert both == sig_fast.keys() == sig_gen.keys()  # every contract priced by the end, in both
    differ = [c for c in both if sig_fast[c] != sig_gen[c] and not _exempt(fast, c)]
    assert not differ, differ[:3]
    assert all(t >= MIN_YEARS for _k, t, _c in both)


@settings(max_examples=200, deadline=None)
@given(
    states(),
    st.booleans(),
    st.lists(st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=6), max_size=3),
    st.sampled_from([0.0, 0.013]),
    st.randoms(use_true_random=False),
)
def test_priced_is_whether_reading_a_row_prices_nothing(
    state: tuple[str, int, float, float], read: bool, defer: list[list[float]], q: float, rnd: Any
) -> None:
    """``ModelledChainView.priced`` against its meaning: reading a row it calls priced makes no core
    pricing call, reading one it calls unpriced makes one (the row itself, or its deferred block),
    row by row in random order, after the ATM read, deferred batches and earlier reads."""
    symbol, now, spot, iv = state
    cfg = SignalsConfig()
    sc = cfg.selection
    view = ModelledChainView(book(sc.dte_min, sc.dte_max), symbol, now, spot, iv)
    view._s = dataclasses.replace(view._s, dividend_yield=q)
    if read:
        lo, hi = now + sc.dte_min * 86_400e9, now + sc.dte_max * 86_400e9
        grid_first_iv(view, spot, now, sc.risk_free_rate, 0.0, lo, hi)
    n = len(view)
    for k, batch in enumerate(defer if n else []):  # deferred batches, some rows read between them
        rows = np.array(sorted({int(f * n) for f in batch}), dtype=np.intp)
        view.defer_batch(rows) if k % 2 == 0 else view.bid_ask(rows[:1])
    order = list(range(n))
    rnd.shuffle(order)
    with _recording() as rec:
        for i in order:
            one = np.array([i], dtype=np.intp)
            was = bool(view.priced(one)[0])
            before = rec.calls
            view.bid_ask(one)
            assert was == (rec.calls == before), (i, was)
            assert bool(view.priced(one)[0])
