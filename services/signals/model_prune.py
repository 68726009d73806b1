"""Refusing an idea on a modelled chain before pricing it: whether every contract is *settled*.

On the backtest's modelled chains most ideas end with every contract unable to pay its costs
(:mod:`aiots.services.signals.gain_bound` prunes them all). Finding that out the generic way prices
every contract of the DTE window, solves its European IV, prefilters by delta and bounds the gain.
Here the same conclusion is reached from the view's pricing model alone (its
:class:`~aiots.services.signals.chainview.QuoteModel`), for each contract, without its quote: the
proof, with its margins, is the compiled kernel :mod:`aiots.core.quote_bounds` (a contract is
settled when it is provably dropped by selection's delta prefilter or provably unable to pay
``spread_cover`` half-spreads). This module hands the kernel the gain bound's margins, which
:mod:`~aiots.services.signals.gain_bound` owns, and checks that the model is the one the idea is
priced with (its spot and rate).

When every contract of the window is settled, selection's answer depends only on whether some
contract passes the liquidity/spread filter, lies near the band and has an American IV (one
witness, priced and solved exactly), and on the event and trading-time checks:
:meth:`~aiots.services.signals.selection.ContractSelector.select` takes that path.

Units: dollars per share, years, sigma per sqrt(year).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from aiots.core import quote_bounds
from aiots.services.signals.chainview import F64, QuoteModel
from aiots.services.signals.gain_bound import MARGINS

#: is_call, S, r, iv, half-spread fraction, least half-spread, tick, K, T, dS, trading days,
#: delta_min, delta_max, prefilter margin, spread cover, margins
_KernelArgs = tuple[
    bool, float, float, float, float, float, float, F64, F64, float, float, float, float, float, float,
    quote_bounds.GainMargins,
]  # fmt: skip


def _kernel_args(
    model: QuoteModel,
    S: float,
    K: F64,
    T: F64,
    r: float,
    dS: float,
    trading_days: float,
    delta_min: float,
    delta_max: float,
    prefilter_margin: float,
    spread_cover: float,
    is_call: bool,
) -> _KernelArgs:
    """The kernel's arguments, in its order, for a model whose spot and rate are the idea's."""
    return (
        is_call,
        S,
        r,
        model.iv,
        model.half_spread_frac,
        model.min_half_spread,
        model.tick,
        K,
        T,
        dS,
        trading_days,
        delta_min,
        delta_max,
        prefilter_margin,
        spread_cover,
        MARGINS,
    )


def all_settled(
    model: QuoteModel,
    S: float,
    K: F64,
    T: F64,
    r: float,
    dS: float,
    trading_days: float,
    delta_min: float,
    delta_max: float,
    prefilter_margin: float,
    spread_cover: float,
    *,
    is_call: bool,
) -> bool:
    """Whether every call (``is_call``) or put of strikes ``K`` and ``T`` years of a modelled view
    with no yield is settled for an idea on spot ``S`` (the view's own spot) moving it by ``dS``
    over ``trading_days`` sessions, IVs solved at rate ``r`` (the view's): stops at the first one
    that is not; False for no contracts or another spot or rate."""
    if not (model.spot == S and model.rate == r):
        return False
    return quote_bounds.all_settled(
        *_kernel_args(
            model, S, K, T, r, dS, trading_days, delta_min, delta_max, prefilter_margin, spread_cover, is_call
        )
    )


def settled(
    model: QuoteModel,
    S: float,
    K: F64,
    T: F64,
    r: float,
    dS: float,
    trading_days: float,
    delta_min: float,
    delta_max: float,
    prefilter_margin: float,
    spread_cover: float,
    *,
    is_call: bool,
) -> npt.NDArray[np.bool_]:
    """:func:`all_settled` contract by contract (True where settled)."""
    if not (model.spot == S and model.rate == r):
        return np.zeros(len(K), dtype=np.bool_)
    return quote_bounds.settled(
        *_kernel_args(
            model, S, K, T, r, dS, trading_days, delta_min, delta_max, prefilter_margin, spread_cover, is_call
        )
    )
