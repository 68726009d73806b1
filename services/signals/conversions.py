"""The one place where signals domain types meet protobuf (aiots.v1)."""

from __future__ import annotations

from aiots.core.conventions import ns_to_pb as ts
from aiots.services.signals.models import (
    Direction,
    GreeksTU,
    OptionQuote,
    Reason,
    Signal,
    Status,
    StatusChange,
)
from aiots.v1 import common_pb2, signals_pb2


def signal_to_proto(s: Signal, *, with_history: bool = True) -> signals_pb2.Signal:
    q = s.contract
    msg = signals_pb2.Signal(
        id=s.id,
        created_at=ts(s.created_ns),
        symbol=s.symbol,
        underlying_price=s.underlying_price,
        direction=signals_pb2.Direction.ValueType(int(s.direction)),
        strategy=s.strategy,
        contract=common_pb2.OptionContract(
            occ_symbol=q.occ_symbol,
            underlying=q.underlying,
            strike=q.strike,
            expiry=q.expiry,
            right=common_pb2.OPTION_RIGHT_CALL if q.is_call else common_pb2.OPTION_RIGHT_PUT,
            multiplier=q.multiplier,
            style=common_pb2.EXERCISE_STYLE_EUROPEAN
            if s.exercise_style == "european"
            else common_pb2.EXERCISE_STYLE_AMERICAN,
        ),
        entry_price=s.entry_price,
        bid=q.bid,
        ask=q.ask,
        target_price=s.target_price,
        stop_price=s.stop_price,
        horizon=ts(s.horizon_ns),
        confidence=s.confidence,
        expected_return_pct=s.expected_return_pct,
        reward_risk=s.reward_risk,
        greeks=common_pb2.Greeks(
            delta=s.greeks.delta, gamma=s.greeks.gamma, theta=s.greeks.theta, vega=s.greeks.vega, rho=s.greeks.rho
        ),
        iv=s.iv,
        iv_rank=s.iv_rank,
        reasons=[
            signals_pb2.SignalReason(
                indicator=r.indicator, value=r.value, threshold=r.threshold, description=r.description
            )
            for r in s.reasons
        ],
        status=signals_pb2.SignalStatus.ValueType(int(s.status)),
        projected_move=s.projected_move,
        suggested_contracts=s.suggested_contracts,
        fee_per_contract=s.fee_per_contract,
        p_model=s.p_model,
        evidence=s.evidence,
        risk_per_contract=s.risk_per_contract,
    )
    if s.updated_ns:
        msg.updated_at.CopyFrom(ts(s.updated_ns))
    if s.status.closed:
        msg.outcome.CopyFrom(
            signals_pb2.SignalOutcome(exit_time=ts(s.exit_ns), exit_price=s.exit_price, pnl_pct=s.pnl_pct)
        )
    if with_history:
        msg.history.extend(
            signals_pb2.SignalStatusChange(
                status=signals_pb2.SignalStatus.ValueType(int(h.status)),
                at=ts(h.at_ns),
                option_price=h.option_price,
                note=h.note,
            )
            for h in s.history
        )
    return msg


def signal_from_proto(m: signals_pb2.Signal, expiry_ns: int = 0) -> Signal:
    c = m.contract
    quote = OptionQuote(
        occ_symbol=c.occ_symbol,
        underlying=c.underlying,
        expiry=c.expiry,
        expiry_ns=expiry_ns,
        strike=c.strike,
        is_call=c.right == common_pb2.OPTION_RIGHT_CALL,
        bid=m.bid,
        ask=m.ask,
        multiplier=c.multiplier or 100,
    )
    g = m.greeks
    return Signal(
        id=m.id,
        created_ns=m.created_at.ToNanoseconds(),
        symbol=m.symbol,
        underlying_price=m.underlying_price,
        direction=Direction(m.direction),
        strategy=m.strategy,
        contract=quote,
        entry_price=m.entry_price,
        target_price=m.target_price,
        stop_price=m.stop_price,
        horizon_ns=m.horizon.ToNanoseconds(),
        confidence=m.confidence,
        expected_return_pct=m.expected_return_pct,
        reward_risk=m.reward_risk,
        greeks=GreeksTU(g.delta, g.gamma, g.theta, g.vega, g.rho),
        iv=m.iv,
        iv_rank=m.iv_rank,
        reasons=tuple(Reason(r.indicator, r.value, r.threshold, r.description) for r in m.reasons),
        projected_move=m.projected_move,
        status=Status(m.status),
        exit_ns=m.outcome.exit_time.ToNanoseconds() if m.HasField("outcome") else 0,
        exit_price=m.outcome.exit_price,
        history=[StatusChange(Status(h.status), h.at.ToNanoseconds(), h.option_price, h.note) for h in m.history],
        suggested_contracts=m.suggested_contracts,
        fee_per_contract=m.fee_per_contract,
        p_model=m.p_model,
        evidence=m.evidence,
        risk_per_contract=m.risk_per_contract,
        exercise_style="european" if c.style == common_pb2.EXERCISE_STYLE_EUROPEAN else "american",
        updated_ns=m.updated_at.ToNanoseconds() if m.HasField("updated_at") else 0,
    )
