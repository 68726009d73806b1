"""``aiots backfill``: Databento Historical backfill through the IngestionService, with a progress bar.

Chunked by day x schema and resumable: an interrupted run prints its job id; ``--resume JOB``
continues with the chunks not yet done. The estimated cost (metadata.get_cost) is checked first.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import click
import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from aiots.core import conventions as cv
from aiots.services.cli.collect import _target
from aiots.v1 import ingestion_pb2, ingestion_pb2_grpc

console = Console()


def _ts(d: dt.datetime) -> Timestamp:
    """A naive datetime is UTC (the options say so)."""
    return cv.ns_to_pb(cv.datetime_to_ns(d))


async def _run(target: str, req: ingestion_pb2.BackfillRequest) -> None:
    async with grpc.aio.insecure_channel(target) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        job = ""
        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[records]} records  ${task.fields[cost]:.2f}"), TimeRemainingColumn(),
            console=console,
        ) as bar:  # fmt: skip
            task = bar.add_task("backfill", total=None, records=0, cost=0.0)
            try:
                async for p in stub.Backfill(req):
                    if p.HasField("error"):
                        continue  # the stream's trailer: the same status follows as the error below
                    job = p.job_id
                    bar.update(task, total=p.chunks_total, completed=p.chunks_done, records=p.records,
                               cost=p.cost_usd, description=p.current or "backfill")  # fmt: skip
            except grpc.aio.AioRpcError as exc:
                hint = f" (resume with --resume {job})" if job else ""
                raise click.ClickException(f"{exc.code().name}: {exc.details()}{hint}") from None
            except (KeyboardInterrupt, asyncio.CancelledError):
                console.print(f"interrupted; resume with: aiots backfill --resume {job} ...")
                raise
        console.print(f"done: job {job}")


@click.command(name="backfill")
@click.argument("symbols", nargs=-1)
@click.option("--schema", "schemas", multiple=True, help="trades, tbbo, ohlcv-1m, ... (default trades + tbbo)")
@click.option("--start", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M"]), required=True, help="UTC")
@click.option("--end", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M"]), required=True, help="UTC, exclusive")
@click.option("--dataset", default="", help="Databento dataset (default: the equities dataset)")
@click.option("--max-cost", type=float, default=0.0, help="USD accepted without asking (0: configured limit)")
@click.option("--resume", "resume", default="", help="job id of an interrupted backfill")
@click.option("--target", default=None, help="host:port of the IngestionService (default 127.0.0.1:8002)")
def cli(
    symbols: tuple[str, ...], schemas: tuple[str, ...], start: dt.datetime, end: dt.datetime, dataset: str,
    max_cost: float, resume: str, target: str | None,
) -> None:  # fmt: skip
    """Backfill SYMBOLS from Databento Historical into PostgreSQL (resumable, with ETA)."""
    req = ingestion_pb2.BackfillRequest(
        symbols=list(symbols), schemas=list(schemas), start=_ts(start), end=_ts(end), dataset=dataset,
        max_cost_usd=max_cost, resume_job_id=resume,
    )  # fmt: skip
    asyncio.run(_run(_target(target), req))
