"""PostgreSQL repository of the portfolio service: the only module with SQL (tables in
``services/storage/migrations/0016_portfolio.sql``).

Orders are written with their fill and their watch event in one transaction that holds the
account row's lock (``SELECT ... FOR UPDATE``): orders of one account are serialised across
tasks, processes and replicas, sequence numbers are handed out in commit order (a watcher
polling ``seq > since`` never skips one), and a retried ``client_order_id`` finds the first
order (the unique constraint backs this up).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt

from aiots.services.portfolio.models import (
    AccountRow,
    Event,
    FollowRule,
    Limits,
    LiveQuote,
    OrderRecord,
)

_ORDER_COLS = (
    "id, account_id, seq, client_order_id, contract, underlying, side, quantity, limit_price, status, "
    "fill_price, fees, cash_flow, bid, ask, filled_ns, signal_id, source"
)
_ACCOUNT_COLS = "id, owner, name, starting_cash, created_ns, limits::text, follow::text, last_seq"


def _json(payload: dict[str, Any]) -> str:
    """JSON text with non-finite numbers as null (PostgreSQL's jsonb has no NaN)."""
    return json.dumps({k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in payload.items()})


def _account(r: Any) -> AccountRow:
    return AccountRow(
        id=r[0],
        owner=r[1],
        name=r[2],
        starting_cash=float(r[3]),
        created_ns=int(r[4]),
        limits=Limits.from_json(json.loads(r[5])),
        follow=FollowRule.from_json(json.loads(r[6])),
        last_seq=int(r[7]),
    )


def _order(r: Any) -> OrderRecord:
    return OrderRecord(
        id=r[0], account_id=r[1], seq=int(r[2]), client_order_id=r[3], contract=r[4], underlying=r[5],
        side=r[6], quantity=int(r[7]), limit_price=None if r[8] is None else float(r[8]), status=r[9],
        fill_price=float(r[10]), fees=float(r[11]), cash_flow=float(r[12]), bid=float(r[13]), ask=float(r[14]),
        filled_ns=int(r[15]), signal_id=r[16], source=r[17],
    )  # fmt: skip


class LockedAccount:
    """An account row locked for one transaction: read its log, append to it."""

    def __init__(self, conn: asyncpg.Connection, account: AccountRow) -> None:
        self.conn = conn
        self.account = account
        self._seq = account.last_seq

    async def order_by_client_id(self, client_order_id: str) -> OrderRecord | None:
        r = await self.conn.fetchrow(
            f"SELECT {_ORDER_COLS} FROM portfolio_orders WHERE account_id = $1 AND client_order_id = $2",
            self.account.id,
            client_order_id,
        )
        return None if r is None else _order(r)

    async def orders(self) -> list[OrderRecord]:
        """The whole log, oldest first."""
        rows = await self.conn.fetch(
            f"SELECT {_ORDER_COLS} FROM portfolio_orders WHERE account_id = $1 ORDER BY seq", self.account.id
        )
        return [_order(r) for r in rows]

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def append_order(self, o: OrderRecord, event_payload: dict[str, Any]) -> None:
        """Insert the order (with its fill) and its watch event."""
        await self.conn.execute(
            f"INSERT INTO portfolio_orders ({_ORDER_COLS}) VALUES "
            "($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18)",
            o.id, o.account_id, o.seq, o.client_order_id, o.contract, o.underlying, o.side, o.quantity,
            o.limit_price, o.status, o.fill_price, o.fees, o.cash_flow, o.bid, o.ask, o.filled_ns, o.signal_id,
            o.source,
        )  # fmt: skip
        await self.append_event(Event(o.account_id, o.seq, "fill", o.filled_ns, event_payload))

    async def append_event(self, e: Event) -> None:
        await self.conn.execute(
            "INSERT INTO portfolio_events (account_id, seq, kind, at_ns, payload) VALUES ($1, $2, $3, $4, $5::jsonb)",
            e.account_id,
            e.seq,
            e.kind,
            e.at_ns,
            _json(e.payload),
        )
        await self.conn.execute("UPDATE portfolio_accounts SET last_seq = $2 WHERE id = $1", e.account_id, e.seq)


class PortfolioStore:
    """Accounts, the order/fill log, watch events, and the market reads the portfolio needs."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- accounts ----------------------------------------------------------------------------
    async def create_account(self, a: AccountRow) -> None:
        await self.pool.execute(
            "INSERT INTO portfolio_accounts (id, owner, name, starting_cash, created_ns, limits, follow) "
            "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)",
            a.id,
            a.owner,
            a.name,
            a.starting_cash,
            a.created_ns,
            json.dumps(a.limits.to_json()),
            json.dumps(a.follow.to_json()),
        )

    async def count_accounts(self, owner: str) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM portfolio_accounts WHERE owner = $1", owner))

    async def accounts(self, owner: str) -> list[AccountRow]:
        rows = await self.pool.fetch(
            f"SELECT {_ACCOUNT_COLS} FROM portfolio_accounts WHERE owner = $1 ORDER BY id", owner
        )
        return [_account(r) for r in rows]

    async def account(self, owner: str, account_id: str) -> AccountRow | None:
        """The account when it exists and belongs to ``owner`` (else None: callers say NOT_FOUND)."""
        r = await self.pool.fetchrow(
            f"SELECT {_ACCOUNT_COLS} FROM portfolio_accounts WHERE id = $1 AND owner = $2", account_id, owner
        )
        return None if r is None else _account(r)

    async def set_limits(self, owner: str, account_id: str, limits: Limits) -> bool:
        res = await self.pool.execute(
            "UPDATE portfolio_accounts SET limits = $3::jsonb WHERE id = $1 AND owner = $2",
            account_id,
            owner,
            json.dumps(limits.to_json()),
        )
        return bool(res.endswith(" 1"))

    async def set_follow(self, owner: str, account_id: str, rule: FollowRule) -> bool:
        res = await self.pool.execute(
            "UPDATE portfolio_accounts SET follow = $3::jsonb WHERE id = $1 AND owner = $2",
            account_id,
            owner,
            json.dumps(rule.to_json()),
        )
        return bool(res.endswith(" 1"))

    async def following_accounts(self) -> list[AccountRow]:
        rows = await self.pool.fetch(
            f"SELECT {_ACCOUNT_COLS} FROM portfolio_accounts WHERE (follow->>'enabled')::boolean ORDER BY id"
        )
        return [_account(r) for r in rows]

    @asynccontextmanager
    async def locked(self, owner: str, account_id: str) -> AsyncIterator[LockedAccount | None]:
        """A transaction holding the account's row lock (None when not found for ``owner``)."""
        async with self.pool.acquire() as conn, conn.transaction():
            r = await conn.fetchrow(
                f"SELECT {_ACCOUNT_COLS} FROM portfolio_accounts WHERE id = $1 AND owner = $2 FOR UPDATE",
                account_id,
                owner,
            )
            yield None if r is None else LockedAccount(conn, _account(r))

    # -- log ---------------------------------------------------------------------------------
    async def orders(self, account_id: str, limit: int | None = None) -> list[OrderRecord]:
        """Orders oldest first (``limit``: the newest ``limit``, still oldest first)."""
        if limit is None:
            rows = await self.pool.fetch(
                f"SELECT {_ORDER_COLS} FROM portfolio_orders WHERE account_id = $1 ORDER BY seq", account_id
            )
        else:
            rows = await self.pool.fetch(
                f"SELECT * FROM (SELECT {_ORDER_COLS} FROM portfolio_orders WHERE account_id = $1 "
                "ORDER BY seq DESC LIMIT $2) o ORDER BY seq",
                account_id,
                limit,
            )
        return [_order(r) for r in rows]

    async def order_by_client_id(self, account_id: str, client_order_id: str) -> OrderRecord | None:
        r = await self.pool.fetchrow(
            f"SELECT {_ORDER_COLS} FROM portfolio_orders WHERE account_id = $1 AND client_order_id = $2",
            account_id,
            client_order_id,
        )
        return None if r is None else _order(r)

    async def events_after(self, account_id: str, seq: int, limit: int) -> list[Event]:
        rows = await self.pool.fetch(
            "SELECT seq, kind, at_ns, payload::text FROM portfolio_events WHERE account_id = $1 AND seq > $2 "
            "ORDER BY seq LIMIT $3",
            account_id,
            seq,
            limit,
        )
        return [Event(account_id, int(r[0]), r[1], int(r[2]), json.loads(r[3])) for r in rows]

    async def last_seq(self, account_id: str) -> int:
        return int(await self.pool.fetchval("SELECT last_seq FROM portfolio_accounts WHERE id = $1", account_id) or 0)

    # -- market reads --------------------------------------------------------------------------
    async def latest_option_quote(self, occ: str) -> LiveQuote | None:
        """The newest stored quote of ``occ`` (a fallback for contracts not seen on the bus yet)."""
        r = await self.pool.fetchrow(
            "SELECT ts_event, bid, ask, bid_size, ask_size, underlying_price FROM option_quotes "
            "WHERE symbol = $1 ORDER BY ts_event DESC LIMIT 1",
            occ,
        )
        if r is None:
            return None
        nan = float("nan")
        return LiveQuote(
            bid=float(r[1]) if r[1] is not None else nan,
            ask=float(r[2]) if r[2] is not None else nan,
            ts_ns=int(r[0]),
            bid_size=float(r[3]) if r[3] else nan,
            ask_size=float(r[4]) if r[4] else nan,
            underlying_price=float(r[5]) if r[5] is not None else nan,
        )

    async def contract_known(self, occ: str) -> bool:
        """True when ``occ`` is a listed contract (an instrument definition or a stored quote)."""
        return bool(
            await self.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM instruments WHERE symbol = $1 AND kind = 2) "
                "OR EXISTS (SELECT 1 FROM option_quotes WHERE symbol = $1)",
                occ,
            )
        )

    async def latest_price(self, symbol: str) -> float:
        """Last trade, else the last 1m or daily close of ``symbol``; NaN when none is stored."""
        for sql in (
            "SELECT price FROM trades WHERE symbol = $1 ORDER BY ts_event DESC LIMIT 1",
            "SELECT close FROM bars_1m WHERE symbol = $1 ORDER BY ts_event DESC LIMIT 1",
            "SELECT close FROM bars_1d WHERE symbol = $1 ORDER BY ts_event DESC LIMIT 1",
        ):
            v = await self.pool.fetchval(sql, symbol)
            if v is not None:
                return float(v)
        return float("nan")

    async def paired_daily_closes(
        self, symbol: str, benchmark: str, days: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Daily closes of ``symbol`` and ``benchmark`` on the dates both have, oldest first."""
        rows = await self.pool.fetch(
            "SELECT a.close, b.close FROM bars_1d a JOIN bars_1d b ON b.ts_event = a.ts_event AND b.symbol = $2 "
            "WHERE a.symbol = $1 ORDER BY a.ts_event DESC LIMIT $3",
            symbol,
            benchmark,
            days,
        )
        rows = list(reversed(rows))
        return (
            np.array([float(r[0]) for r in rows], dtype=np.float64),
            np.array([float(r[1]) for r in rows], dtype=np.float64),
        )

    async def signal_payload(self, signal_id: str) -> bytes | None:
        """The stored signal (serialised ``aiots.v1.Signal``) for orders that name a signal."""
        v = await self.pool.fetchval("SELECT payload FROM signals WHERE id = $1", signal_id)
        return None if v is None else bytes(v)

    async def unclosed_follow_entries(self) -> list[tuple[str, OrderRecord]]:
        """(owner, entry order) of followed signals that are closed in the signals table while the
        account has no exit order yet (its exit was refused, or the event was missed)."""
        cols = ", ".join(f"o.{c.strip()}" for c in _ORDER_COLS.split(","))
        rows = await self.pool.fetch(
            f"SELECT a.owner, {cols} FROM portfolio_orders o "
            "JOIN portfolio_accounts a ON a.id = o.account_id JOIN signals s ON s.id = o.signal_id "
            "WHERE o.source = 'follow' AND o.client_order_id = 'follow:' || o.signal_id || ':open' AND s.status <> 1 "
            "AND NOT EXISTS (SELECT 1 FROM portfolio_orders c WHERE c.account_id = o.account_id "
            "AND c.client_order_id = 'follow:' || o.signal_id || ':close') ORDER BY o.account_id, o.seq"
        )
        return [(r[0], _order(tuple(r)[1:])) for r in rows]

    async def follow_entries(self, signal_id: str) -> list[tuple[str, OrderRecord]]:
        """(owner, entry order) of every account that entered ``signal_id`` (client id ``follow:<id>:open``)."""
        cols = ", ".join(f"o.{c.strip()}" for c in _ORDER_COLS.split(","))
        rows = await self.pool.fetch(
            f"SELECT a.owner, {cols} FROM portfolio_orders o JOIN portfolio_accounts a ON a.id = o.account_id "
            "WHERE o.client_order_id = $1 ORDER BY o.account_id",
            f"follow:{signal_id}:open",
        )
        return [(r[0], _order(tuple(r)[1:])) for r in rows]
