"""Historical backfill with ``databento.Historical`` (chunked by day x schema, resumable).

Before pulling, ``metadata.get_cost`` is summed over the schemas; above the accepted maximum the
backfill refuses (FailedPrecondition) and says the cost. Each chunk (one UTC day of one schema)
is fetched with ``timeseries.get_range``, decoded to arrays, normalised, written (idempotent) and
then recorded as done in ``backfill_chunks``: resuming a job skips finished chunks, and a chunk
interrupted half-way is simply fetched again (the writer ignores what is already stored).
The blocking client runs in a worker thread; progress (chunks, records, cost, ETA) is yielded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import warnings
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import ulid

from aiots.core import conventions as cv
from aiots.services.common.errors import FailedPrecondition, Unavailable
from aiots.services.ingestion import store
from aiots.services.ingestion.normalize import SOURCE_HISTORICAL, Normalizer
from aiots.services.ingestion.pipeline import Pipeline

log = logging.getLogger(__name__)

NS = cv.NS_PER_S


@dataclass
class BackfillProgress:
    """One progress report."""

    job_id: str
    chunks_done: int
    chunks_total: int
    records: int
    cost_usd: float
    eta_seconds: float
    current: str
    done: bool


def historical_client(key: str, gateway: str | None) -> Any:
    """``databento.Historical`` (gateway overrides the default host, e.g. for tests)."""
    import databento as db

    return db.Historical(key=key, gateway=gateway) if gateway else db.Historical(key=key)


def day_chunks(start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """[start, end) cut at UTC midnights."""
    out = []
    cur = start
    while cur < end:
        nxt = min(dt.datetime.combine(cur.date() + dt.timedelta(days=1), dt.time(), dt.UTC), end)
        out.append((cur, nxt))
        cur = nxt
    return out


async def fetch_into(
    client: Any, pipeline: Pipeline, *, dataset: str, schema: str, symbols: Sequence[str], start: Any, end: Any,
    source: int = SOURCE_HISTORICAL, stype_in: str = "raw_symbol", id_map: dict[int, str] | None = None,
) -> int:  # fmt: skip
    """Fetch one window and push it through the pipeline; returns records processed.

    ``id_map`` seeds instrument id -> symbol (a live session's mappings for its gap: with parent
    symbology the Historical metadata maps ids to the parent, e.g. ``AAPL.OPT``, not the contract).
    """

    def get() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            store = client.timeseries.get_range(
                dataset=dataset, start=start, end=end, symbols=list(symbols), schema=schema, stype_in=stype_in
            )
            first = next(iter(store), None)
            arrays = list(store.to_ndarray(count=250_000)) if first is not None else []
            return store.metadata, (int(first.rtype) if first is not None else 0), arrays

    meta, rtype, arrays = await asyncio.to_thread(get)
    norm = Normalizer(source, dataset)
    for iid, sym in (id_map or {}).items():
        norm.map_id(iid, sym)
    norm.load_metadata(meta)
    n = 0
    for arr in arrays:
        await pipeline.process(norm.array(rtype, arr))
        n += int(arr.shape[0])
    return n


async def backfill(
    *,
    client: Any,
    pool: Any,
    pipeline: Pipeline,
    writer: Any,
    dataset: str,
    symbols: Sequence[str],
    schemas: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    max_cost_usd: float,
    resume_job_id: str = "",
) -> AsyncIterator[BackfillProgress]:
    """Run (or resume) a backfill job, yielding progress after the cost check and each chunk."""
    chunks = [(d0, d1, s) for d0, d1 in day_chunks(start, end) for s in schemas]
    done: set[tuple[dt.date, str]] = set()
    if resume_job_id:
        if not await store.job_exists(pool, resume_job_id):
            raise FailedPrecondition(f"backfill job {resume_job_id!r} not found", reason="JOB_NOT_FOUND")
        job_id = resume_job_id
        done = await store.done_chunks(pool, job_id)
    else:
        job_id = str(ulid.ULID())

    def cost() -> float:
        return float(
            sum(
                client.metadata.get_cost(dataset=dataset, symbols=list(symbols), schema=s, start=start, end=end)
                for s in schemas
            )
        )

    try:
        usd = await asyncio.to_thread(cost)
    except Exception as exc:
        raise Unavailable(f"Databento metadata.get_cost failed: {exc}", reason="DATABENTO_UNAVAILABLE") from exc
    if usd > max_cost_usd:
        raise FailedPrecondition(
            f"estimated cost ${usd:.2f} exceeds the accepted maximum ${max_cost_usd:.2f}; "
            "raise max_cost_usd (or databento.max_cost_usd) to proceed",
            reason="COST_ABOVE_LIMIT",
        )
    params = {
        "dataset": dataset, "symbols": list(symbols), "schemas": list(schemas),
        "start": start.isoformat(), "end": end.isoformat(),
    }  # fmt: skip
    await store.upsert_backfill_job(pool, job_id, params, usd)
    total = len(chunks)
    n_done = sum(1 for d0, _, s in chunks if (d0.date(), s) in done)
    records = 0
    t0 = time.monotonic()
    fetched = 0
    yield BackfillProgress(job_id, n_done, total, 0, usd, 0.0, "cost checked", n_done == total)
    try:
        for d0, d1, schema in chunks:
            if (d0.date(), schema) in done:
                continue
            current = f"{schema} {d0.date().isoformat()}"
            n = await fetch_into(
                client,
                pipeline,
                dataset=dataset,
                schema=schema,
                symbols=symbols,
                start=d0.isoformat(),
                end=d1.isoformat(),
            )
            await pipeline.close_bars()
            await writer.flush()
            await store.record_chunk(pool, job_id, d0.date(), schema, n)
            records += n
            n_done += 1
            fetched += 1
            rate = (time.monotonic() - t0) / fetched
            yield BackfillProgress(job_id, n_done, total, records, usd, rate * (total - n_done), current, False)
    except Exception as exc:
        await store.finish_job(pool, job_id, "failed", str(exc)[:500])
        raise
    await store.finish_job(pool, job_id, "done")
    yield BackfillProgress(job_id, n_done, total, records, usd, 0.0, "done", True)
