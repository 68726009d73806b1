"""Pre-trade risk limits: each check says whether an order, at its would-be fill, breaks a limit.

Limits bound what the order *opens*: an order that only reduces a position is never refused by
premium, position-count or daily-loss limits, and the delta/vega limits refuse only an order that
leaves the net beyond the limit *and* further from zero than before (so de-risking always works).
``max_daily_loss`` halts opening buys for the rest of the New York session once the day's P&L
(realised today + unrealised) is at or below ``-max_daily_loss``. Selling more than is held
(a naked short) needs ``allow_naked_shorts``. A buy also needs the cash it costs.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiots.core.conventions import CONTRACT_MULTIPLIER
from aiots.core.execution import Fill
from aiots.services.portfolio.models import Contract, LimitBreach, Limits
from aiots.services.portfolio.valuation import Risk, Valuation

M = CONTRACT_MULTIPLIER


def limit_states(limits: Limits, v: Valuation) -> list[tuple[str, float, float, bool]]:
    """(name, limit, current value, breached) of every set limit, for the account view."""
    out: list[tuple[str, float, float, bool]] = []
    total = v.total
    per_und = v.by_underlying()
    if limits.max_premium_per_trade is not None:
        out.append(("max_premium_per_trade", limits.max_premium_per_trade, 0.0, False))
    if limits.max_total_premium is not None:
        at_risk = sum(p.state.basis for p in v.positions if p.state.quantity > 0)
        out.append(("max_total_premium", limits.max_total_premium, at_risk, at_risk > limits.max_total_premium))
    if limits.max_positions_per_underlying is not None:
        most = max((n for _, n in per_und.values()), default=0)
        lim = float(limits.max_positions_per_underlying)
        out.append(("max_positions_per_underlying", lim, float(most), most >= lim))
    if limits.max_open_positions is not None:
        lim = float(limits.max_open_positions)
        out.append(("max_open_positions", lim, float(len(v.positions)), len(v.positions) >= lim))
    if limits.max_daily_loss is not None:
        loss = -v.day_pnl
        out.append(("max_daily_loss", limits.max_daily_loss, loss, loss >= limits.max_daily_loss))
    if limits.max_net_delta is not None:
        d = abs(total.beta_weighted_delta)
        out.append(("max_net_delta", limits.max_net_delta, d, d > limits.max_net_delta))
    if limits.max_net_vega is not None:
        g = abs(total.vega)
        out.append(("max_net_vega", limits.max_net_vega, g, g > limits.max_net_vega))
    return out


def buys_halted(limits: Limits, v: Valuation) -> bool:
    return limits.max_daily_loss is not None and -v.day_pnl >= limits.max_daily_loss


@dataclass(frozen=True, slots=True)
class Proposal:
    """An order at its would-be fill, with the contract's per-contract dollar risk."""

    contract: Contract
    fill: Fill
    unit_risk: Risk  # risk of +1 contract

    @property
    def signed(self) -> int:
        return self.fill.quantity if self.fill.side == "BUY" else -self.fill.quantity


def check(limits: Limits, v: Valuation, p: Proposal) -> LimitBreach | None:
    """The first limit ``p`` breaks, or None."""
    held = next((x.state.quantity for x in v.positions if x.state.contract == p.contract.occ), 0)
    after = held + p.signed
    opening = abs(after) > abs(held) or (after != 0 and (after > 0) != (held > 0) and held != 0)
    opened_qty = max(0, abs(after) - abs(held)) if (after >= 0) == (held >= 0) else abs(after)
    premium = p.fill.price * p.fill.quantity * M
    if p.fill.side == "BUY" and -p.fill.cash_flow > v.cash + 1e-9:
        return LimitBreach(
            "cash", v.cash, -p.fill.cash_flow,
            f"the buy costs ${-p.fill.cash_flow:,.2f} (premium + fees) but the account has ${v.cash:,.2f} cash",
        )  # fmt: skip
    if p.fill.side == "SELL" and after < 0 and not limits.allow_naked_shorts:
        return LimitBreach(
            "no_naked_shorts", 0.0, float(-after),
            f"selling {p.fill.quantity} of {p.contract.occ} while holding {held} would leave {-after} short "
            "(naked shorts are not enabled for this account: set allow_naked_shorts)",
        )  # fmt: skip
    if not opening:
        return _greek_limits(limits, v, p)
    if p.fill.side == "BUY" and buys_halted(limits, v):
        assert limits.max_daily_loss is not None
        return LimitBreach(
            "max_daily_loss", limits.max_daily_loss, -v.day_pnl,
            f"today's loss ${-v.day_pnl:,.2f} reached the daily limit ${limits.max_daily_loss:,.2f}: "
            "new buys are halted for this session",
        )  # fmt: skip
    if limits.max_premium_per_trade is not None and premium > limits.max_premium_per_trade:
        return LimitBreach(
            "max_premium_per_trade", limits.max_premium_per_trade, premium,
            f"premium ${premium:,.2f} ({p.fill.quantity} x {p.fill.price:.2f} x {M}) exceeds "
            f"max_premium_per_trade ${limits.max_premium_per_trade:,.2f}",
        )  # fmt: skip
    if limits.max_total_premium is not None and p.fill.side == "BUY":
        at_risk = sum(x.state.basis for x in v.positions if x.state.quantity > 0)
        added = -p.fill.cash_flow * (opened_qty / p.fill.quantity)
        if at_risk + added > limits.max_total_premium:
            return LimitBreach(
                "max_total_premium", limits.max_total_premium, at_risk + added,
                f"premium at risk would be ${at_risk + added:,.2f} (now ${at_risk:,.2f}), over "
                f"max_total_premium ${limits.max_total_premium:,.2f}",
            )  # fmt: skip
    new_position = held == 0
    if new_position and limits.max_positions_per_underlying is not None:
        n = sum(1 for x in v.positions if x.state.underlying == p.contract.underlying)
        if n + 1 > limits.max_positions_per_underlying:
            return LimitBreach(
                "max_positions_per_underlying", float(limits.max_positions_per_underlying), float(n + 1),
                f"{p.contract.underlying} would have {n + 1} open positions, over "
                f"max_positions_per_underlying {limits.max_positions_per_underlying}",
            )  # fmt: skip
    if new_position and limits.max_open_positions is not None and len(v.positions) + 1 > limits.max_open_positions:
        return LimitBreach(
            "max_open_positions", float(limits.max_open_positions), float(len(v.positions) + 1),
            f"the account would have {len(v.positions) + 1} open positions, over max_open_positions "
            f"{limits.max_open_positions}",
        )  # fmt: skip
    return _greek_limits(limits, v, p)


def _greek_limits(limits: Limits, v: Valuation, p: Proposal) -> LimitBreach | None:
    total = v.total
    added = p.unit_risk.scaled(p.signed)
    for name, lim, before, after, unit in (
        ("max_net_delta", limits.max_net_delta, total.beta_weighted_delta,
         total.beta_weighted_delta + added.beta_weighted_delta, "beta-weighted dollar delta"),
        ("max_net_vega", limits.max_net_vega, total.vega, total.vega + added.vega, "dollars of vega per vol point"),
    ):  # fmt: skip
        if lim is not None and abs(after) > lim and abs(after) > abs(before):
            return LimitBreach(
                name, lim, abs(after),
                f"net {unit} would be {after:,.2f} (now {before:,.2f}), beyond {name} {lim:,.2f}",
            )  # fmt: skip
    return None
