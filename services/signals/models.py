"""Plain domain types of the signals service (no protobuf here: see conversions.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

from aiots.services.features.state import Bar as Bar


class Direction(IntEnum):
    """Matches aiots.v1.Direction numbers."""

    BULLISH = 1
    BEARISH = 2


class Status(IntEnum):
    """Matches aiots.v1.SignalStatus numbers."""

    OPEN = 1
    TARGET_HIT = 2
    STOPPED = 3
    EXPIRED = 4
    CANCELLED = 5

    @property
    def closed(self) -> bool:
        return self is not Status.OPEN


@dataclass(frozen=True)
class Reason:
    """One rule that fired: what was measured, its value and the threshold it crossed."""

    indicator: str
    value: float
    threshold: float
    description: str


@dataclass(frozen=True)
class Idea:
    """A strategy's view on the underlying before a contract is chosen.

    ``projected_move`` is the signed underlying move in dollars the strategy expects within
    ``horizon_ns``; ``evidence`` in 0..1 is how strongly its rules fired.
    """

    symbol: str
    strategy: str
    direction: Direction
    underlying_price: float
    projected_move: float
    horizon_ns: int
    evidence: float
    reasons: tuple[Reason, ...]
    prefer_debit: bool = True
    atr: float = math.nan  # the underlying's ATR (dollars per bar) the idea was measured with


@dataclass(frozen=True)
class OptionQuote:
    """Latest quote of one contract (dollars per share; expiry as ns of its 16:00 ET close)."""

    occ_symbol: str
    underlying: str
    expiry: str
    expiry_ns: int
    strike: float
    is_call: bool
    bid: float
    ask: float
    bid_size: float = 0.0
    ask_size: float = 0.0
    last: float = 0.0
    volume: float = 0.0
    open_interest: float = 0.0
    ts_ns: int = 0
    multiplier: int = 100

    @property
    def mid(self) -> float:
        return 0.5 * (self.bid + self.ask)

    @property
    def two_sided(self) -> bool:
        """Both sides quoted and not crossed (the only quotes a mid or a fill may come from)."""
        return self.bid > 0.0 and self.ask >= self.bid


@dataclass(frozen=True)
class GreeksTU:
    """Greeks in trader units (theta per day, vega per vol point, rho per 1%)."""

    delta: float
    gamma: float
    theta: float
    vega: float
    rho: float


@dataclass
class StatusChange:
    status: Status
    at_ns: int
    option_price: float
    note: str


@dataclass
class Signal:
    """A trade idea on one contract, tracked to its outcome."""

    id: str
    created_ns: int
    symbol: str
    underlying_price: float
    direction: Direction
    strategy: str
    contract: OptionQuote
    entry_price: float
    target_price: float
    stop_price: float
    horizon_ns: int
    confidence: float
    expected_return_pct: float
    reward_risk: float
    greeks: GreeksTU
    iv: float
    iv_rank: float
    reasons: tuple[Reason, ...]
    projected_move: float
    status: Status = Status.OPEN
    exit_ns: int = 0
    exit_price: float = 0.0
    history: list[StatusChange] = field(default_factory=list)
    suggested_contracts: int = 0  # for the configured dollar risk per trade (risk to the stop, after costs)
    fee_per_contract: float = 0.0  # dollars per contract per fill
    p_model: float = math.nan  # the model's raw probability (target before stop or horizon)
    evidence: float = math.nan  # the strategy's 0..1 evidence, the calibration's second input
    risk_per_contract: float = 0.0  # dollars lost per contract if stopped at the stop, fees included
    exercise_style: str = "american"
    updated_ns: int = 0  # the latest status change (0 while it has none)

    @property
    def pnl_pct(self) -> float:
        """Return on the premium paid, from the fills and after fees on both legs (0 while open).

        An exit at a price of 0 (no bid at the horizon) is a total loss of premium and fees."""
        if not self.status.closed or self.entry_price <= 0.0:
            return 0.0
        fee = self.fee_per_contract / self.contract.multiplier
        cost = self.entry_price + fee
        return (max(self.exit_price, 0.0) - fee) / cost * 100.0 - 100.0
