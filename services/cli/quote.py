"""``aiots quote SYMBOL [--json]``: the latest price snapshot from the cache service (gRPC)."""

from __future__ import annotations

import asyncio
import json

import click

from aiots.core import conventions as cv
from aiots.services.common.settings import get_settings


async def fetch_quote(target: str, symbol: str, timeout_s: float) -> bytes:
    """GetStockPrice over gRPC; returns the serialised StockPrice."""
    import grpc

    from aiots.v1 import cache_pb2, cache_pb2_grpc

    async with grpc.aio.insecure_channel(target) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        try:
            resp = await stub.GetStockPrice(cache_pb2.GetStockPriceRequest(symbol=symbol), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name if exc.code() else "UNKNOWN"
            raise click.ClickException(f"{code}: {exc.details()} (cache service at {target})") from exc
    return bytes(resp.price.SerializeToString())


@click.command(name="quote")
@click.argument("symbol")
@click.option("--json", "as_json", is_flag=True, help="Print the snapshot as JSON.")
@click.option("--target", default=None, help="host:port of the cache service (default: settings.cache).")
@click.option("--timeout", "timeout_s", default=5.0, show_default=True, help="RPC deadline in seconds.")
def cli(symbol: str, as_json: bool, target: str | None, timeout_s: float) -> None:
    """Latest trade, bid/ask, day open/high/low, previous close and change of SYMBOL."""
    from google.protobuf import json_format

    from aiots.v1 import cache_pb2

    cfg = get_settings().cache
    tgt = target or f"{cfg.host}:{cfg.port}"
    p = cache_pb2.StockPrice.FromString(asyncio.run(fetch_quote(tgt, symbol, timeout_s)))
    if as_json:
        click.echo(json.dumps(json_format.MessageToDict(p, preserving_proto_field_name=True), indent=2))
        return
    as_of = cv.ns_to_ny(cv.pb_to_ns(p.as_of))
    sign = "+" if p.change >= 0 else ""
    click.echo(f"{p.symbol}  {p.last:,.2f}  {sign}{p.change:,.2f} ({sign}{p.change_pct:.2f}%)")
    click.echo(f"  bid {p.bid:,.2f}  ask {p.ask:,.2f}")
    click.echo(f"  open {p.open:,.2f}  high {p.high:,.2f}  low {p.low:,.2f}  prev close {p.prev_close:,.2f}")
    click.echo(f"  volume {p.volume:,.0f}  as of {as_of:%Y-%m-%d %H:%M:%S %Z}")
