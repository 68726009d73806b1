"""PostgreSQL repository of backtest runs: the only module with SQL (table in
``services/storage/migrations/0004_backtests.sql``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class RunRecord:
    """A stored run; ``report`` is None in listings."""

    id: str
    created_ns: int
    owner: str
    request: dict[str, Any]
    trades: int
    elapsed_s: float
    report: dict[str, Any] | None


class BacktestStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def insert(self, rec: RunRecord) -> None:
        await self.pool.execute(
            "INSERT INTO backtest_runs (id, created_ns, owner, request, trades, elapsed_s, report)"
            " VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7::jsonb)",
            rec.id,
            rec.created_ns,
            rec.owner,
            json.dumps(rec.request),
            rec.trades,
            rec.elapsed_s,
            json.dumps(rec.report or {}, allow_nan=False),
        )

    async def get(self, run_id: str) -> RunRecord | None:
        r = await self.pool.fetchrow(
            "SELECT id, created_ns, owner, request::text, trades, elapsed_s, report::text"
            " FROM backtest_runs WHERE id = $1",
            run_id,
        )
        if r is None:
            return None
        return RunRecord(r[0], int(r[1]), r[2], json.loads(r[3]), int(r[4]), float(r[5]), json.loads(r[6]))

    async def list(self, limit: int) -> list[RunRecord]:
        rows = await self.pool.fetch(
            "SELECT id, created_ns, owner, request::text, trades, elapsed_s FROM backtest_runs"
            " ORDER BY created_ns DESC, id DESC LIMIT $1",
            limit,
        )
        return [RunRecord(r[0], int(r[1]), r[2], json.loads(r[3]), int(r[4]), float(r[5]), None) for r in rows]
