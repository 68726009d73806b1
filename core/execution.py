"""The execution model: what an option order fills at. One definition for backtest, live signals
and the portfolio.

Conventions: prices are dollars per share, fees dollars per contract, times int64 ns UTC; a
contract is ``multiplier`` shares (100). A market buy fills at the ask and a market sell at the
bid of the latest quote known at the decision time. No fill when the needed side is missing, the
quote is crossed or older than ``max_quote_age_ns``, the size can't fill the order (when sizes are
known), or (optionally) outside regular hours. A limit fills at the touch only when marketable.
A long option's targets and stops trigger on the bid, the price its holder can sell at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from aiots.core import levels
from aiots.core.conventions import CONTRACT_MULTIPLIER, NS_PER_S, calendar

Side = Literal["BUY", "SELL"]


class Refusal(StrEnum):
    """Why an order did not fill."""

    NO_ASK = "NO_ASK"  # buy with no ask quoted
    NO_BID = "NO_BID"  # sell with no bid quoted
    CROSSED = "CROSSED"  # bid > ask: the quote is not usable
    STALE_QUOTE = "STALE_QUOTE"  # quote older than the allowed age
    NO_QUOTE = "NO_QUOTE"  # no quote at all
    OUTSIDE_HOURS = "OUTSIDE_HOURS"  # outside regular trading hours
    INSUFFICIENT_SIZE = "INSUFFICIENT_SIZE"  # the quoted size can't fill the quantity
    LIMIT_NOT_MARKETABLE = "LIMIT_NOT_MARKETABLE"  # the limit does not reach the touch


@dataclass(frozen=True, slots=True)
class Quote:
    """A two-sided option quote: NaN or <= 0 on a side means that side is not quoted.

    ``ts_ns`` is when the quote was known (for a quote bar, the bar's end). Sizes are contracts;
    NaN when unknown (the size check is then skipped).
    """

    bid: float
    ask: float
    ts_ns: int
    bid_size: float = math.nan
    ask_size: float = math.nan

    @property
    def has_bid(self) -> bool:
        return math.isfinite(self.bid) and self.bid > 0.0

    @property
    def has_ask(self) -> bool:
        return math.isfinite(self.ask) and self.ask > 0.0

    @property
    def two_sided(self) -> bool:
        return self.has_bid and self.has_ask and self.bid <= self.ask

    @property
    def crossed(self) -> bool:
        return self.has_bid and self.has_ask and self.bid > self.ask

    @property
    def mid(self) -> float:
        """(bid + ask) / 2 when both sides are quoted and not crossed, else NaN."""
        return 0.5 * (self.bid + self.ask) if self.two_sided else math.nan

    @property
    def spread(self) -> float:
        return self.ask - self.bid if self.two_sided else math.nan


@dataclass(frozen=True, slots=True)
class Fill:
    """An executed order: price per share, quantity in contracts (> 0), fees in dollars."""

    side: Side
    price: float
    quantity: int
    fees: float
    ts_ns: int
    bid: float
    ask: float

    @property
    def cash_flow(self) -> float:
        """Signed dollars for the account: a buy pays premium and fees, a sell receives premium less fees."""
        notional = self.price * self.quantity * CONTRACT_MULTIPLIER
        return -notional - self.fees if self.side == "BUY" else notional - self.fees


@dataclass(frozen=True, slots=True)
class Refused:
    """An order that did not fill, with the reason and a sentence for people."""

    reason: Refusal
    detail: str


@dataclass(frozen=True, slots=True)
class ExecutionModel:
    """Fill rules. Defaults: $0.65 per contract, quotes up to 60 s old, regular hours only."""

    fee_per_contract: float = 0.65
    max_quote_age_ns: int = 60 * NS_PER_S
    regular_hours_only: bool = True
    multiplier: int = CONTRACT_MULTIPLIER

    def fees(self, quantity: int) -> float:
        """Dollars of fees for ``quantity`` contracts."""
        return self.fee_per_contract * abs(quantity)

    def _check(self, quote: Quote | None, now_ns: int) -> Refused | None:
        if quote is None:
            return Refused(Refusal.NO_QUOTE, "no quote for the contract")
        if self.regular_hours_only and not calendar().is_regular_hours(now_ns):
            return Refused(Refusal.OUTSIDE_HOURS, "orders fill only in regular trading hours")
        age = now_ns - quote.ts_ns
        if age > self.max_quote_age_ns:
            return Refused(
                Refusal.STALE_QUOTE,
                f"quote is {age / NS_PER_S:.0f} s old (allowed {self.max_quote_age_ns / NS_PER_S:.0f} s)",
            )
        if quote.crossed:
            return Refused(Refusal.CROSSED, f"quote is crossed (bid {quote.bid} > ask {quote.ask})")
        return None

    def buy(self, quote: Quote | None, now_ns: int, quantity: int = 1, limit: float | None = None) -> Fill | Refused:
        """A buy at the ask (a limit fills at the ask only when limit >= ask)."""
        bad = self._check(quote, now_ns)
        if bad is not None:
            return bad
        assert quote is not None
        if not quote.has_ask:
            return Refused(Refusal.NO_ASK, "no ask quoted")
        if math.isfinite(quote.ask_size) and quote.ask_size < quantity:
            return Refused(Refusal.INSUFFICIENT_SIZE, f"ask size {quote.ask_size:g} < quantity {quantity}")
        if limit is not None and limit < quote.ask:
            return Refused(Refusal.LIMIT_NOT_MARKETABLE, f"limit {limit} is below the ask {quote.ask}")
        return Fill("BUY", quote.ask, quantity, self.fees(quantity), now_ns, quote.bid, quote.ask)

    def sell(self, quote: Quote | None, now_ns: int, quantity: int = 1, limit: float | None = None) -> Fill | Refused:
        """A sell at the bid (a limit fills at the bid only when limit <= bid)."""
        bad = self._check(quote, now_ns)
        if bad is not None:
            return bad
        assert quote is not None
        if not quote.has_bid:
            return Refused(Refusal.NO_BID, "no bid quoted")
        if math.isfinite(quote.bid_size) and quote.bid_size < quantity:
            return Refused(Refusal.INSUFFICIENT_SIZE, f"bid size {quote.bid_size:g} < quantity {quantity}")
        if limit is not None and limit > quote.bid:
            return Refused(Refusal.LIMIT_NOT_MARKETABLE, f"limit {limit} is above the bid {quote.bid}")
        return Fill("SELL", quote.bid, quantity, self.fees(quantity), now_ns, quote.bid, quote.ask)

    def fill(
        self, side: Side, quote: Quote | None, now_ns: int, quantity: int = 1, limit: float | None = None
    ) -> Fill | Refused:
        return self.buy(quote, now_ns, quantity, limit) if side == "BUY" else self.sell(quote, now_ns, quantity, limit)

    @staticmethod
    def long_exit_price(quote: Quote) -> float:
        """The executable price for a long option holder: the bid (NaN when not quoted)."""
        return quote.bid if quote.has_bid else math.nan

    def round_trip_pnl(self, entry: Fill, exit_price: float, quantity: int | None = None) -> tuple[float, float]:
        """(dollars, percent of the premium paid) of a long bought at ``entry`` and sold at
        ``exit_price`` per share, fees on both legs included."""
        q = entry.quantity if quantity is None else quantity
        cost = entry.price * q * self.multiplier + self.fees(q)
        proceeds = exit_price * q * self.multiplier - self.fees(q)
        dollars = proceeds - cost
        return dollars, (100.0 * dollars / cost if cost > 0 else math.nan)

    def breakeven_exit(self, entry_price: float) -> float:
        """The exit price per share at which a one-lot long at ``entry_price`` breaks even after fees."""
        return entry_price + 2.0 * self.fee_per_contract / self.multiplier

    @property
    def fee_per_share(self) -> float:
        """Dollars of fees per share of one ``multiplier``-share contract's fill."""
        return self.fee_per_contract / self.multiplier

    def exit_for_return(self, entry_price: float, pct: float) -> float:
        """The bid per share at which a one-lot long bought at ``entry_price`` returns ``pct`` % after
        fees (the rule lives in :func:`aiots.core.levels.exit_for_return`, which the selection's
        level kernel applies too)."""
        return levels.exit_for_return(entry_price, pct, self.fee_per_share)
