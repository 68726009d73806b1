"""``aiots chain SYMBOL``: the option chain with IVs and Greeks (AnalyticsService.GetOptionChain).

Prices are dollars per share (multiply by the contract multiplier, 100, for money per contract);
IV annual; Greeks in trader units (theta $/day, vega $/vol point). ``--json`` prints the response as
JSON (proto field names) for scripts.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from typing import Any

import click

from aiots.services.common.settings import get_settings

RPC_TIMEOUT_S = 30.0
PIPE_WIDTH = 200


@click.command(name="chain")
@click.argument("symbol")
@click.option("--expiry", default="", help="Only this expiry (YYYY-MM-DD).")
@click.option("--target", default=None, help="Analytics gRPC address host:port [analytics.host:analytics.port].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most N contracts.")
def cli(symbol: str, expiry: str, target: str | None, as_json: bool, limit: int | None) -> None:
    """Show SYMBOL's option chain (bid/ask/mid, volume, OI, IV, Greeks)."""
    s = get_settings()
    addr = target or f"{s.analytics.host}:{s.analytics.port}"
    resp = asyncio.run(_fetch(addr, symbol.strip().upper(), expiry))
    if limit is not None:
        del resp.contracts[limit:]
    if as_json:
        from google.protobuf.json_format import MessageToDict

        doc = MessageToDict(resp, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
        click.echo(json.dumps(doc, indent=2, default=str))
        return
    _table(resp)


async def _fetch(addr: str, symbol: str, expiry: str) -> Any:
    import grpc

    from aiots.services.common.telemetry import open_channel
    from aiots.v1 import analytics_pb2, analytics_pb2_grpc

    async with open_channel(addr) as ch:
        stub = analytics_pb2_grpc.AnalyticsServiceStub(ch)
        try:
            return await stub.GetOptionChain(
                analytics_pb2.GetOptionChainRequest(symbol=symbol, expiry=expiry), timeout=RPC_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as exc:
            raise click.ClickException(rpc_error_line(exc, addr)) from None


def rpc_error_line(exc: Any, addr: str) -> str:
    """One line for a failed RPC: the code, the server's message, and what to do."""
    import grpc

    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"analytics service unreachable at {addr}: start it with 'aiots up' (or pass --target host:port)"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"analytics service at {addr} did not answer within {RPC_TIMEOUT_S:.0f} s"
    return f"{code.name}: {exc.details()}"


def _fmt(x: float, spec: str = ".2f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def _table(resp: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from aiots.v1 import common_pb2

    ts = resp.as_of.ToDatetime().isoformat() + "Z" if resp.HasField("as_of") else "-"
    t = Table(
        title=f"{resp.symbol} option chain · underlying ${resp.underlying_price:.2f} · as of {ts}",
        caption="prices $/share (x100 per contract) · theta $/day · vega $/vol pt",
    )
    for col in ("expiry", "strike", "right", "bid", "ask", "mid", "last", "vol", "OI", "IV", "delta", "gamma",
                "theta", "vega"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("expiry", "right") else "right")
    for q in resp.contracts:
        c, g = q.contract, q.greeks
        right = "C" if c.right == common_pb2.OPTION_RIGHT_CALL else "P"
        iv = f"{q.iv * 100:.1f}%" if not math.isnan(q.iv) else (q.iv_reason or "-")
        t.add_row(
            c.expiry, _fmt(c.strike), right, _fmt(q.bid), _fmt(q.ask), _fmt(q.mid), _fmt(q.last),
            _fmt(q.volume, ".0f"), _fmt(q.open_interest, ".0f"), iv, _fmt(g.delta, ".3f"), _fmt(g.gamma, ".4f"),
            _fmt(g.theta, ".3f"), _fmt(g.vega, ".3f"),
        )  # fmt: skip
    # piped output is not squeezed to 80 columns (scripts should use --json anyway)
    Console(width=None if sys.stdout.isatty() else PIPE_WIDTH).print(t)
