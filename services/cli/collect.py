"""``aiots collect start|stop|status``: control market-data collection on the IngestionService (gRPC)."""

from __future__ import annotations

import asyncio

import click
import grpc
from rich.console import Console
from rich.table import Table

from aiots.core import conventions as cv
from aiots.services.common.settings import get_settings
from aiots.v1 import ingestion_pb2, ingestion_pb2_grpc

console = Console()
SOURCES = {"default": 0, "live": 1, "simulator": 4}


def _target(target: str | None) -> str:
    s = get_settings().ingestion
    return target or f"{s.host}:{s.port}"


async def _call(target: str, fn: str, req: object) -> object:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        try:
            return await getattr(stub, fn)(req)
        except grpc.aio.AioRpcError as exc:
            raise click.ClickException(f"{exc.code().name}: {exc.details()}") from None


@click.group(name="collect")
@click.option("--target", default=None, help="host:port of the IngestionService (default 127.0.0.1:8002)")
@click.pass_context
def cli(ctx: click.Context, target: str | None) -> None:
    """Start, stop or inspect live (or simulated) collection."""
    ctx.ensure_object(dict)
    ctx.obj["target"] = _target(target)


@cli.command()
@click.argument("symbols", nargs=-1)
@click.option("--schema", "schemas", multiple=True, help="trades, tbbo, mbp-1, cbbo-1s, ohlcv-1s, ohlcv-1m...")
@click.option("--source", type=click.Choice(list(SOURCES)), default="default")
@click.option("--options/--no-options", default=False, help="include the underlyings' options")
@click.pass_context
def start(ctx: click.Context, symbols: tuple[str, ...], schemas: tuple[str, ...], source: str, options: bool) -> None:
    """Start collecting SYMBOLS (all configured when none)."""
    req = ingestion_pb2.StartCollectionRequest(
        symbols=list(symbols),
        schemas=list(schemas),
        source=SOURCES[source],  # type: ignore[arg-type]
        include_options=options,
    )
    r = asyncio.run(_call(ctx.obj["target"], "StartCollection", req))
    console.print(f"{'started' if r.started else 'already running'}: job {r.job_id} - {r.message}")  # type: ignore[attr-defined]


@cli.command()
@click.argument("symbols", nargs=-1)
@click.pass_context
def stop(ctx: click.Context, symbols: tuple[str, ...]) -> None:
    """Stop collecting SYMBOLS (everything when none)."""
    r = asyncio.run(
        _call(
            ctx.obj["target"],
            "StopCollection",
            ingestion_pb2.StopCollectionRequest(symbols=list(symbols), all=not symbols),
        )
    )
    console.print(f"stopped jobs: {', '.join(r.job_ids) or 'none'}")  # type: ignore[attr-defined]


@cli.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Per symbol and schema: records, last event, lag, errors."""
    r = asyncio.run(_call(ctx.obj["target"], "GetCollectionStatus", ingestion_pb2.GetCollectionStatusRequest()))
    t = Table(title="collection " + ("running" if r.running else "stopped"))  # type: ignore[attr-defined]
    for c in ("symbol", "schema", "records", "last event (UTC)", "lag s", "errors"):
        t.add_column(c)
    for s in r.streams:  # type: ignore[attr-defined]
        last = cv.ns_to_datetime(cv.pb_to_ns(s.last_event)).strftime("%Y-%m-%d %H:%M:%S")
        t.add_row(s.symbol, s.schema, str(s.records), last, f"{s.lag_seconds:.1f}", str(s.errors))
    console.print(t)
    console.print(
        f"pending {r.pending_records}  spilled {r.spilled_records}  data-quality events {r.data_quality_events}"  # type: ignore[attr-defined]
    )
    if r.HasField("market_clock"):  # type: ignore[attr-defined]
        console.print(f"market: {r.market_clock.note}")  # type: ignore[attr-defined]
