"""Plain domain types of the portfolio service (no protobuf here: see conversions.py).

Units: money in dollars; option prices in dollars per share; quantities in contracts (one
contract = ``CONTRACT_MULTIPLIER`` shares); times int64 ns UTC.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from aiots.core import conventions as cv

Side = Literal["BUY", "SELL"]
SIDES: tuple[Side, ...] = ("BUY", "SELL")
FILLED = "FILLED"
SOURCE_MANUAL = "manual"
SOURCE_FOLLOW = "follow"


@dataclass(frozen=True, slots=True)
class Contract:
    """An option contract identified by its OCC symbol (parsed by ``aiots.core.conventions``)."""

    occ: str
    underlying: str
    expiry: dt.date
    strike: float
    is_call: bool
    style: cv.ExerciseStyle

    @classmethod
    def parse(cls, symbol: object, field: str = "contract") -> Contract:
        """From an OCC symbol; :class:`aiots.core.conventions.InvalidSymbol` naming ``field`` if malformed."""
        o = cv.parse_occ(symbol, field)
        return cls(o.symbol, o.underlying, o.expiry, o.strike, o.right == "C", cv.exercise_style(o.root))

    @property
    def expiry_ns(self) -> int:
        """The expiry instant (the expiry session's close) in ns UTC."""
        return cv.expiry_ns(self.expiry)


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One accepted order with its fill: an entry of the append-only log."""

    id: str
    account_id: str
    seq: int
    client_order_id: str
    contract: str
    underlying: str
    side: Side
    quantity: int
    limit_price: float | None
    status: str
    fill_price: float
    fees: float
    cash_flow: float
    bid: float
    ask: float
    filled_ns: int
    signal_id: str = ""
    source: str = SOURCE_MANUAL

    @property
    def signed_quantity(self) -> int:
        return self.quantity if self.side == "BUY" else -self.quantity


@dataclass(frozen=True, slots=True)
class Limits:
    """Risk limits; ``None`` is no limit. Money in dollars, vega in dollars per vol point."""

    max_premium_per_trade: float | None = None
    max_total_premium: float | None = None
    max_positions_per_underlying: int | None = None
    max_open_positions: int | None = None
    max_daily_loss: float | None = None
    max_net_delta: float | None = None
    max_net_vega: float | None = None
    allow_naked_shorts: bool = False

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Limits:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, slots=True)
class FollowRule:
    """Follow signals: filters and sizing (``contracts`` per signal, or the signal's own size)."""

    enabled: bool = False
    strategies: tuple[str, ...] = ()
    symbols: tuple[str, ...] = ()
    min_confidence: float = 0.0
    contracts: int = 1
    use_signal_size: bool = False

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["strategies"], d["symbols"] = list(self.strategies), list(self.symbols)
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FollowRule:
        if not data:
            return cls()
        return cls(
            enabled=bool(data.get("enabled", False)),
            strategies=tuple(data.get("strategies", ())),
            symbols=tuple(data.get("symbols", ())),
            min_confidence=float(data.get("min_confidence", 0.0)),
            contracts=int(data.get("contracts", 1)),
            use_signal_size=bool(data.get("use_signal_size", False)),
        )

    def matches(self, sig: SignalView) -> bool:
        return (
            self.enabled
            and (not self.strategies or sig.strategy in self.strategies)
            and (not self.symbols or sig.symbol in self.symbols)
            and sig.confidence >= self.min_confidence
        )

    def size_for(self, sig: SignalView) -> int:
        if self.use_signal_size and sig.suggested_contracts >= 1:
            return int(sig.suggested_contracts)
        return self.contracts


@dataclass(frozen=True, slots=True)
class AccountRow:
    """An account as stored: its owner (token subject), cash, limits and follow rule."""

    id: str
    owner: str
    name: str
    starting_cash: float
    created_ns: int
    limits: Limits = field(default_factory=Limits)
    follow: FollowRule = field(default_factory=FollowRule)
    last_seq: int = 0


@dataclass(frozen=True, slots=True)
class SignalView:
    """What following needs of a signal (from the signals service's events or store)."""

    id: str
    symbol: str
    strategy: str
    confidence: float
    contract: str
    closed: bool = False
    status: str = "OPEN"
    exit_price: float = math.nan
    suggested_contracts: int = 0
    created_ns: int = 0
    bid: float = math.nan  # the quote the signal saw at creation
    ask: float = math.nan
    underlying_price: float = math.nan
    exit_ns: int = 0

    def entry_quote(self) -> LiveQuote:
        """The quote the signal was created on."""
        return LiveQuote(self.bid, self.ask, self.created_ns, underlying_price=self.underlying_price)

    def exit_quote(self) -> LiveQuote:
        """The bid the signal exited at (its outcome), as a one-sided quote at the exit time."""
        return LiveQuote(self.exit_price, math.nan, self.exit_ns)


@dataclass(frozen=True, slots=True)
class LimitBreach:
    """A limit that refuses an order: its name, the limit, the value the order would reach."""

    name: str
    limit: float
    value: float
    message: str


@dataclass(frozen=True, slots=True)
class LiveQuote:
    """The latest option quote known for a contract, with the underlying price (NaN unknown)."""

    bid: float
    ask: float
    ts_ns: int
    bid_size: float = math.nan
    ask_size: float = math.nan
    underlying_price: float = math.nan


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event of an account's watch stream: ``kind`` 'fill' (payload: the order) or 'limit'."""

    account_id: str
    seq: int
    kind: str
    at_ns: int
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """A validated order request."""

    account_id: str
    client_order_id: str
    contract: Contract
    side: Side
    quantity: int
    limit_price: float | None = None
    signal_id: str = ""
    source: str = SOURCE_MANUAL
    quote: LiveQuote | None = None  # fill at this quote instead of the latest (following a signal)


def order_to_json(o: OrderRecord) -> dict[str, Any]:
    return asdict(o)


def order_from_json(d: dict[str, Any]) -> OrderRecord:
    return OrderRecord(**d)
