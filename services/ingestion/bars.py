"""OHLCV bars built from trades (used when the feed carries no OHLCV schema).

Buckets are epoch-aligned: a bar covers [floor(ts/width)*width, +width) in ns UTC; its ts_event is
the open time. A bar is *closed* (emitted) once a trade of a later bucket of the same symbol
arrives or the watermark (``close_until``) passes its end. Trades older than a symbol's open bar
are late: counted in ``late`` and left out (the stored trades still have them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from aiots.services.ingestion.normalize import Columns

_EMPTY: dict[str, str] = {
    "sym": "i4",
    "ts_event": "i8",
    "open": "f8",
    "high": "f8",
    "low": "f8",
    "close": "f8",
    "volume": "f8",
    "vwap": "f8",
    "trade_count": "i8",
    "source": "i2",
}


class BarBuilder:
    """Per-symbol bars of one width; vectorised per batch of trades."""

    def __init__(self, width_ns: int, source: int = 0) -> None:
        self.width = int(width_ns)
        self.source = source
        self.open: dict[int, list[float]] = {}  # code -> [bucket, o, h, l, c, vol, pv, n]
        self.late = 0

    def on_trades(
        self,
        sym: npt.NDArray[np.int32],
        ts: npt.NDArray[np.int64],
        price: npt.NDArray[np.float64],
        size: npt.NDArray[np.float64],
    ) -> Columns:
        """Fold trades in; returns the bars closed by them."""
        ok = ~np.isnan(price)
        sym, ts, price, size = sym[ok], ts[ok], price[ok], size[ok]
        closed: list[list[float]] = []
        closed_sym: list[int] = []
        if sym.shape[0]:
            order = np.lexsort((ts, sym))
            sym, ts, price, size = sym[order], ts[order], price[order], size[order]
            bucket = ts // self.width
            brk = np.flatnonzero((sym[1:] != sym[:-1]) | (bucket[1:] != bucket[:-1])) + 1
            starts = np.concatenate([[0], brk])
            ends = np.concatenate([brk, [sym.shape[0]]])
            hi = np.maximum.reduceat(price, starts)
            lo = np.minimum.reduceat(price, starts)
            vol = np.add.reduceat(size, starts)
            pv = np.add.reduceat(price * size, starts)
            for g in range(starts.shape[0]):
                s, e = int(starts[g]), int(ends[g])
                code, b = int(sym[s]), int(bucket[s])
                cur = self.open.get(code)
                if cur is not None and b < cur[0]:
                    self.late += e - s
                    continue
                if cur is not None and b == cur[0]:
                    cur[2] = max(cur[2], float(hi[g]))
                    cur[3] = min(cur[3], float(lo[g]))
                    cur[4] = float(price[e - 1])
                    cur[5] += float(vol[g])
                    cur[6] += float(pv[g])
                    cur[7] += e - s
                    continue
                if cur is not None:
                    closed.append(cur)
                    closed_sym.append(code)
                self.open[code] = [b, float(price[s]), float(hi[g]), float(lo[g]), float(price[e - 1]),
                                   float(vol[g]), float(pv[g]), e - s]  # fmt: skip
        return self._columns(closed_sym, closed)

    def close_until(self, watermark_ns: int) -> Columns:
        """Close every open bar whose interval ended at or before ``watermark_ns``."""
        codes, rows = [], []
        for code, cur in list(self.open.items()):
            if (int(cur[0]) + 1) * self.width <= watermark_ns:
                codes.append(code)
                rows.append(cur)
                del self.open[code]
        return self._columns(codes, rows)

    def close_all(self) -> Columns:
        """Close every open bar (end of stream)."""
        codes = list(self.open)
        rows = [self.open[c] for c in codes]
        self.open.clear()
        return self._columns(codes, rows)

    def _columns(self, codes: list[int], rows: list[list[float]]) -> Columns:
        if not rows:
            return {k: np.empty(0, dtype=t) for k, t in _EMPTY.items()}
        a: npt.NDArray[Any] = np.array(rows, dtype=np.float64)
        vol = a[:, 5]
        return {
            "sym": np.array(codes, dtype=np.int32),
            "ts_event": a[:, 0].astype(np.int64) * self.width,
            "open": a[:, 1],
            "high": a[:, 2],
            "low": a[:, 3],
            "close": a[:, 4],
            "volume": vol,
            "vwap": np.divide(a[:, 6], vol, out=np.zeros_like(vol), where=vol > 0),
            "trade_count": a[:, 7].astype(np.int64),
            "source": np.full(len(codes), self.source, np.int16),
        }
