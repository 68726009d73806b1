"""The spill store: ordered, fsynced zstd segment files holding batches while PostgreSQL is away
(written back in order by the writer; a segment that keeps failing moves to ``dead/``)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

from aiots.services.storage.records import SYMBOLS, Batch, SymbolTable


class SpillStore:
    """Ordered zstd segment files (``<seq>.seg``) holding batches while PostgreSQL is away."""

    def __init__(self, directory: Path, level: int = 3) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._cctx = zstandard.ZstdCompressor(level=level)
        segs = self.segments()
        self._next = int(segs[-1].stem) + 1 if segs else 0

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob("*.seg"), key=lambda p: int(p.stem))

    def append(self, batch: Batch) -> Path:
        payload = pickle.dumps((batch.columns, dict(batch.rows), batch.symbols), protocol=5)
        path = self.dir / f"{self._next:012d}.seg"
        self._next += 1
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(self._cctx.compress(payload))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        return path

    @staticmethod
    def read(path: Path) -> tuple[Any, Any, Any]:
        """Decompress and unpickle a segment (no shared state: safe in a worker thread)."""
        raw = zstandard.ZstdDecompressor().decompress(path.read_bytes())
        return pickle.loads(raw)  # type: ignore[no-any-return]  # our own files only

    @staticmethod
    def load(path: Path, symbols: SymbolTable = SYMBOLS) -> Batch:
        return SpillStore.rebuild(SpillStore.read(path), symbols)

    @staticmethod
    def rebuild(parts: tuple[Any, Any, Any], symbols: SymbolTable = SYMBOLS) -> Batch:
        """A batch from :meth:`read`'s parts, symbol codes remapped into ``symbols`` (event loop)."""
        columns, rows, syms = parts
        remap = {old: symbols.code(s) for old, s in syms.items()}
        lut = np.zeros(max(remap, default=0) + 1, dtype=np.int32)
        for old, new in remap.items():
            lut[old] = new
        b = Batch()
        for table, cols in columns.items():
            cols = dict(cols)
            for key in ("sym", "und"):
                if key in cols:
                    cols[key] = lut[cols[key]]
            b.add(table, cols)
        for t, r in rows.items():
            b.rows[t].extend(r)
        return b

    def move_dead(self, path: Path) -> None:
        dead = self.dir / "dead"
        dead.mkdir(exist_ok=True)
        path.replace(dead / path.name)
