"""The one place where portfolio domain types meet protobuf (aiots.v1)."""

from __future__ import annotations

import math
from typing import Any

from aiots.core.conventions import ns_to_pb as ts
from aiots.services.portfolio.book import AccountView, Mark
from aiots.services.portfolio.models import Event, FollowRule, Limits, LiveQuote, OrderRecord, SignalView
from aiots.services.portfolio.valuation import PositionView, Risk, Valuation
from aiots.v1 import events_pb2, portfolio_pb2, signals_pb2

CLOSED_STATUSES = {
    signals_pb2.SIGNAL_STATUS_TARGET_HIT: "TARGET_HIT",
    signals_pb2.SIGNAL_STATUS_STOPPED: "STOPPED",
    signals_pb2.SIGNAL_STATUS_EXPIRED: "EXPIRED",
    signals_pb2.SIGNAL_STATUS_CANCELLED: "CANCELLED",
}


def _f(x: float) -> float:
    """Finite or 0 (JSON has no NaN)."""
    return x if math.isfinite(x) else 0.0


def risk_to_proto(r: Risk) -> portfolio_pb2.RiskGreeks:
    return portfolio_pb2.RiskGreeks(
        delta_shares=_f(r.delta_shares),
        dollar_delta=_f(r.dollar_delta),
        gamma_1pct=_f(r.gamma_1pct),
        vega=_f(r.vega),
        theta=_f(r.theta),
        beta_weighted_delta=_f(r.beta_weighted_delta),
    )


def position_to_proto(p: PositionView) -> portfolio_pb2.Position:
    q = p.quote
    msg = portfolio_pb2.Position(
        contract=p.state.contract,
        underlying=p.state.underlying,
        quantity=p.state.quantity,
        average_price=_f(p.state.average_price),
        cost_basis=_f(p.state.basis),
        mark=_f(p.mark),
        bid=_f(q.bid) if q else 0.0,
        ask=_f(q.ask) if q else 0.0,
        market_value=_f(p.market_value),
        liquidation_value=_f(p.liquidation_value),
        unrealized_pnl=_f(p.unrealized_pnl),
        iv=_f(p.greeks.iv),
        greeks=risk_to_proto(p.risk),
        exercise_style=p.contract.style,
        underlying_price=_f(p.greeks.spot),
    )
    if q is not None:
        msg.quote_time.CopyFrom(ts(q.ts_ns))
    return msg


def limits_to_proto(lim: Limits) -> portfolio_pb2.RiskLimits:
    return portfolio_pb2.RiskLimits(**lim.to_json())


def limits_from_proto(m: portfolio_pb2.RiskLimits) -> Limits:
    """Only the fields present (an unset field is no limit); validation is the servicer's."""
    return Limits(**{f.name: getattr(m, f.name) for f in m.DESCRIPTOR.fields if m.HasField(f.name)})  # type: ignore[arg-type]


def follow_to_proto(r: FollowRule) -> portfolio_pb2.FollowRule:
    return portfolio_pb2.FollowRule(
        enabled=r.enabled,
        strategies=list(r.strategies),
        symbols=list(r.symbols),
        min_confidence=r.min_confidence,
        contracts_per_signal=float(r.contracts),
        use_signal_size=r.use_signal_size,
    )


def account_to_proto(a: AccountView) -> portfolio_pb2.Account:
    v = a.valuation
    return portfolio_pb2.Account(
        id=a.row.id,
        name=a.row.name,
        created_at=ts(a.row.created_ns),
        starting_cash=a.row.starting_cash,
        cash=_f(v.cash),
        market_value=_f(v.market_value),
        equity=_f(v.equity),
        realized_pnl=_f(v.realized),
        unrealized_pnl=_f(v.unrealized),
        day_pnl=_f(v.day_pnl),
        positions=[position_to_proto(p) for p in v.positions],
        greeks=risk_to_proto(v.total),
        by_underlying=[
            portfolio_pb2.UnderlyingRisk(
                underlying=u, greeks=risk_to_proto(r), beta=v.betas.get(u, 1.0), open_positions=n
            )
            for u, (r, n) in v.by_underlying().items()
        ],
        limits=limits_to_proto(a.row.limits),
        limit_states=[
            portfolio_pb2.LimitState(name=n, limit=_f(lim), current=_f(cur), breached=b)
            for n, lim, cur, b in a.limit_states
        ],
        buys_halted=a.buys_halted,
        follow=follow_to_proto(a.row.follow),
        as_of=ts(v.as_of_ns),
    )


