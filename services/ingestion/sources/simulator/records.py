"""The simulator as a DBN record source: the model of :mod:`.model` on the clock of :mod:`.clock`.

Emits ``SymbolMappingMsg``, ``InstrumentDefMsg``, ``StatMsg`` (open interest), ``TradeMsg``,
``MBP1Msg`` and ``CBBOMsg`` records that go through the same normaliser as real data. At the
start of each session the chains are re-listed on the real expiry schedule and open interest is
published for the previous session's close (``ts_ref``); options quote in regular hours only.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Sequence
from typing import Any

import databento_dbn as _dbn
import numpy as np
import numpy.typing as npt

from aiots.core import conventions as cv
from aiots.services.ingestion.sources.simulator import history
from aiots.services.ingestion.sources.simulator import model as m
from aiots.services.ingestion.sources.simulator.clock import SessionClock, Tick
from aiots.services.storage.records import occ_symbol

dbn: Any = _dbn  # the record constructors' stubs type enum arguments loosely
SCALE = 1_000_000_000  # DBN fixed point
PUBLISHER_EQ = 1
PUBLISHER_OPRA = 30
OPTION_TRADE_RATE = 0.02  # trades per contract per second in regular hours
OPTION_SPREAD = 0.02  # relative bid-ask spread of option quotes
# A contract is quoted when its bid or ask changed, and at least this often otherwise (well inside
# the execution model's 60 s quote-age limit). Quoting every contract every 5 s was ~36,000 option
# quotes per simulated minute for the nine default symbols: a loaded machine then ran "x60" at x4.
OPTION_QUOTE_REFRESH_S = 30.0


def _fx(dollars: float) -> int:
    """Dollars rounded to the cent, as DBN fixed point (1e-9)."""
    return round(float(dollars) * 100) * (SCALE // 100)


def _price_fn(european: bool) -> Any:
    """aiots.core.options pricer: Black-Scholes for European roots, BS2002 for American ones."""
    from aiots.core.options import american_price, bs_price

    return bs_price if european else american_price


class MarketSimulator:
    """Underlyings and option chains as DBN records, on the session clock.

    ``start_ns=None`` follows the wall clock (live in a session, else replay of the last one);
    a given ``start_ns`` runs free from there (tests); a given ``session`` (a date) is replayed from
    its regular open, then on without waiting (``aiots up --session``). ``anchor`` is the first
    simulated session: seeded history ends the session before it and the model opens from its last
    close.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        seed: int = 7,
        start_ns: int | None = None,
        *,
        rate: float = cv.DEFAULT_RATE,
        history_days: int = history.HISTORY_DAYS,
        session: dt.date | None = None,
    ) -> None:
        self.seed = seed
        self.rate = rate
        self.history_days = history_days
        follow = start_ns is None
        wall = time.time_ns() if start_ns is None else start_ns
        self.clock = SessionClock(wall, follow_wall=follow, session=session)
        self.anchor = self.clock.session.date
        self.rng = np.random.default_rng([seed, self.anchor.toordinal()])
        self.state: dict[str, m.UnderlyingState] = {}
        for i, s in enumerate(symbols):
            px, sigma = history.start_state(seed, s, self.anchor, history_days)
            self.state[s] = m.UnderlyingState(s, 1000 + i, m.profile(s), px, sigma, px, [])
        self._regular_close: dict[str, float] = {}
        self._next_iid = 100_000
        #: per underlying: (minute start ns, that regular minute's volume factor, mean one)
        self._minute_volume: dict[str, tuple[int, float]] = {}
        self._since_option_quotes_s = 0.0  # market seconds since the chains were last quoted
        self._last_quote: dict[int, tuple[float, float, int]] = {}  # instrument id -> (bid, ask, ts sent)

    @property
    def now_ns(self) -> int:
        """Simulated market time (ns UTC)."""
        return self.clock.now_ns

    # --- records ---------------------------------------------------------------------------
    def mapping_records(self) -> list[Any]:
        """SymbolMappingMsg for every underlying and contract (the session's symbology)."""
        out: list[Any] = []
        for st in self.state.values():
            out.append(self._mapping(st.instrument_id, st.symbol))
            out.extend(self._mapping(c.instrument_id, c.occ) for c in st.contracts)
        return out

    def _mapping(self, iid: int, sym: str) -> Any:
        return dbn.SymbolMappingMsg(
            publisher_id=PUBLISHER_EQ, instrument_id=iid, ts_event=self.now_ns,
            stype_in=dbn.SType.RAW_SYMBOL, stype_in_symbol=sym, stype_out=dbn.SType.INSTRUMENT_ID,
            stype_out_symbol=sym, start_ts=self.now_ns, end_ts=self.now_ns + cv.NS_PER_DAY,
        )  # fmt: skip

    def open_session(self) -> list[Any]:
        """Session start: the previous regular close becomes ``prev_close``; chains re-listed."""
        for sym, px in self._regular_close.items():
            self.state[sym].prev_close = px
        self._regular_close.clear()
        return self.build_chains()

    def build_chains(self) -> list[Any]:
        """List option chains around spot; returns mappings + InstrumentDefMsg + StatMsg(OI)."""
        s = self.clock.session
        prev_close_ns = self.clock.cal.previous_close_ns(self.now_ns) or self.now_ns
        maps: list[Any] = []
        recs: list[Any] = []
        self._last_quote.clear()  # new listings: every contract is quoted afresh
        for st in self.state.values():
            st.contracts = []
            for exp in m.chain_expiries(st.symbol, s.date, self.now_ns < s.close_ns):
                for k in m.strikes_around(st.price):
                    for right in ("C", "P"):
                        occ = occ_symbol(st.symbol, exp, right, k)
                        mny = abs(math.log(k / st.price))
                        oi = max(int(self.rng.integers(200, 5000) * math.exp(-8 * mny)), 10)
                        c = m.Contract(occ, self._next_iid, st.symbol, exp, k, right, oi)
                        self._next_iid += 1
                        st.contracts.append(c)
                        maps.append(self._mapping(c.instrument_id, occ))
                        recs.append(self._definition(c))
                        recs.append(self._open_interest(c, prev_close_ns))
        return maps + recs

    def _definition(self, c: m.Contract) -> Any:
        return dbn.InstrumentDefMsg(
            publisher_id=PUBLISHER_OPRA, instrument_id=c.instrument_id, ts_event=self.now_ns, ts_recv=self.now_ns,
            min_price_increment=10_000_000, display_factor=SCALE, raw_symbol=c.occ, asset=c.underlying,
            security_type="OPT",
            instrument_class=dbn.InstrumentClass.CALL if c.right == "C" else dbn.InstrumentClass.PUT,
            security_update_action=dbn.SecurityUpdateAction.ADD, expiration=cv.expiry_ns(c.expiry),
            activation=self.now_ns, strike_price=round(c.strike * SCALE),
            underlying_id=self.state[c.underlying].instrument_id, contract_multiplier=cv.CONTRACT_MULTIPLIER,
            currency="USD", exchange="OPRA", underlying=c.underlying, strike_price_currency="USD",
        )  # fmt: skip

    def _open_interest(self, c: m.Contract, as_of_ns: int) -> Any:
        """Open interest as published before the open: ``ts_ref`` is the previous session's close."""
        return dbn.StatMsg(
            publisher_id=PUBLISHER_OPRA, instrument_id=c.instrument_id, ts_event=self.now_ns, ts_recv=self.now_ns,
            ts_ref=as_of_ns, price=dbn.UNDEF_PRICE, quantity=int(c.open_interest), sequence=0, ts_in_delta=0,
            stat_type=dbn.StatType.OPEN_INTEREST, channel_id=0, stat_flags=0,
        )  # fmt: skip

    def step(self, seconds: float, *, option_quotes: bool = True, wall_ns: int | None = None) -> list[Any]:
        """Advance up to ``seconds`` of market time (cut at phase boundaries); the records of it.

        Empty while the clock shows the market closed.
        """
        tick = self.clock.advance(seconds, wall_ns)
        if tick is None:
            return []
        recs: list[Any] = self.open_session() if tick.new_session else []
        recs.extend(self._interval(tick, option_quotes))
        if tick.end_ns == tick.session.close_ns:
            self._regular_close = {sym: st.price for sym, st in self.state.items()}
        return recs

    def _interval(self, tick: Tick, option_quotes: bool) -> list[Any]:
        recs: list[Any] = []
        t0, t1 = tick.start_ns, tick.end_ns
        seconds = (t1 - t0) / cv.NS_PER_S
        years = m.variance_years(tick.session, tick.phase, seconds)
        quote_options = option_quotes and tick.phase == "regular"
        self._since_option_quotes_s = self._since_option_quotes_s + seconds if tick.phase == "regular" else 0.0
        option_seconds = self._since_option_quotes_s  # option trades accrue over the time since the last quotes
        if quote_options:
            self._since_option_quotes_s = 0.0
        for st in self.state.values():
            st.advance(self.rng, years)
            spread = max(0.01, round(st.price * 0.0001, 2))
            rate = m.trade_rate(st.profile, tick.session, tick.phase, t0)
            if tick.phase == "regular":
                rate *= self._volume_factor(st.symbol, t0)
            n = int(self.rng.poisson(rate * seconds))
            ts = np.sort(self.rng.integers(t0, t1, n)) if n else np.empty(0, np.int64)
            sides = self.rng.random(n) < 0.5
            sizes = self.rng.choice(m.TRADE_SIZES, n)
            for i in range(n):
                st.seq += 1
                t = int(ts[i])
                buy = bool(sides[i])
                recs.append(dbn.TradeMsg(
                    publisher_id=PUBLISHER_EQ, instrument_id=st.instrument_id, ts_event=t,
                    price=_fx(st.price + (spread / 2 if buy else -spread / 2)), size=int(sizes[i]),
                    action=dbn.Action.TRADE, side=dbn.Side.ASK if buy else dbn.Side.BID, depth=0, ts_recv=t,
                    sequence=st.seq,
                ))  # fmt: skip
            st.seq += 1
            mid = round(st.price, 2)
            bid, ask = mid - spread / 2, mid + spread / 2
            tq = t1 - 1
            recs.append(dbn.MBP1Msg(
                publisher_id=PUBLISHER_EQ, instrument_id=st.instrument_id, ts_event=tq,
                price=_fx(bid), size=100, action=dbn.Action.MODIFY, side=dbn.Side.BID, depth=0, ts_recv=tq,
                sequence=st.seq,
                levels=dbn.BidAskPair(bid_px=_fx(bid), ask_px=_fx(ask),
                                      bid_sz=int(self.rng.integers(1, 20) * 100),
                                      ask_sz=int(self.rng.integers(1, 20) * 100),
                                      bid_ct=1, ask_ct=1),
            ))  # fmt: skip
            if quote_options and st.contracts:
                recs.extend(self._option_quotes(st, tq, option_seconds))
        return recs

    def _volume_factor(self, symbol: str, ts_ns: int) -> float:
        """The regular minute's volume factor (``model.volume_noise``), drawn once per minute."""
        minute = ts_ns - ts_ns % cv.NS_PER_MIN
        cur = self._minute_volume.get(symbol)
        if cur is None or cur[0] != minute:
            cur = self._minute_volume[symbol] = (minute, float(m.volume_noise(self.rng, 1)[0]))
        return cur[1]

    def chain_prices(self, st: m.UnderlyingState, now_ns: int) -> tuple[npt.NDArray[np.float64], Any]:
        """Model premiums (per share) and IVs of the chain of ``st`` at ``now_ns``."""
        return m.chain_prices(_price_fn(cv.exercise_style(st.symbol) == "european"), st, now_ns, self.rate)

    def _option_quotes(self, st: m.UnderlyingState, ts: int, seconds: float) -> list[Any]:
        px, _ = self.chain_prices(st, ts)
        half = np.maximum(0.01, np.round(px * OPTION_SPREAD, 2)) / 2 + 0.005
        bid = np.maximum(np.round(px - half, 2), 0.0)
        ask = np.round(px + half, 2)
        out: list[Any] = []
        refresh = int(OPTION_QUOTE_REFRESH_S * cv.NS_PER_S)
        for i, c in enumerate(st.contracts):
            b, a = float(bid[i]), float(ask[i])
            bid_sz, ask_sz = int(self.rng.integers(1, 50)), int(self.rng.integers(1, 50))
            last = self._last_quote.get(c.instrument_id)
            if last is None or last[0] != b or last[1] != a or ts - last[2] >= refresh:
                self._last_quote[c.instrument_id] = (b, a, ts)
                out.append(self._cbbo(c.instrument_id, ts, b, a, bid_sz, ask_sz))
            if self.rng.random() < OPTION_TRADE_RATE * seconds:
                st.seq += 1
                out.append(dbn.TradeMsg(
                    publisher_id=PUBLISHER_OPRA, instrument_id=c.instrument_id, ts_event=ts,
                    price=_fx(px[i]),
                    size=int(self.rng.integers(1, 20)), action=dbn.Action.TRADE, side=dbn.Side.NONE, depth=0,
                    ts_recv=ts, sequence=st.seq,
                ))  # fmt: skip
        return out

    @staticmethod
    def _cbbo(iid: int, ts: int, bid: float, ask: float, bid_sz: int, ask_sz: int) -> Any:
        return dbn.CBBOMsg(
            rtype=dbn.RType.CBBO_1S, publisher_id=PUBLISHER_OPRA, instrument_id=iid, ts_event=ts,
            price=dbn.UNDEF_PRICE, size=0, side=dbn.Side.NONE, ts_recv=ts,
            levels=dbn.ConsolidatedBidAskPair(bid_px=_fx(bid), ask_px=_fx(ask), bid_sz=bid_sz, ask_sz=ask_sz,
                                              bid_pb=PUBLISHER_OPRA, ask_pb=PUBLISHER_OPRA),
        )  # fmt: skip
