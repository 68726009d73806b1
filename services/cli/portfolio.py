"""``aiots portfolio create|show|buy|sell|limits|follow|watch``: paper accounts from the command line.

Talks gRPC to the PortfolioService (default 127.0.0.1:8006, or ``--target`` e.g. the gateway on
127.0.0.1:8000 with ``--token``; accounts belong to the token's subject, or to the local subject
on a direct call). ``--json`` prints JSON (one object per line for ``watch``) for scripts.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import click
import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from aiots.services.common.settings import get_settings
from aiots.v1 import portfolio_pb2 as pb
from aiots.v1 import portfolio_pb2_grpc

console = Console()
R = TypeVar("R")
LIMIT_OPTIONS = (
    "max_premium_per_trade",
    "max_total_premium",
    "max_positions_per_underlying",
    "max_open_positions",
    "max_daily_loss",
    "max_net_delta",
    "max_net_vega",
)


def _target(target: str | None) -> str:
    s = get_settings().portfolio
    return target or f"{s.host}:{s.port}"


def _metadata(token: str | None) -> Sequence[tuple[str, str]] | None:
    return (("authorization", f"Bearer {token}"),) if token else None


def _dump(msg: Message) -> str:
    return json.dumps(MessageToDict(msg, preserving_proto_field_name=True))


def _call(target: str | None, fn: Callable[[portfolio_pb2_grpc.PortfolioServiceStub], Awaitable[R]]) -> R:
    addr = _target(target)

    async def run() -> R:
        async with grpc.aio.insecure_channel(addr) as ch:
            try:
                return await fn(portfolio_pb2_grpc.PortfolioServiceStub(ch))
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    raise click.ClickException(
                        f"portfolio service not reachable at {addr}: start it with `make run`"
                    ) from None
                raise click.ClickException(f"{exc.code().name}: {exc.details()}") from None

    return asyncio.run(run())


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _print_account(a: pb.Account) -> None:
    console.print(
        f"[bold]{a.name}[/bold]  {a.id}  cash {_money(a.cash)}  equity {_money(a.equity)}  "
        f"realised {_money(a.realized_pnl)}  unrealised {_money(a.unrealized_pnl)}  day {_money(a.day_pnl)}"
        + ("  [red]BUYS HALTED[/red]" if a.buys_halted else "")
    )
    if a.positions:
        t = Table("contract", "qty", "avg", "bid", "ask", "mark", "value", "liq (bid)", "unreal", "IV",
                  "$delta", "gamma 1%", "vega/pt", "theta/day", title="positions")  # fmt: skip
        for p in a.positions:
            g = p.greeks
            t.add_row(
                p.contract, str(p.quantity), f"{p.average_price:.2f}", f"{p.bid:.2f}", f"{p.ask:.2f}",
                f"{p.mark:.3f}", _money(p.market_value), _money(p.liquidation_value), _money(p.unrealized_pnl),
                f"{p.iv:.1%}", _money(g.dollar_delta), _money(g.gamma_1pct), _money(g.vega), _money(g.theta),
            )  # fmt: skip
        console.print(t)
    if a.by_underlying:
        t = Table("underlying", "beta", "positions", "$delta", "beta-wtd $delta", "gamma 1%", "vega/pt",
                  "theta/day", title="risk by underlying")  # fmt: skip
        for u in a.by_underlying:
            g = u.greeks
            t.add_row(
                u.underlying, f"{u.beta:.2f}", str(u.open_positions), _money(g.dollar_delta),
                _money(g.beta_weighted_delta), _money(g.gamma_1pct), _money(g.vega), _money(g.theta),
            )  # fmt: skip
        g = a.greeks
        t.add_row("TOTAL", "", str(len(a.positions)), _money(g.dollar_delta), _money(g.beta_weighted_delta),
                  _money(g.gamma_1pct), _money(g.vega), _money(g.theta), style="bold")  # fmt: skip
        console.print(t)
    if a.limit_states:
        t = Table("limit", "limit value", "current", "state", title="risk limits")
        for s in a.limit_states:
            t.add_row(s.name, _money(s.limit), _money(s.current), "[red]AT LIMIT[/red]" if s.breached else "ok")
        console.print(t)
    f = a.follow
    if f.enabled:
        console.print(
            f"following: strategies {list(f.strategies) or 'all'}, symbols {list(f.symbols) or 'all'}, "
            f"min confidence {f.min_confidence:.2f}, "
            + ("the signal's size" if f.use_signal_size else f"{f.contracts_per_signal:g} contracts per signal")
        )


def _print_order(o: pb.Order) -> None:
    again = " (retry: the first order, not filled again)" if o.replayed else ""
    console.print(
        f"{o.status} {o.side} {o.quantity} {o.contract} at {o.fill_price:.2f} (bid {o.bid:.2f} / ask {o.ask:.2f}), "
        f"fees {o.fees:.2f}, cash {o.cash_flow:+,.2f}, realised {o.realized_pnl:+,.2f}  order {o.id}{again}"
    )


_common = [
    click.option("--target", default=None, help="host:port of PortfolioService (default :8006) or the gateway."),
    click.option("--token", envvar="AIOTS_TOKEN", default=None, help="Bearer token (needed through the gateway)."),
    click.option("--json", "as_json", is_flag=True, help="JSON output."),
]


def common(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(_common):
        fn = opt(fn)
    return fn


@click.group(name="portfolio")
def cli() -> None:
    """Paper accounts: trade options at live quotes, follow signals, watch P&L, Greeks and limits."""


@cli.command()
@click.argument("name")
@click.option("--cash", type=float, default=100_000.0, show_default=True, help="Starting cash in dollars.")
@common
def create(name: str, cash: float, target: str | None, token: str | None, as_json: bool) -> None:
    """Open an account."""
    r = _call(
        target, lambda s: s.CreateAccount(pb.CreateAccountRequest(name=name, cash=cash), metadata=_metadata(token))
    )
    click.echo(_dump(r.account)) if as_json else _print_account(r.account)


@cli.command()
@click.argument("account_id", required=False)
@common
def show(account_id: str | None, target: str | None, token: str | None, as_json: bool) -> None:
    """One account (positions, P&L, Greeks, limits), or all of yours without ACCOUNT_ID."""
    if account_id:
        r = _call(
            target, lambda s: s.GetAccount(pb.GetAccountRequest(account_id=account_id), metadata=_metadata(token))
        )
        accounts = [r.account]
    else:
        accounts = list(
            _call(target, lambda s: s.ListAccounts(pb.ListAccountsRequest(), metadata=_metadata(token))).accounts
        )
    if as_json:
        click.echo(json.dumps([MessageToDict(a, preserving_proto_field_name=True) for a in accounts]))
        return
    if not accounts:
        console.print("no accounts yet: aiots portfolio create NAME --cash 10000")
    for a in accounts:
        _print_account(a)


def _order_cmd(side: str) -> Callable[..., None]:
    @click.argument("account_id")
    @click.argument("contract")
    @click.argument("quantity", type=float)
    @click.option("--limit", "limit_price", type=float, default=None, help="Limit price per share (default: market).")
    @click.option("--client-order-id", default=None, help="Idempotency key (default: a new random one).")
    @common
    def cmd(
        account_id: str,
        contract: str,
        quantity: float,
        limit_price: float | None,
        client_order_id: str | None,
        target: str | None,
        token: str | None,
        as_json: bool,
    ) -> None:
        req = pb.PlaceOrderRequest(
            account_id=account_id,
            client_order_id=client_order_id or uuid.uuid4().hex,
            contract=contract,
            side=side,
            quantity=quantity,
        )
        if limit_price is not None:
            req.limit_price = limit_price
        r = _call(target, lambda s: s.PlaceOrder(req, metadata=_metadata(token)))
        click.echo(_dump(r.order)) if as_json else _print_order(r.order)

    cmd.__doc__ = f"{side.title()} CONTRACT (OCC symbol) at the {'ask' if side == 'BUY' else 'bid'} of the live quote."
    return cmd


cli.command(name="buy")(_order_cmd("BUY"))
cli.command(name="sell")(_order_cmd("SELL"))


@cli.command()
@click.argument("account_id")
@click.option("--max-premium-per-trade", type=float, default=None, help="Dollars per order.")
@click.option("--max-total-premium", type=float, default=None, help="Dollars of long premium at risk.")
@click.option("--max-positions-per-underlying", type=int, default=None)
@click.option("--max-open-positions", type=int, default=None)
@click.option("--max-daily-loss", type=float, default=None, help="Dollars; halts new buys for the session.")
@click.option("--max-net-delta", type=float, default=None, help="|beta-weighted dollar delta| (SPY dollars).")
@click.option("--max-net-vega", type=float, default=None, help="|dollars per vol point|.")
@click.option("--allow-naked-shorts", is_flag=True, help="Allow selling options not held.")
@common
def limits(account_id: str, allow_naked_shorts: bool, target: str | None, token: str | None, as_json: bool,
           **values: float | int | None) -> None:  # fmt: skip
    """Replace the account's risk limits (options not given are no limit)."""
    given: dict[str, Any] = {k: v for k, v in values.items() if k in LIMIT_OPTIONS and v is not None}
    lim = pb.RiskLimits(**given)
    if allow_naked_shorts:
        lim.allow_naked_shorts = True
    r = _call(
        target,
        lambda s: s.SetLimits(pb.SetLimitsRequest(account_id=account_id, limits=lim), metadata=_metadata(token)),
    )
    click.echo(_dump(r.account)) if as_json else _print_account(r.account)


