"""Marks, P&L and Greeks of positions from live option quotes (``aiots.core.options``).

Per contract: the mark is the quote's mid; the implied vol is solved from the mid with the
contract's exercise style (European: Black-Scholes-Merton; American: the configured closed form);
Greeks come from the same model. Time to expiry is ACT/365 to the expiry session's close
(``aiots.core.conventions.time_to_expiry_years``). Position risk, in dollars, for ``q`` signed
contracts of ``m`` = 100 shares on an underlying at ``S``:

- ``delta_shares = delta x q x m``; ``dollar_delta = delta_shares x S``;
- ``gamma_1pct = gamma x q x m x S x 0.01 S`` (how much dollar delta moves on a 1% move);
- ``vega = vega_per_1.00 / 100 x q x m`` (per vol point); ``theta = theta_per_year / 365 x q x m``;
- ``beta_weighted_delta = dollar_delta x beta`` (SPY-equivalent dollars).

A contract without a two-sided quote, an underlying price, or a solvable IV has zero Greeks and
``iv`` NaN; it is still valued at what is quoted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from aiots.core import conventions as cv
from aiots.core import options
from aiots.core.execution import Quote
from aiots.services.portfolio.ledger import Ledger, PositionState
from aiots.services.portfolio.models import Contract, LiveQuote

M = cv.CONTRACT_MULTIPLIER
ONE_PCT = 0.01
VOL_POINT = 100.0  # raw vega is per 1.00 of vol
DAYS_PER_YEAR = 365.0


@dataclass(frozen=True, slots=True)
class Risk:
    """Dollar risk of a position, an underlying or the portfolio (see the module docstring)."""

    delta_shares: float = 0.0
    dollar_delta: float = 0.0
    gamma_1pct: float = 0.0
    vega: float = 0.0
    theta: float = 0.0
    beta_weighted_delta: float = 0.0

    def __add__(self, o: Risk) -> Risk:
        return Risk(
            self.delta_shares + o.delta_shares,
            self.dollar_delta + o.dollar_delta,
            self.gamma_1pct + o.gamma_1pct,
            self.vega + o.vega,
            self.theta + o.theta,
            self.beta_weighted_delta + o.beta_weighted_delta,
        )

    def scaled(self, k: float) -> Risk:
        return Risk(*(k * v for v in (self.delta_shares, self.dollar_delta, self.gamma_1pct, self.vega,
                                      self.theta, self.beta_weighted_delta)))  # fmt: skip


@dataclass(frozen=True, slots=True)
class UnitGreeks:
    """Per-share model Greeks of one contract: raw delta, gamma; vega per 1.00; theta per year."""

    iv: float = math.nan
    delta: float = 0.0
    gamma: float = 0.0
    vega: float = 0.0
    theta: float = 0.0
    spot: float = math.nan

    def risk(self, quantity: float, beta: float) -> Risk:
        """Dollar risk of ``quantity`` signed contracts."""
        if not math.isfinite(self.iv) or not math.isfinite(self.spot):
            return Risk()
        shares = self.delta * quantity * M
        dd = shares * self.spot
        return Risk(
            delta_shares=shares,
            dollar_delta=dd,
            gamma_1pct=self.gamma * quantity * M * self.spot * ONE_PCT * self.spot,
            vega=self.vega / VOL_POINT * quantity * M,
            theta=self.theta / DAYS_PER_YEAR * quantity * M,
            beta_weighted_delta=dd * beta,
        )


@dataclass(frozen=True, slots=True)
class PositionView:
    """A position marked at its latest quote."""

    state: PositionState
    contract: Contract
    quote: LiveQuote | None
    greeks: UnitGreeks
    risk: Risk

    @property
    def mark(self) -> float:
        q = self.quote
        return Quote(q.bid, q.ask, q.ts_ns).mid if q is not None else math.nan

    @property
    def market_value(self) -> float:
        """quantity x 100 x mid (0 when there is no mid)."""
        m = self.mark
        return self.state.quantity * M * m if math.isfinite(m) else 0.0

    @property
    def liquidation_value(self) -> float:
        """Closing now: a long sells at the bid, a short buys back at the ask (0 when not quoted)."""
        q = self.quote
        if q is None:
            return 0.0
        px = q.bid if self.state.quantity > 0 else q.ask
        return self.state.quantity * M * px if math.isfinite(px) and px > 0 else 0.0

    @property
    def unrealized_pnl(self) -> float:
        return self.market_value - self.state.basis if math.isfinite(self.mark) else 0.0


@dataclass(frozen=True, slots=True)
class Valuation:
    """An account valued at ``as_of_ns``."""

    as_of_ns: int
    cash: float
    realized: float
    realized_today: float
    positions: list[PositionView]
    betas: Mapping[str, float] = field(default_factory=dict)

    @property
    def market_value(self) -> float:
        return sum(p.market_value for p in self.positions)

    @property
    def equity(self) -> float:
        return self.cash + self.market_value

    @property
    def unrealized(self) -> float:
        return sum(p.unrealized_pnl for p in self.positions)

    @property
    def day_pnl(self) -> float:
        """Realised today (New York day) plus the open positions' unrealised P&L."""
        return self.realized_today + self.unrealized

    @property
    def total(self) -> Risk:
        out = Risk()
        for p in self.positions:
            out = out + p.risk
        return out

    def by_underlying(self) -> dict[str, tuple[Risk, int]]:
        """underlying -> (summed risk, open positions)."""
        out: dict[str, tuple[Risk, int]] = {}
        for p in self.positions:
            r, n = out.get(p.state.underlying, (Risk(), 0))
            out[p.state.underlying] = (r + p.risk, n + 1)
        return dict(sorted(out.items()))


