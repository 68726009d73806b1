"""Signals in PostgreSQL (tables ``signals`` and ``signal_status_history`` from the storage
migrations). The full Signal is kept as protobuf bytes in ``payload``; the filterable fields are
columns. Status changes are conditional (``WHERE status = OPEN``) so that when several replicas
see the same exit, exactly one records and announces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiots.core.conventions import ns_to_datetime as _dt
from aiots.services.signals.conversions import signal_from_proto, signal_to_proto
from aiots.services.signals.models import Signal, Status
from aiots.services.signals.stats import Outcome
from aiots.v1 import signals_pb2


@dataclass(frozen=True)
class SignalFilter:
    """Filters shared by List/Subscribe/Stats (empty sequences mean all)."""

    symbols: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ()
    statuses: tuple[int, ...] = ()
    min_confidence: float = 0.0
    start_ns: int | None = None
    end_ns: int | None = None

    def matches(self, symbol: str, strategy: str, confidence: float) -> bool:
        return (
            (not self.symbols or symbol in self.symbols)
            and (not self.strategies or strategy in self.strategies)
            and confidence >= self.min_confidence
        )

    def where(self, args: list[Any]) -> str:
        clauses = ["TRUE"]
        if self.symbols:
            args.append(list(self.symbols))
            clauses.append(f"symbol = ANY(${len(args)})")
        if self.strategies:
            args.append(list(self.strategies))
            clauses.append(f"strategy = ANY(${len(args)})")
        if self.statuses:
            args.append(list(self.statuses))
            clauses.append(f"status = ANY(${len(args)}::smallint[])")
        if self.min_confidence > 0:
            args.append(self.min_confidence)
            clauses.append(f"confidence >= ${len(args)}")
        if self.start_ns is not None:
            args.append(_dt(self.start_ns))
            clauses.append(f"created_at >= ${len(args)}")
        if self.end_ns is not None:
            args.append(_dt(self.end_ns))
            clauses.append(f"created_at < ${len(args)}")
        return " AND ".join(clauses)


class SignalStore:
    """asyncpg-backed persistence of signals and their status history."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def insert(self, s: Signal, msg: signals_pb2.Signal | None = None) -> bool:
        """Store a new signal and its opening status (idempotent on id); True when it was new.
        ``msg``: ``s`` already converted (the announced message), so it is not converted again."""
        return s.id in await self.insert_many([(s, msg)])

    async def insert_many(self, items: Sequence[tuple[Signal, signals_pb2.Signal | None]]) -> set[str]:
        """Store new signals and their opening statuses in one round trip (idempotent on id; the
        first of a repeated id counts). Returns the ids that were new: the others were stored
        already (by another replica)."""
        rows: dict[str, tuple[Any, ...]] = {}
        for sig, msg in items:
            if sig.id in rows:
                continue
            h = sig.history[0]
            payload = (signal_to_proto(sig) if msg is None else msg).SerializeToString()
            rows[sig.id] = (
                sig.id, _dt(sig.created_ns), sig.symbol, sig.strategy, int(sig.direction), int(sig.status),
                sig.confidence, sig.underlying_price, sig.contract.occ_symbol, sig.entry_price,
                sig.target_price, sig.stop_price, _dt(sig.horizon_ns), sig.expected_return_pct,
                sig.reward_risk, sig.iv, sig.iv_rank, payload, int(h.status), _dt(h.at_ns), h.option_price,
                h.note,
            )  # fmt: skip
        if not rows:
            return set()
        columns = list(zip(*rows.values(), strict=True))
        got = await self.pool.fetch(
            """WITH r AS (
                   SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[],
                       $5::smallint[], $6::smallint[], $7::float8[], $8::float8[], $9::text[],
                       $10::float8[], $11::float8[], $12::float8[], $13::timestamptz[], $14::float8[],
                       $15::float8[], $16::float8[], $17::float8[], $18::bytea[], $19::smallint[],
                       $20::timestamptz[], $21::float8[], $22::text[])
                   WITH ORDINALITY AS r(id, created_at, symbol, strategy, direction, status, confidence,
                       underlying_price, occ_symbol, entry_price, target_price, stop_price, horizon,
                       expected_return_pct, reward_risk, iv, iv_rank, payload, h_status, h_at,
                       h_price, h_note, n)),
               s AS (
                   INSERT INTO signals (id, created_at, symbol, strategy, direction, status, confidence,
                       underlying_price, occ_symbol, entry_price, target_price, stop_price, horizon,
                       expected_return_pct, reward_risk, iv, iv_rank, payload)
                   SELECT id, created_at, symbol, strategy, direction, status, confidence,
                       underlying_price, occ_symbol, entry_price, target_price, stop_price, horizon,
                       expected_return_pct, reward_risk, iv, iv_rank, payload
                   FROM r ORDER BY n
                   ON CONFLICT (id) DO NOTHING RETURNING id)
               INSERT INTO signal_status_history (signal_id, status, at, option_price, note)
               SELECT r.id, r.h_status, r.h_at, r.h_price, r.h_note FROM s JOIN r USING (id) ORDER BY r.n
               RETURNING signal_id""",
            *[list(c) for c in columns],
        )
        return {r["signal_id"] for r in got}

    async def close(self, s: Signal, msg: signals_pb2.Signal | None = None) -> bool:
        """Record a status change from OPEN; False when another replica already did. ``msg``: ``s``
        already converted (not converted again)."""
        h = s.history[-1]
        payload = (signal_to_proto(s) if msg is None else msg).SerializeToString()
        async with self.pool.acquire() as con, con.transaction():
            res = await con.execute(
                "UPDATE signals SET status = $2, payload = $3, updated_at = now() WHERE id = $1 AND status = $4",
                s.id,
                int(s.status),
                payload,
                int(Status.OPEN),
            )
            if res.endswith(" 0"):
                return False
            await con.execute(
                "INSERT INTO signal_status_history (signal_id, status, at, option_price, note) VALUES ($1,$2,$3,$4,$5)",
                s.id,
                int(h.status),
                _dt(h.at_ns),
                h.option_price,
                h.note,
            )
        return True

    async def get(self, signal_id: str) -> signals_pb2.Signal | None:
        row = await self.pool.fetchrow("SELECT payload FROM signals WHERE id = $1", signal_id)
        if row is None:
            return None
        msg = signals_pb2.Signal.FromString(row["payload"])
        hist = await self.pool.fetch(
            "SELECT status, at, option_price, note FROM signal_status_history WHERE signal_id = $1 ORDER BY at, id",
            signal_id,
        )
        del msg.history[:]
        for h in hist:
            ch = msg.history.add(status=h["status"], option_price=h["option_price"] or 0.0, note=h["note"])
            ch.at.FromDatetime(h["at"])
        return msg

    async def page(self, f: SignalFilter, limit: int, before_id: str | None) -> list[signals_pb2.Signal]:
        """Newest first; ``before_id`` continues a previous page."""
        return [signals_pb2.Signal.FromString(p) for _id, p in await self.page_payloads(f, limit, before_id)]

    async def page_payloads(self, f: SignalFilter, limit: int, before_id: str | None) -> list[tuple[str, bytes]]:
        """:meth:`page` as (id, serialised Signal) rows: the stored bytes, not parsed."""
        args: list[Any] = []
        where = f.where(args)
        if before_id:
            args.append(before_id)
            where += f" AND id < ${len(args)}"
        args.append(limit)
        rows = await self.pool.fetch(
            f"SELECT id, payload FROM signals WHERE {where} ORDER BY id DESC LIMIT ${len(args)}", *args
        )
        return [(r["id"], bytes(r["payload"])) for r in rows]

    async def after(self, f: SignalFilter, since_id: str | None, since_ns: int | None) -> list[signals_pb2.Signal]:
        """Signals created after a ULID or a time, oldest first (the replay part of a subscription)."""
        args: list[Any] = []
        where = f.where(args)
        if since_id is not None:
            args.append(since_id)
            where += f" AND id > ${len(args)}"
        if since_ns is not None:
            args.append(_dt(since_ns))
            where += f" AND created_at > ${len(args)}"
        rows = await self.pool.fetch(f"SELECT payload FROM signals WHERE {where} ORDER BY id", *args)
        return [signals_pb2.Signal.FromString(r["payload"]) for r in rows]

    async def open_signals(self) -> list[Signal]:
        rows = await self.pool.fetch("SELECT payload FROM signals WHERE status = $1 ORDER BY id", int(Status.OPEN))
        out = []
        for r in rows:
            m = signals_pb2.Signal.FromString(r["payload"])
            out.append(signal_from_proto(m))
        return out

    async def outcomes(self, f: SignalFilter) -> list[Outcome]:
        """Every signal the filter selects, as (strategy, symbol, status, P&L after fees, confidence)."""
        args: list[Any] = []
        where = f.where(args)
        rows = await self.pool.fetch(f"SELECT payload FROM signals WHERE {where} ORDER BY id", *args)
        out = []
        for r in rows:
            m = signals_pb2.Signal.FromString(r["payload"])
            out.append(Outcome(m.strategy, m.symbol, Status(m.status), m.outcome.pnl_pct, m.confidence))
        return out
