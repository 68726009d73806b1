"""``aiots replay FILE...``: replay DBN files (raw or zstd), or the backtest's 1-minute bar and option
quote-bar CSVs, into PostgreSQL (and the bus when Redis is set)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.console import Console

from aiots.services.common.settings import get_settings
from aiots.services.ingestion.normalize import SOURCE_REPLAY
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.replay import ReplayResult, Step, bus_settle, replay_files, replay_steps
from aiots.services.stack.replay import is_dbn, read_steps
from aiots.services.storage.pool import create_pool, resolve_dsn
from aiots.services.storage.writer import Writer

console = Console()


async def _run(files: list[Path], speed: float, bars: bool, steps: list[Step] | None) -> None:
    s = get_settings()
    dsn = await resolve_dsn(s)
    pool = await create_pool(s, dsn=dsn)
    bus = None
    if not s.embedded_bus:
        from aiots.services.bus.factory import create_bus

        bus = create_bus(s)
    w = Writer(dsn, spill_dir=s.ingestion.spill_dir, queue_records=s.ingestion.queue_size,
               batch_records=s.ingestion.batch_size, flush_interval_s=s.ingestion.flush_interval_s)  # fmt: skip
    await w.start()
    try:
        dbn = [f for f in files if is_dbn(f)]
        res = ReplayResult()
        if dbn:
            res = await replay_files(
                dbn, Pipeline(writer=w, bus=bus, source=SOURCE_REPLAY, build_bars=bars), speed=speed
            )
        if steps is not None:  # bar/quote files, in event-time order (the backtest's clock)
            pipe = Pipeline(writer=w, bus=bus, source=SOURCE_REPLAY, build_bars=False)
            more = await replay_steps(steps, pipe, speed=speed, settle=bus_settle(bus) if bus is not None else None)
            res.files, res.records, res.seconds = len(files), res.records + more.records, res.seconds + more.seconds
        await w.drained(60)
    finally:
        await w.close()
        await pool.close()
        if bus is not None:
            await bus.close()
    new = ", ".join(f"{t} {n}" for t, n in sorted(w.stats.written.items())) or "none"
    console.print(
        f"{res.files} file(s), {res.records} records in {res.seconds:.2f}s "
        f"({res.records / max(res.seconds, 1e-9):,.0f} rec/s); new rows stored: {new}; "
        f"{res.quarantined} quarantined chunk(s), {w.stats.spilled_records} still spilled"
    )


@click.command(name="replay")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--speed", type=float, default=0.0, help="0: as fast as possible; 1: recorded pace; N: N x faster")
@click.option("--bars/--no-bars", default=True, help="build 1s/1m bars from trades")
def cli(files: tuple[Path, ...], speed: float, bars: bool) -> None:
    """Replay DBN FILES, or 1-minute bar and option quote-bar CSVs (as `aiots backtest` reads them),
    through the normal pipeline (idempotent: replaying twice stores once)."""
    if speed < 0:
        raise click.BadParameter("must be >= 0", param_hint="--speed")
    others = [f for f in files if not is_dbn(f)]
    try:
        steps = read_steps(others) if others else None
    except ValueError as exc:  # DataFileError names the file, row and column
        raise click.ClickException(str(exc)) from None
    asyncio.run(_run(list(files), speed, bars, steps))