@cli.command()
@click.argument("account_id")
@click.option("--strategy", "strategies", multiple=True, help="Strategy to follow (repeatable; default: all).")
@click.option("--symbol", "symbols", multiple=True, help="Underlying to follow (repeatable; default: all).")
@click.option("--min-confidence", type=float, default=0.0, show_default=True)
@click.option("--contracts", type=float, default=1, show_default=True, help="Contracts per signal.")
@click.option("--signal-size", is_flag=True, help="Use the signal's suggested size when it has one.")
@click.option("--off", is_flag=True, help="Stop following.")
@common
def follow(
    account_id: str,
    strategies: tuple[str, ...],
    symbols: tuple[str, ...],
    min_confidence: float,
    contracts: float,
    signal_size: bool,
    off: bool,
    target: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Follow signals: enter on each matching signal, exit on its target, stop or horizon."""
    rule = pb.FollowRule(
        enabled=not off,
        strategies=list(strategies),
        symbols=list(symbols),
        min_confidence=min_confidence,
        contracts_per_signal=contracts,
        use_signal_size=signal_size,
    )
    r = _call(
        target,
        lambda s: s.SetFollowRule(pb.SetFollowRuleRequest(account_id=account_id, rule=rule), metadata=_metadata(token)),
    )
    click.echo(_dump(r.account)) if as_json else _print_account(r.account)


@cli.command()
@click.argument("account_id")
@click.option("--since", default="", help="Replay stored fills and limit events after this seq first.")
@common
def watch(account_id: str, since: str, target: str | None, token: str | None, as_json: bool) -> None:
    """Stream fills, limit events and marks (Ctrl-C to stop)."""

    async def run(stub: portfolio_pb2_grpc.PortfolioServiceStub) -> None:
        req = pb.WatchAccountRequest(account_id=account_id, since=since)
        async for m in stub.WatchAccount(req, metadata=_metadata(token)):
            if m.WhichOneof("event") == "error":
                continue  # the stream's trailer: the same status follows as an error
            if as_json:
                click.echo(_dump(m))
                continue
            kind = m.WhichOneof("event")
            if kind == "fill":
                console.print(f"[{m.seq}] FILL ", end="")
                _print_order(m.fill)
            elif kind == "limit":
                console.print(f"[{m.seq}] [red]LIMIT {m.limit.name}[/red]: {m.limit.message}")
            else:
                k = m.mark
                console.print(
                    f"[dim]MARK equity {_money(k.equity)}  unrealised {_money(k.unrealized_pnl)}  "
                    f"realised {_money(k.realized_pnl)}  $delta {_money(k.greeks.dollar_delta)}  "
                    f"vega {_money(k.greeks.vega)}  theta {_money(k.greeks.theta)}[/dim]"
                )

    _call(target, run)