@dataclass(frozen=True)
class Greeker:
    """Solves IVs and Greeks with the contract's exercise style."""

    rate: float = cv.DEFAULT_RATE
    american_method: options.Method = "bjerksund_stensland_2002"

    def unit(self, c: Contract, q: LiveQuote | None, now_ns: int, dividend_yield: float = 0.0) -> UnitGreeks:
        """Per-share Greeks of ``c`` at the quote's mid (zeros when it can't be solved)."""
        if q is None:
            return UnitGreeks()
        mid = Quote(q.bid, q.ask, q.ts_ns).mid
        s = q.underlying_price
        t = cv.time_to_expiry_years(now_ns, c.expiry)
        if not (math.isfinite(mid) and mid > 0 and math.isfinite(s) and s > 0 and t > 0):
            return UnitGreeks(spot=s)
        iv = float(
            np.asarray(options.implied_vol(
                np.array([mid]), np.array([s]), np.array([c.strike]), np.array([t]), self.rate, dividend_yield,
                np.array([c.is_call]), c.style, method=self.american_method,
            ))[0]
        )  # fmt: skip
        if not (math.isfinite(iv) and iv > 0):
            return UnitGreeks(spot=s)
        if c.style == "european":
            g = options.bs_greeks(s, c.strike, t, self.rate, iv, dividend_yield, c.is_call)
        else:
            g = options.american_greeks(
                s, c.strike, t, self.rate, iv, dividend_yield, c.is_call, method=self.american_method
            )
        return UnitGreeks(iv, float(g["delta"]), float(g["gamma"]), float(g["vega"]), float(g["theta"]), s)


def value(
    ledger: Ledger,
    quotes: Mapping[str, LiveQuote | None],
    betas: Mapping[str, float],
    now_ns: int,
    greeker: Greeker,
    dividend_yields: Mapping[str, float] | None = None,
) -> Valuation:
    """Mark every open position of ``ledger`` at ``quotes`` (CPU work: call it in a worker thread)."""
    views = []
    dy = dividend_yields or {}
    for st in ledger.open_positions():
        c = Contract.parse(st.contract)
        q = quotes.get(st.contract)
        g = greeker.unit(c, q, now_ns, dy.get(st.underlying, 0.0))
        views.append(PositionView(st, c, q, g, g.risk(st.quantity, betas.get(st.underlying, 1.0))))
    return Valuation(
        as_of_ns=now_ns,
        cash=ledger.cash,
        realized=ledger.realized,
        realized_today=ledger.realized_on(cv.ny_date(now_ns)),
        positions=views,
        betas=dict(betas),
    )


def beta(underlying_closes: np.ndarray, spy_closes: np.ndarray, min_days: int) -> float:
    """OLS beta of daily log returns (same dates, oldest first) to SPY's; 1.0 with too few days."""
    n = min(len(underlying_closes), len(spy_closes))
    if n < min_days + 1:
        return 1.0
    a = np.diff(np.log(np.asarray(underlying_closes[-n:], dtype=np.float64)))
    b = np.diff(np.log(np.asarray(spy_closes[-n:], dtype=np.float64)))
    var = float(np.var(b))
    return float(np.cov(a, b, ddof=0)[0, 1] / var) if var > 0 else 1.0
