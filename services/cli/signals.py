"""``aiots signals follow|list|show``: trade ideas from the command line.

Talks gRPC to the SignalService (default 127.0.0.1:8004, or ``--target`` e.g. the gateway on
127.0.0.1:8000 with ``--token``). ``--json`` prints one JSON object per line for scripts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import click
import grpc
from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.table import Table

from aiots.core import conventions as cv
from aiots.services.common.settings import get_settings
from aiots.v1 import common_pb2, signals_pb2, signals_pb2_grpc

console = Console()
DIRECTION = {signals_pb2.DIRECTION_BULLISH: "BULL", signals_pb2.DIRECTION_BEARISH: "BEAR"}
STATUS = {
    signals_pb2.SIGNAL_STATUS_OPEN: "open",
    signals_pb2.SIGNAL_STATUS_TARGET_HIT: "target hit",
    signals_pb2.SIGNAL_STATUS_STOPPED: "stopped",
    signals_pb2.SIGNAL_STATUS_EXPIRED: "expired",
    signals_pb2.SIGNAL_STATUS_CANCELLED: "cancelled",
}
RESUBSCRIBE_PAUSE_S = 1.0
#: stream ends after which a subscriber resumes (server restarting, subscriber queue overflow)
RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


async def follow_stream(
    stub: signals_pb2_grpc.SignalServiceStub,
    request: signals_pb2.SubscribeSignalsRequest,
    *,
    metadata: Sequence[tuple[str, str]] | None = None,
    pause_s: float = RESUBSCRIBE_PAUSE_S,
) -> AsyncIterator[signals_pb2.SubscribeSignalsResponse]:
    """SubscribeSignals that resumes after a resumable end with ``since`` = the last *new* signal's id
    (an update carries an older signal's id: resuming from it would replay signals already seen).
    Other errors are raised; the caller stops by closing the iterator (or cancelling its task)."""
    req = signals_pb2.SubscribeSignalsRequest()
    req.CopyFrom(request)
    while True:
        try:
            async for m in stub.SubscribeSignals(req, metadata=metadata):
                if m.WhichOneof("event") == "error":
                    continue  # the stream's trailer: the same status follows as the error below
                if m.WhichOneof("event") == "signal" and m.signal.id:
                    req.since = m.signal.id
                yield m
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in RESUMABLE:
                raise
        await asyncio.sleep(pause_s)


def _target(target: str | None) -> str:
    s = get_settings().signals
    return target or f"{s.host}:{s.port}"


def _metadata(token: str | None) -> Sequence[tuple[str, str]] | None:
    return (("authorization", f"Bearer {token}"),) if token else None


def _ts(t: Any) -> str:
    return cv.ns_to_datetime(cv.pb_to_ns(t)).strftime("%Y-%m-%d %H:%M:%S")


def _line(s: signals_pb2.Signal) -> str:
    c = s.contract
    return (
        f"{_ts(s.created_at)}  {s.id}  {s.symbol:<5} {DIRECTION.get(s.direction, '?')} {s.strategy:<18} "
        f"{c.occ_symbol}  entry {s.entry_price:.2f} (bid {s.bid:.2f}/ask {s.ask:.2f})  "
        f"target {s.target_price:.2f}  stop {s.stop_price:.2f}  conf {s.confidence:.2f}  "
        f"R:R {s.reward_risk:.2f}  [{STATUS.get(s.status, '?')}]"
    )


def _dump(msg: Any) -> str:
    return json.dumps(MessageToDict(msg, preserving_proto_field_name=True))


def _rpc_error(exc: grpc.aio.AioRpcError, target: str) -> click.ClickException:
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        return click.ClickException(f"signals service not reachable at {target}: start it with `make run`")
    return click.ClickException(f"{exc.code().name}: {exc.details()}")


@click.group(name="signals")
def cli() -> None:
    """Follow, list and inspect trade signals."""


@cli.command()
@click.option("--symbols", default="", help="Comma-separated tickers (default: all).")
@click.option("--strategies", default="", help="Comma-separated strategy names (default: all).")
@click.option("--min-confidence", type=float, default=0.0, show_default=True)
@click.option("--since", default="", help="Replay stored signals after this id (ULID) or RFC 3339 time first.")
@click.option("--updates/--no-updates", default=True, show_default=True, help="Also show status changes.")
@click.option("--target", default=None, help="host:port of SignalService or the gateway.")
@click.option("--token", envvar="AIOTS_TOKEN", default=None, help="Bearer token (needed through the gateway).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def follow(
    symbols: str,
    strategies: str,
    min_confidence: float,
    since: str,
    updates: bool,
    target: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Stream signals as they are made (Ctrl-C to stop). Reconnects resume after the last signal seen."""
    req = signals_pb2.SubscribeSignalsRequest(
        symbols=[symbols] if symbols else [],
        strategies=[strategies] if strategies else [],
        min_confidence=min_confidence,
        include_updates=updates,
        since=since,
    )
    addr = _target(target)

    async def run() -> None:
        async with grpc.aio.insecure_channel(addr) as ch:
            stub = signals_pb2_grpc.SignalServiceStub(ch)
            try:
                async for m in follow_stream(stub, req, metadata=_metadata(token)):
                    kind = m.WhichOneof("event")
                    if kind == "heartbeat":
                        continue
                    sig = m.signal if kind == "signal" else m.update
                    if as_json:
                        click.echo(_dump(m))
                    else:
                        click.echo(("UPDATE " if kind == "update" else "SIGNAL ") + _line(sig))
            except grpc.aio.AioRpcError as exc:
                raise _rpc_error(exc, addr) from None

    asyncio.run(run())


@cli.command(name="list")
@click.option("--symbols", default="", help="Comma-separated tickers (default: all).")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--target", default=None, help="host:port of SignalService or the gateway.")
@click.option("--token", envvar="AIOTS_TOKEN", default=None, help="Bearer token (needed through the gateway).")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def list_(symbols: str, limit: int, target: str | None, token: str | None, as_json: bool) -> None:
    """Recent signals, newest first."""
    addr = _target(target)

    async def run() -> signals_pb2.ListSignalsResponse:
        async with grpc.aio.insecure_channel(addr) as ch:
            stub = signals_pb2_grpc.SignalServiceStub(ch)
            req = signals_pb2.ListSignalsRequest(
                symbols=[symbols] if symbols else [], page=common_pb2.PageRequest(page_size=limit)
            )
            try:
                resp: signals_pb2.ListSignalsResponse = await stub.ListSignals(req, metadata=_metadata(token))
                return resp
            except grpc.aio.AioRpcError as exc:
                raise _rpc_error(exc, addr) from None

    resp = asyncio.run(run())
    if as_json:
        click.echo(_dump(resp))
        return
    cols = ("created (UTC)", "id", "symbol", "dir", "strategy", "contract", "entry", "target", "stop", "conf", "status")
    t = Table(*cols)
    for s in resp.signals:
        t.add_row(
            _ts(s.created_at),
            s.id,
            s.symbol,
            DIRECTION.get(s.direction, "?"),
            s.strategy,
            s.contract.occ_symbol,
            f"{s.entry_price:.2f}",
            f"{s.target_price:.2f}",
            f"{s.stop_price:.2f}",
            f"{s.confidence:.2f}",
            STATUS.get(s.status, "?"),
        )
    console.print(t)


@cli.command()
@click.argument("signal_id")
@click.option("--target", default=None, help="host:port of SignalService or the gateway.")
@click.option("--token", envvar="AIOTS_TOKEN", default=None, help="Bearer token (needed through the gateway).")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def show(signal_id: str, target: str | None, token: str | None, as_json: bool) -> None:
    """One signal with its reasons and status history."""
    addr = _target(target)

    async def run() -> signals_pb2.GetSignalResponse:
        async with grpc.aio.insecure_channel(addr) as ch:
            stub = signals_pb2_grpc.SignalServiceStub(ch)
            try:
                req = signals_pb2.GetSignalRequest(id=signal_id)
                resp: signals_pb2.GetSignalResponse = await stub.GetSignal(req, metadata=_metadata(token))
                return resp
            except grpc.aio.AioRpcError as exc:
                raise _rpc_error(exc, addr) from None

    s = asyncio.run(run()).signal
    if as_json:
        click.echo(_dump(s))
        return
    click.echo(_line(s))
    g = s.greeks
    click.echo(
        f"  IV {s.iv:.1%}  IV rank {s.iv_rank:.0f}  delta {g.delta:.2f}  gamma {g.gamma:.3f}  "
        f"theta {g.theta:.3f}/day  vega {g.vega:.3f}/pt  expected {s.expected_return_pct:.1f}%  "
        f"horizon {_ts(s.horizon)}"
    )
    for r in s.reasons:
        click.echo(f"  why: {r.description} ({r.indicator} = {r.value:.4g} vs {r.threshold:.4g})")
    for h in s.history:
        click.echo(f"  {_ts(h.at)}  {STATUS.get(h.status, '?'):<10} at {h.option_price:.2f}  {h.note}")
    if s.HasField("outcome"):
        o = s.outcome
        click.echo(f"  outcome: exit {o.exit_price:.2f} at {_ts(o.exit_time)}, P&L {o.pnl_pct:+.1f}%")
