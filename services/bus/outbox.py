"""The bus outbox: published batches kept on disk, in order, while Redis is away.

Each publishing bus instance has a *publisher id* (random) and numbers its batches 1, 2, 3...
A batch that cannot reach Redis is written to ``<outbox_dir>/<scope>/<publisher>/<seq>-<n>.seg``
(``scope``: a hash of the Redis URL and namespace, so orphans are only adopted by a bus of the
same Redis and namespace; one segment per batch: pickled stream names and payloads, fsynced, then
renamed into place) and ``publish`` returns: the events are acknowledged once they are on disk. While any segment is
waiting, later batches queue behind it (per-stream order holds), and a replay task sends the
segments in order when Redis answers again.

Exactly once into the stream: every batch (live or replayed) runs in one server-side script
that first compares its ``seq`` with the publisher's high-water mark key
``<ns>:v1:outbox:hw:<publisher>`` and skips the batch when it was already applied (a reply lost
with the connection), so a replay never duplicates. The mark is kept ``outbox_dedupe_ttl_s``.

A process that dies with segments waiting leaves its directory behind; the next bus started on
the same ``outbox_dir`` adopts such directories (whose ``.lock`` no live process holds) and
replays them first. Two live processes never share a directory (each holds its own flock).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SUFFIX = ".seg"
LOCK = ".lock"


@dataclass(frozen=True)
class OutboxBatch:
    """One published batch: its publisher, sequence number, stream names and payloads."""

    publisher: str
    seq: int
    streams: list[str]
    payloads: list[bytes]

    def __len__(self) -> int:
        return len(self.payloads)


def _try_lock(directory: Path) -> IO[bytes] | None:
    f = open(directory / LOCK, "ab")  # noqa: SIM115 - held open for the lock's lifetime
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    return f


def _events(path: Path) -> int:
    return int(path.stem.rpartition("-")[2])


class Outbox:
    """Ordered on-disk batches of one publisher plus adopted ones of dead publishers."""

    def __init__(self, root: Path, publisher: str) -> None:
        self.root = root
        self.publisher = publisher
        self.dir = root / publisher
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = _try_lock(self.dir)
        if lock is None:
            raise RuntimeError(f"outbox directory {self.dir} is in use by another process")
        self._locks: dict[Path, IO[bytes]] = {self.dir: lock}
        self._queue: list[Path] = []
        self.pending_events = 0
        self._adopt()

    def _adopt(self) -> None:
        """Queue the segments of directories no live process holds (their publisher died)."""
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and p != self.dir):
            lock = _try_lock(d)
            if lock is None:
                continue
            segs = sorted(d.glob("*" + SUFFIX))
            if not segs:
                lock.close()
                shutil.rmtree(d, ignore_errors=True)
                continue
            self._locks[d] = lock
            self._queue.extend(segs)
            self.pending_events += sum(_events(p) for p in segs)

    def __bool__(self) -> bool:
        return bool(self._queue)

    @property
    def pending_batches(self) -> int:
        return len(self._queue)

    def first(self) -> Path | None:
        return self._queue[0] if self._queue else None

    def append(self, batch: OutboxBatch) -> Path:
        """Write ``batch`` durably (fsync, then rename into place); blocking: call in a thread."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{batch.seq:016d}-{len(batch)}{SUFFIX}"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump((batch.publisher, batch.seq, batch.streams, batch.payloads), f, protocol=5)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
        self._queue.append(path)
        self.pending_events += len(batch)
        return path

    @staticmethod
    def read(path: Path) -> OutboxBatch:
        """The batch in a segment (our own files only)."""
        with open(path, "rb") as f:
            publisher, seq, streams, payloads = pickle.load(f)
        return OutboxBatch(publisher, seq, streams, payloads)

    def remove(self, path: Path) -> None:
        """Drop a replayed segment (the head of the queue); an adopted directory left empty goes."""
        self._queue.remove(path)
        self.pending_events -= _events(path)
        path.unlink(missing_ok=True)
        d = path.parent
        if d != self.dir and not any(p.parent == d for p in self._queue):
            lock = self._locks.pop(d, None)
            if lock is not None:
                lock.close()
            shutil.rmtree(d, ignore_errors=True)

    def close(self) -> None:
        """Release the locks; an empty own directory is removed, segments stay for the next bus."""
        for d, lock in list(self._locks.items()):
            if d == self.dir and not any(p.parent == d for p in self._queue):
                with contextlib.suppress(OSError):
                    (d / LOCK).unlink()
                    d.rmdir()
            lock.close()
        self._locks.clear()
