"""Every RPC with bad input answers INVALID_ARGUMENT with a BadRequest naming the field (never a
crash or INTERNAL): quantity <= 0 or fractional, a negative limit, an unknown side, a malformed
OCC symbol, a missing account, and the other fields each RPC takes."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from aiots.v1 import portfolio_pb2 as pb

from .conftest import AAPL_C, Stack, details


def order(**kw: Any) -> pb.PlaceOrderRequest:
    base: dict[str, Any] = {"account_id": "01ACCOUNT", "client_order_id": "c1", "contract": AAPL_C, "side": "BUY"}
    base.setdefault("quantity", 1)
    return pb.PlaceOrderRequest(**{**base, **kw})


CASES: list[tuple[str, str, Any, str]] = [
    ("CreateAccount", "empty name", pb.CreateAccountRequest(name=" ", cash=1000), "name"),
    ("CreateAccount", "zero cash", pb.CreateAccountRequest(name="a", cash=0), "cash"),
    ("CreateAccount", "negative cash", pb.CreateAccountRequest(name="a", cash=-5), "cash"),
    ("CreateAccount", "NaN cash", pb.CreateAccountRequest(name="a", cash=float("nan")), "cash"),
    ("GetAccount", "missing account", pb.GetAccountRequest(), "account_id"),
    ("PlaceOrder", "missing account", order(account_id=""), "account_id"),
    ("PlaceOrder", "quantity 0", order(quantity=0), "quantity"),
    ("PlaceOrder", "quantity < 0", order(quantity=-2), "quantity"),
    ("PlaceOrder", "fractional quantity", order(quantity=1.5), "quantity"),
    ("PlaceOrder", "infinite quantity", order(quantity=float("inf")), "quantity"),
    ("PlaceOrder", "unknown side", order(side="HOLD"), "side"),
    ("PlaceOrder", "empty side", order(side=""), "side"),
    ("PlaceOrder", "malformed OCC", order(contract="AAPL123"), "contract"),
    ("PlaceOrder", "impossible OCC date", order(contract="AAPL  261340C00230000"), "contract"),
    ("PlaceOrder", "no contract", order(contract=""), "contract"),
    ("PlaceOrder", "missing client id", order(client_order_id=""), "client_order_id"),
    ("PlaceOrder", "negative limit price", order(limit_price=-1.0), "limit_price"),
    ("PlaceOrder", "unknown signal", order(contract="", signal_id="01NOSUCHSIGNAL"), "signal_id"),
    ("ListOrders", "missing account", pb.ListOrdersRequest(), "account_id"),
    ("ListOrders", "limit too large", pb.ListOrdersRequest(account_id="01A", limit=5000), "limit"),
    ("SetLimits", "missing account", pb.SetLimitsRequest(), "account_id"),
    (
        "SetLimits",
        "negative limit",
        pb.SetLimitsRequest(account_id="01A", limits=pb.RiskLimits(max_premium_per_trade=-1)),
        "limits.max_premium_per_trade",
    ),
    (
        "SetLimits",
        "negative count",
        pb.SetLimitsRequest(account_id="01A", limits=pb.RiskLimits(max_open_positions=-3)),
        "limits.max_open_positions",
    ),
    ("SetFollowRule", "missing account", pb.SetFollowRuleRequest(), "account_id"),
    (
        "SetFollowRule",
        "confidence > 1",
        pb.SetFollowRuleRequest(account_id="01A", rule=pb.FollowRule(min_confidence=1.5)),
        "rule.min_confidence",
    ),
    (
        "SetFollowRule",
        "fractional contracts",
        pb.SetFollowRuleRequest(account_id="01A", rule=pb.FollowRule(contracts_per_signal=1.5)),
        "rule.contracts_per_signal",
    ),
    (
        "SetFollowRule",
        "bad ticker",
        pb.SetFollowRuleRequest(account_id="01A", rule=pb.FollowRule(symbols=["AAPL", "no good!"])),
        "rule.symbols[1]",
    ),
]


@pytest.mark.parametrize(("rpc", "what", "request_", "field"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
async def test_bad_input_names_the_field(stack: Stack, rpc: str, what: str, request_: Any, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await getattr(stack.stub, rpc)(request_, metadata=stack.md())
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (what, e.value.details())
    assert details(e.value)["fields"] == [field]
    assert (e.value.details() or "").startswith(f"{field}:")


@pytest.mark.parametrize(
    ("request_", "field"),
    [(pb.WatchAccountRequest(), "account_id"), (pb.WatchAccountRequest(account_id="01A", since="abc"), "since")],
)
async def test_watch_bad_input(stack: Stack, request_: pb.WatchAccountRequest, field: str) -> None:
    call = stack.stub.WatchAccount(request_, metadata=stack.md())
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await call.read()
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and details(e.value)["fields"] == [field]


async def test_unknown_account_is_not_found(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stack.stub.PlaceOrder(order(account_id="01NOSUCHACCOUNT"), metadata=stack.md())
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
