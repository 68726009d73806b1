"""The portfolio domain: accounts, orders through the shared execution model, risk limits,
valuation, the watch stream and following signals. Plain typed classes; SQL lives in store.py,
protobuf in conversions.py.

Order flow (one transaction holding the account's row lock, so concurrent orders of an account
run one at a time on every replica): a stored order with the same ``client_order_id`` is returned
as is; otherwise the contract must be listed and unexpired, the execution model must fill it at
the latest quote (regular hours, fresh two-sided quote, marketable limit), and no risk limit may
refuse it. The fill is appended to the log with its watch event; a limit refusal appends a
``limit`` event and is answered FAILED_PRECONDITION naming the limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ulid import ULID

from aiots.core import conventions as cv
from aiots.core.execution import ExecutionModel, Quote, Refused
from aiots.services.common.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound
from aiots.services.portfolio import risk
from aiots.services.portfolio.ledger import Ledger
from aiots.services.portfolio.market import MarketData
from aiots.services.portfolio.models import (
    FILLED,
    SOURCE_FOLLOW,
    AccountRow,
    Contract,
    Event,
    FollowRule,
    LimitBreach,
    Limits,
    LiveQuote,
    OrderIntent,
    OrderRecord,
    SignalView,
    order_to_json,
)
from aiots.services.portfolio.store import PortfolioStore
from aiots.services.portfolio.valuation import Greeker, Valuation, value

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortfolioConfig:
    """Knobs of the domain (from ``settings.portfolio``)."""

    max_accounts_per_owner: int = 100
    mark_interval_s: float = 2.0
    poll_interval_s: float = 0.25
    event_page: int = 500


@dataclass(frozen=True, slots=True)
class Mark:
    """A valuation on the watch stream, after stored event ``seq``."""

    seq: int
    valuation: Valuation


@dataclass(frozen=True, slots=True)
class AccountView:
    """An account with its valuation and limit states."""

    row: AccountRow
    valuation: Valuation
    limit_states: list[tuple[str, float, float, bool]]
    buys_halted: bool


class Portfolio:
    """Paper accounts of token subjects (``owner``); another owner's account is NOT_FOUND."""

    def __init__(
        self,
        store: PortfolioStore,
        market: MarketData,
        model: ExecutionModel,
        greeker: Greeker,
        *,
        config: PortfolioConfig | None = None,
        clock: Callable[[], int] = time.time_ns,
        dividend_yields: Mapping[str, float] | None = None,
    ) -> None:
        self.store = store
        self.market = market
        self.model = model
        self.greeker = greeker
        self.cfg = config or PortfolioConfig()
        self.clock = clock
        self.dividend_yields = dict(dividend_yields or {})

    # -- accounts ----------------------------------------------------------------------------
    async def create_account(self, owner: str, name: str, cash: float) -> AccountView:
        if await self.store.count_accounts(owner) >= self.cfg.max_accounts_per_owner:
            raise FailedPrecondition(
                f"subject {owner!r} already has {self.cfg.max_accounts_per_owner} accounts (the limit)",
                reason="TOO_MANY_ACCOUNTS",
            )
        row = AccountRow(str(ULID()), owner, name, cash, time.time_ns())  # wall time, also on a replayed feed
        await self.store.create_account(row)
        return await self._view(row, [])

    async def accounts(self, owner: str) -> list[AccountView]:
        return [await self._view(a) for a in await self.store.accounts(owner)]

    async def account(self, owner: str, account_id: str) -> AccountView:
        return await self._view(await self._row(owner, account_id))

    async def set_limits(self, owner: str, account_id: str, limits: Limits) -> AccountView:
        if not await self.store.set_limits(owner, account_id, limits):
            raise self._not_found(account_id)
        return await self.account(owner, account_id)

    async def set_follow(self, owner: str, account_id: str, rule: FollowRule) -> AccountView:
        if not await self.store.set_follow(owner, account_id, rule):
            raise self._not_found(account_id)
        return await self.account(owner, account_id)

    async def orders(self, owner: str, account_id: str, limit: int) -> list[tuple[OrderRecord, float]]:
        """(order, P&L it realised), newest first."""
        row = await self._row(owner, account_id)
        led = Ledger(cash=row.starting_cash)
        out = [(o, led.apply(o)) for o in await self.store.orders(account_id)]
        return list(reversed(out))[:limit]

    # -- orders ------------------------------------------------------------------------------
    async def place(self, owner: str, it: OrderIntent) -> tuple[OrderRecord, float, bool]:
        """(order, P&L realised by its fill, replayed): the first order of a repeated client id
        comes back with ``replayed`` True and nothing is filled again."""
        occ = it.contract.occ
        breach: LimitBreach | None = None
        async with self.store.locked(owner, it.account_id) as acct:
            if acct is None:
                raise self._not_found(it.account_id)
            prior = await acct.order_by_client_id(it.client_order_id)
            if prior is not None:
                led = Ledger(cash=acct.account.starting_cash)
                realized = {o.id: led.apply(o) for o in await acct.orders()}.get(prior.id, 0.0)
                return prior, realized, True
            now = self.clock()
            if it.contract.expiry_ns <= now:
                raise InvalidArgument(
                    "contract",
                    f"{occ.strip()} expired at {cv.rfc3339(it.contract.expiry_ns)}; trade an unexpired one",
                    reason="CONTRACT_EXPIRED",
                )
            q = it.quote if it.quote is not None else await self.market.quote(occ)
            if q is None and not await self.market.contract_known(occ):
                raise InvalidArgument(
                    "contract",
                    f"{occ.strip()!r} is not a listed contract (no definition and no quote); "
                    "pick one from GET /api/v1/analytics/options/{symbol}/chain",
                    reason="UNKNOWN_CONTRACT",
                )
            res = self.model.fill(it.side, _quote(q), now, it.quantity, it.limit_price)
            if isinstance(res, Refused):
                raise FailedPrecondition(
                    f"{occ.strip()}: order not filled: {res.detail}",
                    reason=res.reason.value,
                    metadata={"contract": occ, "side": it.side, "quantity": str(it.quantity)},
                )
            ledger = Ledger.replay(acct.account.starting_cash, await acct.orders())
            val = await self._value(ledger, now)
            b = await self.market.beta(it.contract.underlying, now)
            unit = await asyncio.to_thread(
                self.greeker.unit, it.contract, q, now, self.dividend_yields.get(it.contract.underlying, 0.0)
            )
            breach = risk.check(acct.account.limits, val, risk.Proposal(it.contract, res, unit.risk(1, b)))
            if breach is not None:
                await acct.append_event(
                    Event(it.account_id, acct.next_seq(), "limit", now, _breach_json(breach, it.client_order_id))
                )
            else:
                order = OrderRecord(
                    id=str(ULID()), account_id=it.account_id, seq=acct.next_seq(), client_order_id=it.client_order_id,
                    contract=occ, underlying=it.contract.underlying, side=it.side, quantity=it.quantity,
                    limit_price=it.limit_price, status=FILLED, fill_price=res.price, fees=res.fees,
                    cash_flow=res.cash_flow, bid=res.bid, ask=res.ask, filled_ns=res.ts_ns, signal_id=it.signal_id,
                    source=it.source,
                )  # fmt: skip
                realized = ledger.apply(order)
                await acct.append_order(order, {**order_to_json(order), "realized_pnl": realized})
        if breach is not None:
            raise FailedPrecondition(
                f"risk limit {breach.name}: {breach.message}",
                reason=breach.name.upper(),
                metadata={"limit": breach.name, "limit_value": f"{breach.limit:.2f}", "value": f"{breach.value:.2f}"},
            )
        return order, realized, False

    # -- watch -------------------------------------------------------------------------------
    async def watch(self, owner: str, account_id: str, since: int | None) -> AsyncIterator[Event | Mark]:
        """Stored events after ``since`` (None: from now), then new ones as they are stored,
        with a :class:`Mark` every ``mark_interval_s``."""
        row = await self._row(owner, account_id)
        last = since if since is not None else await self.store.last_seq(account_id)
        next_mark = 0.0
        while True:
            events = await self.store.events_after(account_id, last, self.cfg.event_page)
            for e in events:
                last = e.seq
                yield e
            if len(events) == self.cfg.event_page:
                continue
            if time.monotonic() >= next_mark:
                ledger = Ledger.replay(row.starting_cash, await self.store.orders(account_id))
                yield Mark(last, await self._value(ledger, self.clock()))
                next_mark = time.monotonic() + self.cfg.mark_interval_s
            await asyncio.sleep(self.cfg.poll_interval_s)

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _not_found(account_id: str) -> NotFound:
        return NotFound(f"no account {account_id!r} for this subject", metadata={"account_id": account_id})

    async def _row(self, owner: str, account_id: str) -> AccountRow:
        row = await self.store.account(owner, account_id)
        if row is None:
            raise self._not_found(account_id)
        return row

    async def _value(self, ledger: Ledger, now: int) -> Valuation:
        contracts = [p.contract for p in ledger.open_positions()]
        quotes: dict[str, LiveQuote | None] = {c: await self.market.quote(c) for c in contracts}
        unds = sorted({p.underlying for p in ledger.open_positions()})
        betas = {u: await self.market.beta(u, now) for u in unds}
        return await asyncio.to_thread(value, ledger, quotes, betas, now, self.greeker, self.dividend_yields)

    async def _view(self, row: AccountRow, orders: list[OrderRecord] | None = None) -> AccountView:
        if orders is None:
            orders = await self.store.orders(row.id)
        val = await self._value(Ledger.replay(row.starting_cash, orders), self.clock())
        return AccountView(row, val, risk.limit_states(row.limits, val), risk.buys_halted(row.limits, val))