def order_to_proto(o: OrderRecord, realized: float = 0.0, replayed: bool = False) -> portfolio_pb2.Order:
    return portfolio_pb2.Order(
        id=o.id,
        account_id=o.account_id,
        client_order_id=o.client_order_id,
        contract=o.contract,
        side=o.side,
        quantity=o.quantity,
        limit_price=o.limit_price or 0.0,
        status=o.status,
        fill_price=o.fill_price,
        fees=o.fees,
        cash_flow=o.cash_flow,
        bid=_f(o.bid),
        ask=_f(o.ask),
        filled_at=ts(o.filled_ns),
        signal_id=o.signal_id,
        source=o.source,
        realized_pnl=_f(realized),
        replayed=replayed,
        seq=o.seq,
    )


def mark_to_proto(v: Valuation) -> portfolio_pb2.AccountMark:
    return portfolio_pb2.AccountMark(
        equity=_f(v.equity),
        unrealized_pnl=_f(v.unrealized),
        realized_pnl=_f(v.realized),
        greeks=risk_to_proto(v.total),
        positions=[position_to_proto(p) for p in v.positions],
    )


def watch_item_to_proto(item: Event | Mark) -> portfolio_pb2.WatchAccountResponse:
    if isinstance(item, Mark):
        return portfolio_pb2.WatchAccountResponse(
            seq=item.seq, at=ts(item.valuation.as_of_ns), mark=mark_to_proto(item.valuation)
        )
    msg = portfolio_pb2.WatchAccountResponse(seq=item.seq, at=ts(item.at_ns))
    p: dict[str, Any] = dict(item.payload)
    if item.kind == "fill":
        realized = float(p.pop("realized_pnl", 0.0) or 0.0)
        p.update({k: math.nan for k in ("bid", "ask") if p.get(k) is None})
        msg.fill.CopyFrom(order_to_proto(OrderRecord(**p), realized))
    else:
        msg.limit.CopyFrom(
            portfolio_pb2.LimitEvent(name=p["name"], limit=p["limit"], value=p["value"], message=p["message"])
        )
    return msg


def quote_from_event(ev: events_pb2.OptionQuoteEvent) -> tuple[str, str, LiveQuote]:
    """(occ, underlying, quote) of a bus option quote; sizes of 0 are unknown (NaN)."""
    nan = math.nan
    return (
        ev.symbol,
        ev.contract.underlying,
        LiveQuote(
            bid=ev.bid if ev.bid > 0 else nan,
            ask=ev.ask if ev.ask > 0 else nan,
            ts_ns=ev.ts_event,
            bid_size=ev.bid_size if ev.bid_size > 0 else nan,
            ask_size=ev.ask_size if ev.ask_size > 0 else nan,
            underlying_price=ev.underlying_price if ev.underlying_price > 0 else nan,
        ),
    )


def signal_view(m: signals_pb2.Signal) -> SignalView:
    closed = m.status in CLOSED_STATUSES
    return SignalView(
        id=m.id,
        symbol=m.symbol,
        strategy=m.strategy,
        confidence=m.confidence,
        contract=m.contract.occ_symbol,
        closed=closed,
        status=CLOSED_STATUSES.get(m.status, "OPEN"),
        exit_price=m.outcome.exit_price if closed else math.nan,
        suggested_contracts=m.suggested_contracts,
        created_ns=m.created_at.ToNanoseconds(),
        bid=m.bid if m.bid > 0 else math.nan,
        ask=m.ask if m.ask > 0 else math.nan,
        underlying_price=m.underlying_price if m.underlying_price > 0 else math.nan,
        exit_ns=m.outcome.exit_time.ToNanoseconds() if closed else 0,
    )
