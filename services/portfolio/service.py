"""PortfolioService servicer: validation and proto plumbing only (domain in book.py).

The caller is the token subject the gateway verified and forwards as ``x-aiots-subject``; a
direct gRPC call without it (local tools on 127.0.0.1) acts as ``settings.portfolio.local_subject``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from aiots.core import conventions as cv
from aiots.services.common.audit import SUBJECT_HEADER
from aiots.services.common.errors import InvalidArgument, ResourceExhausted
from aiots.services.common.server import ServiceRegistration
from aiots.services.common.streams import resume_from
from aiots.services.common.validation import require_tickers
from aiots.services.portfolio import conversions as conv
from aiots.services.portfolio.book import Portfolio
from aiots.services.portfolio.models import SIDES, Contract, FollowRule, OrderIntent, Side
from aiots.v1 import portfolio_pb2, portfolio_pb2_grpc, signals_pb2

SERVICE_NAME = "aiots.v1.PortfolioService"
MAX_NAME = 100
MAX_CLIENT_ID = 64
MAX_CASH = 1e12
MAX_QUANTITY = 10_000
MAX_ORDERS_PAGE = 1000
DEFAULT_ORDERS_PAGE = 100

SignalLookup = Callable[[str], Awaitable[bytes | None]]


def _positive_whole(field: str, value: float, most: int) -> int:
    """A whole number 1..most from a JSON number; INVALID_ARGUMENT naming ``field`` otherwise."""
    if not math.isfinite(value) or value != math.floor(value) or not 1 <= value <= most:
        raise InvalidArgument(field, f"must be a whole number of contracts from 1 to {most}, got {value!r}")
    return int(value)


def _account_id(value: str) -> str:
    v = value.strip()
    if not v:
        raise InvalidArgument("account_id", "required: the id CreateAccount returned (a ULID such as 01JH3Z...)")
    if len(v) > MAX_CLIENT_ID:
        raise InvalidArgument("account_id", f"at most {MAX_CLIENT_ID} characters, got {len(v)}")
    return v.upper()


class PortfolioServicer(portfolio_pb2_grpc.PortfolioServiceServicer):
    def __init__(
        self,
        portfolio: Portfolio,
        *,
        local_subject: str,
        signal_lookup: SignalLookup,
        max_streams_per_subject: int = 5,
    ) -> None:
        self.portfolio = portfolio
        self.local_subject = local_subject
        self.signal_lookup = signal_lookup
        self.max_streams_per_subject = max_streams_per_subject
        self._streams: dict[str, int] = {}

    def _subject(self, context: grpc.aio.ServicerContext) -> str:
        md = dict(context.invocation_metadata() or ())
        sub = md.get(SUBJECT_HEADER, "")
        return sub if isinstance(sub, str) and sub else self.local_subject

    # -- accounts ----------------------------------------------------------------------------
    async def CreateAccount(
        self, request: portfolio_pb2.CreateAccountRequest, context: grpc.aio.ServicerContext
    ) -> portfolio_pb2.CreateAccountResponse:
        name = request.name.strip()
        if not 1 <= len(name) <= MAX_NAME:
            raise InvalidArgument("name", f"1 to {MAX_NAME} characters required, got {len(name)}")
        cash = request.cash
        if not (math.isfinite(cash) and 0 < cash <= MAX_CASH):
            raise InvalidArgument(
                "cash", f"starting cash must be > 0 and at most {MAX_CASH:,.0f} dollars, got {cash!r}"
            )
        view = await self.portfolio.create_account(self._subject(context), name, cash)
        return portfolio_pb2.CreateAccountResponse(account=conv.account_to_proto(view))

    async def ListAccounts(
        self, request: portfolio_pb2.ListAccountsRequest, context: grpc.aio.ServicerContext
    ) -> portfolio_pb2.ListAccountsResponse:
        views = await self.portfolio.accounts(self._subject(context))
        return portfolio_pb2.ListAccountsResponse(accounts=[conv.account_to_proto(v) for v in views])

    async def GetAccount(
        self, request: portfolio_pb2.GetAccountRequest, context: grpc.aio.ServicerContext
    ) -> portfolio_pb2.GetAccountResponse:
        view = await self.portfolio.account(self._subject(context), _account_id(request.account_id))
        return portfolio_pb2.GetAccountResponse(account=conv.account_to_proto(view))

    # -- orders ------------------------------------------------------------------------------
    async def PlaceOrder(
        self, request: portfolio_pb2.PlaceOrderRequest, context: grpc.aio.ServicerContext
    ) -> portfolio_pb2.PlaceOrderResponse:
        account_id = _account_id(request.account_id)
        cid = request.client_order_id.strip()
        if not 1 <= len(cid) <= MAX_CLIENT_ID or not cid.isprintable():
            raise InvalidArgument(
                "client_order_id", f"1 to {MAX_CLIENT_ID} printable characters required (your idempotency key)"
            )
        side = request.side.strip().upper()
        if side not in SIDES:
            raise InvalidArgument("side", f"{request.side!r} is not a side; use one of {', '.join(SIDES)}")
        qty = _positive_whole("quantity", request.quantity, MAX_QUANTITY)
        limit: float | None = None
        if request.HasField("limit_price"):
            limit = request.limit_price
            if not (math.isfinite(limit) and limit > 0):
                raise InvalidArgument("limit_price", f"must be a price > 0 dollars per share, got {limit!r}")
        contract = await self._contract(request)
        intent = OrderIntent(account_id, cid, contract, _side(side), qty, limit, signal_id=request.signal_id.strip())
        order, realized, replayed = await self.portfolio.place(self._subject(context), intent)
        return portfolio_pb2.PlaceOrderResponse(order=conv.order_to_proto(order, realized, replayed))

    async def _contract(self, request: portfolio_pb2.PlaceOrderRequest) -> Contract:
        if request.contract.strip() and request.signal_id.strip():
            raise InvalidArgument("contract", "give either contract or signal_id, not both")
        if request.signal_id.strip():
            sid = request.signal_id.strip().upper()
            payload = await self.signal_lookup(sid)
            if payload is None:
                raise InvalidArgument("signal_id", f"no signal with id {sid!r}", reason="UNKNOWN_SIGNAL")
            occ, field = signals_pb2.Signal.FromString(payload).contract.occ_symbol, "signal_id"
        else:
            occ, field = request.contract, "contract"
            if not occ.strip():
                raise InvalidArgument("contract", f"required: an OCC symbol ({cv.OCC_RULE}) or a signal_id")
        try:
            return Contract.parse(occ, field)
        except cv.InvalidSymbol as exc:
            raise InvalidArgument(exc.field, f"{exc.value!r} is not an OCC symbol ({exc.rule})") from None

    async def ListOrders(
        self, request: portfolio_pb2.ListOrdersRequest, context: grpc.aio.ServicerContext
    ) -> portfolio_pb2.ListOrdersResponse:
        account_id = _account_id(request.account_id)
        n = request.limit or DEFAULT_ORDERS_PAGE
        if not 1 <= n <= MAX_ORDERS_PAGE:
            raise InvalidArgument("limit", f"must be within 1..{MAX_ORDERS_PAGE}, got {request.limit}")
        rows = await self.portfolio.orders(self._subject(context), account_id, n)
        return portfolio_pb2.ListOrdersResponse(orders=[conv.order_to_proto(o, r) for o, r in rows])

    # -- limits and following ------------------------------------------------------------------
    async def SetLimits(
        self, request: portfolio_pb2.SetLimitsRequest, context: grpc.aio.ServicerContext
    ) -> portfolio_pb2.SetLimitsResponse:
        account_id = _account_id(request.account_id)
        limits = conv.limits_from_proto(request.limits)
        for f in request.limits.DESCRIPTOR.fields:
            if f.name == "allow_naked_shorts" or not request.limits.HasField(f.name):  # type: ignore[arg-type]
                continue
            v = getattr(request.limits, f.name)
            if not (math.isfinite(v) and v >= 0):
                raise InvalidArgument(f"limits.{f.name}", f"must be a number >= 0 (unset: no limit), got {v!r}")
        view = await self.portfolio.set_limits(self._subject(context), account_id, limits)
        return portfolio_pb2.SetLimitsResponse(account=conv.account_to_proto(view))

    async def SetFollowRule(
        self, request: portfolio_pb2.SetFollowRuleRequest, context: grpc.aio.ServicerContext
    ) -> portfolio_pb2.SetFollowRuleResponse:
        account_id = _account_id(request.account_id)
        r = request.rule
        if not (math.isfinite(r.min_confidence) and 0.0 <= r.min_confidence <= 1.0):
            raise InvalidArgument("rule.min_confidence", f"must be within 0..1, got {r.min_confidence!r}")
        contracts = 1 if r.contracts_per_signal == 0 else r.contracts_per_signal
        n = _positive_whole("rule.contracts_per_signal", contracts, MAX_QUANTITY)
        strategies = tuple(dict.fromkeys(s.strip() for s in r.strategies))
        if any(not s for s in strategies):
            raise InvalidArgument("rule.strategies", "strategy names must be non-empty, e.g. 'momentum_breakout'")
        rule = FollowRule(
            enabled=r.enabled,
            strategies=strategies,
            symbols=tuple(require_tickers("rule.symbols", list(r.symbols))),
            min_confidence=r.min_confidence,
            contracts=n,
            use_signal_size=r.use_signal_size,
        )
        view = await self.portfolio.set_follow(self._subject(context), account_id, rule)
        return portfolio_pb2.SetFollowRuleResponse(account=conv.account_to_proto(view))

    # -- watch -------------------------------------------------------------------------------
    async def WatchAccount(
        self, request: portfolio_pb2.WatchAccountRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[portfolio_pb2.WatchAccountResponse]:
        account_id = _account_id(request.account_id)
        since: int | None = None
        if request.since.strip():
            s = request.since.strip()
            if not s.isdigit():
                raise InvalidArgument("since", f"must be an event seq (a whole number >= 0), got {request.since!r}")
            since = int(s)
        subject = self._subject(context)
        if self._streams.get(subject, 0) >= self.max_streams_per_subject:
            raise ResourceExhausted(
                f"subject {subject!r} already has {self.max_streams_per_subject} open watch streams (the limit)",
                metadata={"limit": str(self.max_streams_per_subject)},
            )
        self._streams[subject] = self._streams.get(subject, 0) + 1
        try:
            async for item in self.portfolio.watch(subject, account_id, since):
                resp = conv.watch_item_to_proto(item)
                resume_from("since", str(resp.seq))  # a mark carries the last stored seq too
                yield resp
        finally:
            left = self._streams.get(subject, 1) - 1
            if left > 0:
                self._streams[subject] = left
            else:
                self._streams.pop(subject, None)


def _side(s: str) -> Side:
    return "BUY" if s == "BUY" else "SELL"


def add_to_server(servicer: PortfolioServicer, server: grpc.aio.Server) -> None:
    """Register the servicer under aiots.v1.PortfolioService (see :meth:`ServiceRegistration.of`)."""
    ServiceRegistration.of(servicer).add_to_server(servicer, server)
