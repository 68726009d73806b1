"""Bar and option-quote files as the market feed of ``aiots up --replay``, read by the backtest's readers.

The files the backtest takes (``aiots backtest --bars/--option-quotes``: normalised 1-minute OHLCV
CSV and the intraday option quote-bar CSV of ``shared/data/options-intraday``, ``.gz`` ok) are read
here with the very readers the backtest uses (:mod:`aiots.services.backtest.readers`), so the live
services and a backtest see the same numbers at the same times. Databento DBN files keep going
through ingestion's own decoder (:mod:`aiots.services.ingestion.sources.replay`).

The clock is the backtest's: a bar is published at its **close** (its event is stamped at its start,
as every 1-minute bar is), an option quote bar at its **end**, and at one instant the quotes come
before the bars. Each instant's records form one replay step; with a bus that reports its backlog,
the replay waits between steps until every consumer has handled the step
(:func:`~aiots.services.ingestion.sources.replay.bus_settle`), so the signal engine sees, before
each bar closing at T, every quote known at T: what the backtest feeds it.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from aiots.core.conventions import NS_PER_MIN
from aiots.services.backtest.readers import BarSeries, DataFileError, OptionQuoteBars, read_bars, read_option_quote_bars
from aiots.services.ingestion.normalize import SOURCE_REPLAY, SYMBOLS, Batch
from aiots.services.ingestion.sources.replay import Step

log = logging.getLogger(__name__)

DBN_SUFFIXES = (".dbn", ".dbn.zst")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DBN_MAGIC = b"DBN"
#: the columns that make a CSV an option quote-bar file (PROVENANCE section 7)
QUOTE_COLUMNS = frozenset({"option_symbol", "bid_close", "ask_close"})
#: how long one step may wait for the consumers before the replay goes on (a stuck consumer)

QUOTES_FIRST, BARS_AFTER = 0, 1


def is_dbn(path: Path) -> bool:
    """A Databento DBN file (by its name, else by its first bytes: zstd frame or ``DBN``)."""
    if str(path).lower().endswith(DBN_SUFFIXES):
        return True
    with open(path, "rb") as f:
        head = f.read(4)
    return head == ZSTD_MAGIC or head[:3] == DBN_MAGIC


def _header(path: Path) -> set[str]:
    opener: Any = gzip.open if str(path).lower().endswith(".gz") else open
    try:
        with opener(path, "rt", newline="") as f:
            line = f.readline()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise DataFileError(path, f"cannot read the header ({exc})", row=None, column=None) from exc
    return {c.strip() for c in line.strip().split(",")}


def _quote_cols(q: OptionQuoteBars, idx: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[Any]]:
    n = idx.size
    occ = q.occ[idx]
    und = q.underlying[idx]
    u_occ, inv_occ = np.unique(occ.astype(str), return_inverse=True)
    u_und, inv_und = np.unique(und.astype(str), return_inverse=True)
    codes = np.array([SYMBOLS.code(s) for s in u_occ.tolist()], dtype=np.int32)
    ucodes = np.array([SYMBOLS.code(s) for s in u_und.tolist()], dtype=np.int32)
    bsz, asz = q.bid_size[idx], q.ask_size[idx]
    return {
        "sym": codes[inv_occ],
        "und": ucodes[inv_und],
        "ts_event": q.ts_ns[idx],
        "bid": q.bid[idx],  # NaN: that side had no quote (0 on the bus, NULL in storage)
        "ask": q.ask[idx],
        # an unknown size is 0 for the engine (the backtest's convention too)
        "bid_size": np.where(np.isfinite(bsz), bsz, 0.0),
        "ask_size": np.where(np.isfinite(asz), asz, 0.0),
        "underlying_price": np.full(n, np.nan),
        "publisher_id": np.zeros(n, np.int32),
        "sequence": np.zeros(n, np.int64),
        "source": np.full(n, SOURCE_REPLAY, np.int16),
    }


def _bar_cols(s: BarSeries, idx: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[Any]]:
    n = idx.size
    return {
        "sym": np.full(n, SYMBOLS.code(s.symbol), np.int32),
        "ts_event": s.ts_ns[idx],  # a bar's event is stamped at its start
        "open": s.open[idx],
        "high": s.high[idx],
        "low": s.low[idx],
        "close": s.close[idx],
        "volume": s.volume[idx],
        "vwap": np.zeros(n, np.float64),
        "trade_count": np.zeros(n, np.int64),
        "source": np.full(n, SOURCE_REPLAY, np.int16),
    }


def read_steps(paths: Sequence[Path]) -> list[Step]:
    """The replay steps of bar and option-quote files: one per (instant, quotes|bars), in time order.

    Raises :class:`DataFileError` (file, row, column) for a bad file, ``ValueError`` for bars that
    are not 1-minute bars (daily bars are not a live feed)."""
    bars: list[BarSeries] = []
    quotes: list[OptionQuoteBars] = []
    for p in paths:
        if _header(p) >= QUOTE_COLUMNS:
            quotes.append(read_option_quote_bars(p))
        else:
            for s in read_bars(p).values():
                if s.interval_ns != NS_PER_MIN:
                    raise ValueError(f"{p}: only 1-minute bars can be replayed as a feed (found daily bars)")
                bars.append(s)
    # (instant, kind, source index, row index) of every record, sorted: quotes before bars at one instant
    keys: list[npt.NDArray[np.int64]] = []
    for i, q in enumerate(quotes):
        n = len(q)
        keys.append(np.stack([q.ts_ns, np.full(n, QUOTES_FIRST), np.full(n, i), np.arange(n)], axis=1))
    for j, s in enumerate(bars):
        n = len(s)
        keys.append(np.stack([s.ts_ns + s.interval_ns, np.full(n, BARS_AFTER), np.full(n, j), np.arange(n)], axis=1))
    if not keys:
        return []
    k = np.concatenate(keys).astype(np.int64)
    k = k[np.lexsort((k[:, 3], k[:, 2], k[:, 1], k[:, 0]))]
    brk = np.flatnonzero((np.diff(k[:, 0]) != 0) | (np.diff(k[:, 1]) != 0)) + 1
    steps: list[Step] = []
    for grp in np.split(k, brk):
        t, kind = int(grp[0, 0]), int(grp[0, 1])
        b = Batch()
        for src in np.unique(grp[:, 2]).tolist():
            rows = grp[grp[:, 2] == src, 3]
            if kind == QUOTES_FIRST:
                b.add("option_quotes", _quote_cols(quotes[src], rows))
            else:
                b.add("bars_1m", _bar_cols(bars[src], rows))
        steps.append((t, b))
    return steps
