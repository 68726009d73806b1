"""Runs the simulator into a pipeline (scaled real time, or as fast as asked) and seeds history."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiots.core import conventions as cv
from aiots.services.ingestion import store
from aiots.services.ingestion.normalize import SOURCE_SIMULATOR, Normalizer
from aiots.services.ingestion.pipeline import Pipeline
from aiots.services.ingestion.sources.replay import Settle
from aiots.services.ingestion.sources.simulator.clock import ClockStatus
from aiots.services.ingestion.sources.simulator.history import history_batches
from aiots.services.ingestion.sources.simulator.records import MarketSimulator

log = logging.getLogger(__name__)
CLOSED_POLL_S = 5.0  # wall seconds between checks while the simulated market is closed
# Market seconds between option chain quotes. Every 5 s was ~27,000 option quotes per simulated minute
# for the nine default symbols, more than the pipeline and its consumers carry at x60 on a small
# machine (measured: x12). Every 15 s keeps every quote well inside the 60 s quote-age limit.
OPTION_EVERY_S = 15.0


async def seed_history(pool: Any, writer: Any, sim: MarketSimulator, sessions: int, seed: int) -> bool:
    """Write the seeded history once per database and anchor session (marker in ``aiots_meta``)."""
    marker = f"seed={seed};sessions={sessions};anchor={sim.anchor.isoformat()}"
    if await store.simulator_history_marker(pool) == marker:
        return False
    batches = await asyncio.to_thread(history_batches, sim, sessions)
    for b in batches:
        await writer.put(b)
    await writer.flush()
    await store.set_simulator_history_marker(pool, marker)
    return True


class SimulatorSource:
    """Runs the simulator in (scaled) real time into a pipeline until stopped.

    Each tick advances ``tick_s`` market seconds and waits ``tick_s / speed`` wall seconds. At each
    session start the price book gets the previous session's close (``prev_close``). ``session``:
    replay that NYSE session from its regular open instead of following the wall clock.

    ``settle`` (lockstep): after each tick that closed a minute's bars, wait until the consumers have
    handled everything published (analytics' features, the signal engine's decision), as the file
    replay does. The engine then decides each bar on the option quotes known at its close, as the
    harness and the backtest feed it; without it, at ``speed`` 60 on a loaded machine a decision
    lagged the bar by several market seconds and priced newer quotes (a different contract picked).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        symbols: Sequence[str],
        *,
        seed: int = 7,
        speed: float = 1.0,
        tick_s: float = 1.0,
        option_every_s: float = OPTION_EVERY_S,
        start_ns: int | None = None,
        rate: float = cv.DEFAULT_RATE,
        session: dt.date | None = None,
        settle: Settle | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.sim = MarketSimulator(symbols, seed, start_ns, rate=rate, session=session)
        self.norm = Normalizer(SOURCE_SIMULATOR, dataset="SIM")
        self.speed = speed
        self.tick_s = tick_s
        self.option_every_s = option_every_s
        self.records = 0
        self._since_opt = option_every_s
        self.settle = settle
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def clock_status(self) -> ClockStatus:
        """Where the simulated market stands (live, replaying the last session, or closed)."""
        return self.sim.clock.status(time.time_ns())

    async def setup(self) -> None:
        """The underlyings' symbology (the chains are listed when the first session opens)."""
        await self.pipeline.process(self.norm.records(self.sim.mapping_records()))

    async def _tick(self, wall_ns: int | None) -> bool:
        """One tick; False while the simulated market is closed."""
        self._since_opt += self.tick_s
        with_opts = self._since_opt >= self.option_every_s
        session = self.sim.clock.session.date
        t0 = self.sim.now_ns
        recs = self.sim.step(self.tick_s, option_quotes=with_opts, wall_ns=wall_ns)
        if not recs:
            return False
        if with_opts:
            self._since_opt = 0.0
        if self.sim.clock.session.date != session or self.records == 0:
            await self._prev_closes()
        self.records += len(recs)
        await self.pipeline.process(self.norm.records(recs))
        await self.pipeline.close_bars(self.sim.now_ns)
        if self.settle is not None and self.sim.now_ns // cv.NS_PER_MIN != t0 // cv.NS_PER_MIN:
            await self.settle()  # a minute's bars closed: every consumer decides on them first
        return True

    async def _prev_closes(self) -> None:
        prices = self.pipeline.prices
        if prices is None:
            return
        ts = self.sim.clock.session.pre_open_ns
        for sym, st in self.sim.state.items():
            with contextlib.suppress(Exception):  # the cache is optional
                await prices.set_prev_close(sym, st.prev_close, ts)

    async def run_steps(self, n: int) -> None:
        """Advance ``n`` ticks as fast as possible (tests, benchmarks)."""
        for _ in range(n):
            await self._tick(None)

    async def run(self) -> None:
        """Tick every ``tick_s / speed`` wall seconds until :meth:`stop`."""
        await self.setup()
        while not self._stop.is_set():
            ticked = await self._tick(time.time_ns())
            wait = self.tick_s / self.speed if ticked else CLOSED_POLL_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), wait)
