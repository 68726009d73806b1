"""Replay recorded market data through the pipeline: DBN files, or prepared time steps.

Speed: ``speed=0`` as fast as possible; ``speed=1`` at the recorded pace (ts_event gaps), ``N``
N times faster. Records are decoded with ``databento_dbn.DBNDecoder`` in chunks and normalised
by record type (:class:`~aiots.services.ingestion.normalize.Normalizer`); undecodable bytes
(malformed or truncated DBN) are quarantined (stored in ``quarantine`` and counted) and the
replay continues with the next file.

Time steps (:func:`replay_steps`): batches already normalised and grouped by event time (the
composition root builds them from bar and option-quote files with the backtest's readers), each
published as one step. With a ``settle`` callback the replay is **lockstep**: after each step it
waits until every consumer has handled everything published (the bus's backlog is empty), so the
services see the steps in exactly their order, e.g. the option quotes known at a bar's close before
that bar, whatever the speed and however the consumers' tasks are scheduled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import databento_dbn as _dbn

from aiots.core import conventions as cv
from aiots.services.ingestion.normalize import SOURCE_REPLAY, UNDEF_TS, Batch, Normalizer
from aiots.services.ingestion.pipeline import Pipeline

log = logging.getLogger(__name__)
dbn: Any = _dbn

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK_BYTES = 4 << 20
NS = cv.NS_PER_S


@dataclass
class ReplayResult:
    """What a replay did."""

    files: int = 0
    records: int = 0
    stored_rows: int = 0
    quarantined: int = 0
    seconds: float = 0.0


def decode_chunks(
    chunks: Iterable[bytes], normalizer: Normalizer, *, compressed: bool
) -> Iterable[tuple[list[Any], bytes | None]]:
    """Yield (records, None) per decoded chunk; on a decode error yield ([], undecodable bytes) and stop."""
    dec = dbn.DBNDecoder(compression=dbn.Compression.ZSTD if compressed else dbn.Compression.NONE)
    for chunk in chunks:
        try:
            dec.write(chunk)
            recs = dec.decode()
        except Exception as exc:
            log.warning("undecodable DBN data quarantined", extra={"error": str(exc)})
            yield [], chunk
            return
        out = []
        for r in recs:
            if isinstance(r, dbn.Metadata):
                normalizer.load_metadata(r)
            else:
                out.append(r)
        yield out, None
    try:
        rest = bytes(dec.buffer())
    except Exception:
        rest = b""
    if rest:
        yield [], rest  # truncated trailing record


def _is_zstd(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == ZSTD_MAGIC


def _file_chunks(path: Path) -> Iterable[bytes]:
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK_BYTES)
            if not b:
                return
            yield b


async def replay_file(
    path: Path, pipeline: Pipeline, *, speed: float = 0.0, max_batch: int = 200_000, max_gap_s: float = 1.0
) -> AsyncIterator[tuple[int, Batch]]:
    """Replay one file; yields (records so far, batch) after each processed batch."""
    compressed = await asyncio.to_thread(_is_zstd, path)
    norm = Normalizer(SOURCE_REPLAY)
    total = 0
    if speed <= 0:
        fast = await asyncio.to_thread(_try_arrays, path)
        if fast is not None:
            meta, rtype, arrays = fast
            norm.load_metadata(meta)
            for arr in arrays:
                b = norm.array(rtype, arr)
                await pipeline.process(b)
                total += int(arr.shape[0])
                yield total, b
            await _finish(norm, pipeline)
            return
    t_wall0 = time.monotonic()
    t_ev0: int | None = None
    for recs, bad in decode_chunks(_file_chunks(path), norm, compressed=compressed):
        if bad is not None:
            b = Batch()
            b.rows["quarantine"].append(("replay", f"undecodable DBN in {path.name}", bad[-(1 << 20) :]))
            b.rows["data_quality_events"].append(
                ("replay", "malformed_dbn", None, None, f"{path.name}: {len(bad)} bytes")
            )
            await pipeline.process(b)
            yield total, b
            continue
        for i in range(0, len(recs), max_batch):
            part = recs[i : i + max_batch]
            if speed > 0 and t_ev0 is None:
                t_ev0 = next((int(r.ts_event) for r in part if 0 < int(r.ts_event) < UNDEF_TS), None)
            if speed > 0 and t_ev0 is not None:
                step = max(1, len(part) // 1000)
                # pace in sub-chunks so the recorded timing is kept within ~1/1000 of the chunk
                for j in range(0, len(part), step):
                    sub = part[j : j + step]
                    ts_sub = int(sub[0].ts_event)
                    if 0 < ts_sub < UNDEF_TS:
                        due = (ts_sub - t_ev0) / NS / speed
                        wait = due - (time.monotonic() - t_wall0)
                        if wait > max_gap_s:  # a recorded gap (overnight, sentinel): skip it
                            t_wall0 -= wait - max_gap_s
                            wait = max_gap_s
                        if wait > 0:
                            await asyncio.sleep(wait)
                    b = norm.records(sub)
                    await pipeline.process(b)
                    total += len(sub)
                    yield total, b
            else:
                b = norm.records(part)
                await pipeline.process(b)
                total += len(part)
                yield total, b
                await asyncio.sleep(0)
    await _finish(norm, pipeline)


async def _finish(norm: Normalizer, pipeline: Pipeline) -> None:
    if norm.info:
        b = Batch()
        b.rows["instruments"].extend(norm.instrument_rows())
        await pipeline.process(b)
    await pipeline.close_bars()


def _try_arrays(path: Path, chunk: int = 250_000) -> tuple[Any, int, list[Any]] | None:
    """Single-schema files decode straight to arrays (fast path); None for mixed or damaged files."""
    import warnings

    import databento as db

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a "truncated" warning means: take the careful path
            store = db.DBNStore.from_file(path)
            if store.schema is None:
                return None
            first = next(iter(store), None)
            if first is None:
                return None
            arrays = list(store.to_ndarray(count=chunk))
        return store.metadata, int(first.rtype), arrays
    except Exception:
        return None


async def replay_files(paths: Iterable[Path], pipeline: Pipeline, *, speed: float = 0.0) -> ReplayResult:
    """Replay files in order; returns counts."""
    res = ReplayResult()
    t0 = time.monotonic()
    for p in paths:
        res.files += 1
        done = 0
        async for n, b in replay_file(Path(p), pipeline, speed=speed):
            res.quarantined += len(b.rows.get("quarantine", []))
            done = n
        res.records += done
    res.seconds = time.monotonic() - t0
    return res


Settle = Callable[[], Awaitable[None]]

SETTLE_TIMEOUT_S = 30.0
SETTLE_SPIN = 64  # polls by a bare event-loop turn before polling every SETTLE_POLL_S
SETTLE_POLL_S = 0.001


def bus_settle(bus: Any, timeout_s: float = SETTLE_TIMEOUT_S) -> Settle | None:
    """A ``settle`` for :func:`replay_steps` (the file replay and the simulator's lockstep): wait until the
    bus's live consumers have acknowledged everything published; None when the bus cannot tell (the
    replay is then paced only; Redis keeps the groups of dead consumers, so it cannot)."""
    backlog = getattr(bus, "backlog", None)
    if backlog is None:
        return None
    warned = False

    async def settle() -> None:
        nonlocal warned
        deadline = time.monotonic() + timeout_s
        polls = 0
        while await backlog() > 0:
            polls += 1
            if time.monotonic() > deadline:
                if not warned:
                    log.warning("replay: the consumers did not catch up within %.0f s; going on", timeout_s)
                    warned = True
                return
            await asyncio.sleep(0 if polls < SETTLE_SPIN else SETTLE_POLL_S)

    return settle


#: a time step: (event time ns, the batch published at it)
Step = tuple[int, Batch]


async def replay_steps(
    steps: Iterable[Step],
    pipeline: Pipeline,
    *,
    speed: float = 0.0,
    settle: Settle | None = None,
    max_gap_s: float = 1.0,
) -> ReplayResult:
    """Publish ``steps`` (in event-time order) through ``pipeline``, paced at ``speed`` (0: no
    pacing; gaps longer than ``max_gap_s`` of wall time are cut to it), awaiting ``settle`` after
    each step (lockstep, see the module docstring)."""
    res = ReplayResult()
    t0 = time.monotonic()
    t_wall0 = t0
    t_ev0: int | None = None
    if settle is not None:
        await settle()
    for ts, batch in steps:
        if speed > 0:
            if t_ev0 is None:
                t_ev0 = ts
            wait = (ts - t_ev0) / NS / speed - (time.monotonic() - t_wall0)
            if wait > max_gap_s:  # a recorded gap (overnight): skip it
                t_wall0 -= wait - max_gap_s
                wait = max_gap_s
            if wait > 0:
                await asyncio.sleep(wait)
        await pipeline.process(batch)
        res.records += batch.total()
        if settle is not None:
            await settle()
        else:
            await asyncio.sleep(0)
    res.seconds = time.monotonic() - t0
    return res


class ReplayRunner:
    """Replays DBN files, or prepared time steps, as a collection job (``aiots up --replay``).

    ``stop()`` asks it to end; the manager cancels the task if it has not ended within its grace.
    ``settle`` (steps only) makes the replay lockstep; ``done`` is set when the replay has ended.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        files: Iterable[Path],
        *,
        speed: float = 1.0,
        steps: Sequence[Step] | None = None,
        settle: Settle | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.files = [Path(f) for f in files]
        self.speed = speed
        self.steps = steps
        self.settle = settle
        self.result: ReplayResult | None = None
        self.done = asyncio.Event()

    async def run(self) -> None:
        try:
            if self.steps is not None:
                self.result = await replay_steps(self.steps, self.pipeline, speed=self.speed, settle=self.settle)
                self.result.files = len(self.files)
            else:
                self.result = await replay_files(self.files, self.pipeline, speed=self.speed)
            await self.pipeline.close_bars()
            if self.settle is not None:
                await self.settle()
            log.info("replay finished", extra={"files": self.result.files, "records": self.result.records})
        finally:
            self.done.set()

    def stop(self) -> None:
        """Nothing to flag: the manager cancels the replay task (records already handed on stay stored)."""