class Follower:
    """Enters following accounts on new signals and exits them when the signal closes, through
    :meth:`Portfolio.place` (so the same execution model, limits and idempotency apply: the
    client ids ``follow:<signal id>:open|close`` make redelivered events harmless).

    A follower fills at the quote the signal acted on: the entry buys at the ask the signal saw
    when it was created, the exit sells at the bid of the signal's outcome (target, stop or
    horizon). The execution model still refuses either outside regular hours or when that quote
    is older than its maximum age. So a following account's realised P&L is the signals'
    outcomes measured from executable fills (ask in, bid out, fees on both legs)."""

    def __init__(self, portfolio: Portfolio) -> None:
        self.portfolio = portfolio
        self.store = portfolio.store

    async def on_signal(self, sig: SignalView) -> list[OrderRecord]:
        out: list[OrderRecord] = []
        if not sig.closed:
            for acct in await self.store.following_accounts():
                if not acct.follow.matches(sig):
                    continue
                intent = OrderIntent(
                    acct.id, f"follow:{sig.id}:open", Contract.parse(sig.contract), "BUY",
                    acct.follow.size_for(sig), signal_id=sig.id, source=SOURCE_FOLLOW, quote=sig.entry_quote(),
                )  # fmt: skip
                out.extend(await self._try(acct.owner, intent))
            return out
        for owner, entry in await self.store.follow_entries(sig.id):
            out.extend(await self._exit(owner, entry, sig.exit_quote()))
        return out

    async def sweep(self) -> list[OrderRecord]:
        """Exit followed positions whose signal closed without an exit fill (refused at the time,
        or the event was missed while no replica ran) at the latest live quote."""
        out: list[OrderRecord] = []
        for owner, entry in await self.store.unclosed_follow_entries():
            out.extend(await self._exit(owner, entry, None, quiet=True))
        return out

    async def _exit(
        self, owner: str, entry: OrderRecord, quote: LiveQuote | None, quiet: bool = False
    ) -> list[OrderRecord]:
        led = Ledger.replay(0.0, await self.store.orders(entry.account_id))
        held = led.positions[entry.contract].quantity if entry.contract in led.positions else 0
        qty = min(entry.quantity, held)
        if qty <= 0:
            return []
        intent = OrderIntent(
            entry.account_id, f"follow:{entry.signal_id}:close", Contract.parse(entry.contract), "SELL", qty,
            signal_id=entry.signal_id, source=SOURCE_FOLLOW, quote=quote,
        )  # fmt: skip
        return await self._try(owner, intent, quiet)

    async def _try(self, owner: str, intent: OrderIntent, quiet: bool = False) -> list[OrderRecord]:
        try:
            order, _, _ = await self.portfolio.place(owner, intent)
        except DomainError as exc:
            (log.debug if quiet else log.warning)(
                "follow order not filled",
                extra={"account_id": intent.account_id, "client_order_id": intent.client_order_id, "why": exc.message},
            )
            return []
        return [order]


def _quote(q: LiveQuote | None) -> Quote | None:
    return None if q is None else Quote(q.bid, q.ask, q.ts_ns, q.bid_size, q.ask_size)


def _breach_json(b: LimitBreach, client_order_id: str) -> dict[str, Any]:
    return {
        "name": b.name,
        "limit": b.limit,
        "value": b.value,
        "message": b.message,
        "client_order_id": client_order_id,
    }


__all__ = ["AccountView", "Follower", "Mark", "Portfolio", "PortfolioConfig"]
