"""Batch pricing and implied volatility of client-supplied contracts (PriceOptions/ImpliedVolatility).

The maths is ``aiots.core.options``; this module validates rows (reason codes instead of errors,
so one bad row never fails a batch), groups rows by style / dividend schedule so each group is one
vectorised core call, and converts Greeks to the API's units.

Units: premiums in dollars per share; ``t`` years (ACT/365); ``rate``/``q`` continuous; ``vol``
annual. Greeks out: first order in trader units (delta per $1, gamma per $1, theta $/calendar day,
vega $/vol point, rho and epsilon $/1%), second/third order raw (per 1.00 vol, per year). American
Greeks have no closed forms: the core gives delta, gamma, theta, vega, rho (by finite differences
or from the tree); the other fields are NaN for American rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from aiots.core import options as opt

F64 = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]

GREEK_NAMES: tuple[str, ...] = (
    "delta",
    "gamma",
    "theta",
    "vega",
    "rho",
    "epsilon",
    "vanna",
    "vomma",
    "charm",
    "veta",
    "speed",
    "zomma",
    "color",
    "ultima",
)
#: Greeks reported in trader units (the rest stay raw)
TRADER_FIRST_ORDER = ("delta", "gamma", "theta", "vega", "rho", "epsilon")
AmericanMethod = Literal["bjerksund_stensland_2002", "baw", "binomial"]
AMERICAN_METHODS: tuple[AmericanMethod, ...] = get_args(AmericanMethod)
DEFAULT_METHOD: AmericanMethod = "bjerksund_stensland_2002"


def as_method(name: str) -> AmericanMethod:
    """``name`` as an American method, or ValueError listing the valid ones."""
    if name not in AMERICAN_METHODS:
        raise ValueError(f"american method {name!r} unknown; use one of {list(AMERICAN_METHODS)}")
    return name


Dividends = tuple[tuple[float, float], ...]


@dataclass
class ContractBatch:
    """Rows to price or invert. ``right_ok`` is False where the right was unspecified."""

    spot: F64
    strike: F64
    t: F64
    rate: F64
    q: F64
    vol: F64
    price: F64
    is_call: BoolArr
    right_ok: BoolArr
    american: BoolArr
    dividends: list[Dividends] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.spot.shape[0])


@dataclass
class PricedBatch:
    """Prices (NaN where not priced), Greeks by name, and a reason per row ("" when priced)."""

    price: F64
    greeks: dict[str, F64]
    reasons: list[str]


@dataclass
class IvBatch:
    """Implied vols (NaN where not solved) and a reason per row ("" when solved)."""

    iv: F64
    reasons: list[str]


def _finite_pos(x: F64) -> BoolArr:
    return np.asarray(np.isfinite(x) & (x > 0), dtype=np.bool_)


def _validate(b: ContractBatch, *, need_vol: bool, need_price: bool) -> list[str]:
    """A reason per row for inputs the maths cannot take ("" when fine)."""
    n = len(b)
    reasons = [""] * n
    checks: list[tuple[BoolArr, str]] = [
        (b.right_ok, "INVALID_RIGHT"),
        (_finite_pos(b.spot), "INVALID_SPOT"),
        (_finite_pos(b.strike), "INVALID_STRIKE"),
        (_finite_pos(b.t), "NONPOSITIVE_TIME"),
        (np.isfinite(b.rate) & np.isfinite(b.q), "INVALID_RATE"),
    ]
    if need_vol:
        checks.append((_finite_pos(b.vol), "INVALID_VOLATILITY"))
    if need_price:
        checks.append((_finite_pos(b.price), "INVALID_PRICE"))
    for ok, reason in checks:
        for i in np.flatnonzero(~ok).tolist():
            if not reasons[i]:
                reasons[i] = reason
    for i, divs in enumerate(b.dividends):
        if not divs or reasons[i]:
            continue
        if not b.american[i]:
            reasons[i] = "DIVIDENDS_NEED_AMERICAN"
        elif any(not (np.isfinite(tt) and np.isfinite(d) and tt >= 0 and d >= 0) for tt, d in divs):
            reasons[i] = "INVALID_DIVIDEND"
    return reasons


def _groups(b: ContractBatch, reasons: list[str]) -> dict[tuple[bool, Dividends], list[int]]:
    """Valid rows grouped by (american, dividend schedule)."""
    groups: dict[tuple[bool, Dividends], list[int]] = defaultdict(list)
    for i in range(len(b)):
        if not reasons[i]:
            divs = b.dividends[i] if i < len(b.dividends) else ()
            groups[bool(b.american[i]), divs].append(i)
    return groups


def price_batch(b: ContractBatch, method: AmericanMethod = DEFAULT_METHOD, steps: int = 501) -> PricedBatch:
    """Price every row with Greeks. Rows with cash dividends use the binomial tree (the only
    American method that takes them), whatever ``method`` says."""
    n = len(b)
    reasons = _validate(b, need_vol=True, need_price=False)
    price = np.full(n, np.nan)
    greeks = {g: np.full(n, np.nan) for g in GREEK_NAMES}
    for (american, divs), rows in _groups(b, reasons).items():
        idx = np.asarray(rows, dtype=np.intp)
        args = (b.spot[idx], b.strike[idx], b.t[idx], b.rate[idx], b.vol[idx], b.q[idx], b.is_call[idx])
        if not american:
            price[idx] = opt.bs_price(*args)
            raw = opt.bs_greeks(*args)
        else:
            m: AmericanMethod = "binomial" if divs else method
            raw = opt.american_greeks(*args, method=m, steps=steps, dividends=list(divs) if divs else None)
            price[idx] = raw["price"]
        trader = opt.trader_units(raw)
        for g in GREEK_NAMES:
            if g in (raw.dtype.names or ()):
                src = trader if g in TRADER_FIRST_ORDER else raw
                greeks[g][idx] = src[g]
    for i in np.flatnonzero(~np.isfinite(price)).tolist():
        if not reasons[i]:
            reasons[i] = "PRICING_FAILED"
    return PricedBatch(price=price, greeks=greeks, reasons=reasons)


def iv_batch(b: ContractBatch, method: AmericanMethod = DEFAULT_METHOD, steps: int = 501) -> IvBatch:
    """Implied vol of every row's ``price`` (European: exact LBR-class; American: core's solver)."""
    n = len(b)
    reasons = _validate(b, need_vol=False, need_price=True)
    iv = np.full(n, np.nan)
    for (american, divs), rows in _groups(b, reasons).items():
        idx = np.asarray(rows, dtype=np.intp)
        args = (b.price[idx], b.spot[idx], b.strike[idx], b.t[idx], b.rate[idx], b.q[idx], b.is_call[idx])
        if american:
            m: AmericanMethod = "binomial" if divs else method
            sol, codes = opt.implied_vol(
                *args, style="american", return_reason=True, method=m, steps=steps,
                dividends=list(divs) if divs else None,
            )  # fmt: skip
        else:
            sol, codes = opt.implied_vol(*args, style="european", return_reason=True)
        iv[idx] = sol
        for j, code in zip(rows, np.asarray(codes).tolist(), strict=True):
            if code != opt.OK:
                reasons[j] = str(opt.REASONS.get(int(code), f"REASON_{code}"))
    for i in np.flatnonzero(~np.isfinite(iv)).tolist():
        if not reasons[i]:
            reasons[i] = "NO_SOLUTION"
    return IvBatch(iv=iv, reasons=reasons)
