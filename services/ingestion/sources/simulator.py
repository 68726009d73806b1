"""Market simulator (the embedded default without DATABENTO_API_KEY), emitting real DBN records.

Underlyings (settings.symbols) follow a GARCH(1,1)-style variance process (volatility clustering)
with Poisson jumps, at realistic starting prices/vols; trade counts follow the U-shaped intraday
volume curve (heavier at the open and close). Option chains (weekly expiries for the next 4
Fridays plus the next 3 monthly third Fridays; strikes around spot) are priced as American options
(``aiots.core.options.american_price``, Bjerksund-Stensland 2002) on a volatility smile (skew and
curvature in log-moneyness, term structure), with bid-ask spreads, volume and open interest.

Everything is emitted as DBN records (``SymbolMappingMsg``, ``InstrumentDefMsg``, ``StatMsg``,
``TradeMsg``, ``MBP1Msg``, ``CBBOMsg``, ``OHLCVMsg``) and goes through the same normaliser as
real data. Seeded and reproducible; simulated time runs at ``speed`` x real time.

:func:`seed_history` writes, once per database, >= ``history_sessions`` RTH sessions of 1-minute
bars, a year of daily bars, daily ATM IV and open interest, so every analytics query answers at
once (NumPy generation, one COPY per table).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import databento_dbn as _dbn
import numpy as np
import numpy.typing as npt

from aiots.services.ingestion.normalize import (
    SOURCE_SIMULATOR,
    Batch,
    Normalizer,
    occ_symbol,
)
from aiots.services.ingestion.pipeline import Pipeline

log = logging.getLogger(__name__)
dbn: Any = _dbn  # the record constructors' stubs type enum arguments loosely

NY = ZoneInfo("America/New_York")
NS = 1_000_000_000
YEAR_S = 365.0 * 86_400
SCALE = 1_000_000_000  # DBN fixed-point
PUBLISHER_EQ = 1
PUBLISHER_OPRA = 30
RATE = 0.045

# ticker -> (start price, annual vol, ATM IV premium over realised)
PROFILES: dict[str, tuple[float, float]] = {
    "AAPL": (190.0, 0.25),
    "GOOGL": (150.0, 0.28),
    "MSFT": (420.0, 0.22),
    "AMZN": (185.0, 0.30),
    "TSLA": (210.0, 0.55),
    "NVDA": (120.0, 0.50),
    "META": (500.0, 0.35),
    "SPY": (540.0, 0.14),
    "QQQ": (465.0, 0.18),
}
DEFAULT_PROFILE = (100.0, 0.30)


def _price_fn() -> Any:
    """American pricer: aiots.core.options when built, else Black-Scholes (clearly a fallback)."""
    try:
        from aiots.core.options import american_price

        return american_price
    except ImportError:  # pragma: no cover - only before the core extension is built
        return _black_scholes_fallback


def _black_scholes_fallback(
    S: Any, K: Any, T: Any, r: float, sigma: Any, q: float = 0.0, is_call: Any = True, **_: Any
) -> Any:
    """FALLBACK ONLY (European Black-Scholes) for when aiots.core.options is not built."""
    from scipy.stats import norm

    S, K, T, sigma = (np.asarray(x, dtype=float) for x in (S, K, T, sigma))
    d1 = (np.log(S / K) + (r - q + 0.5 * sigma**2) * T) / (sigma * np.sqrt(T))
    d2 = d1 - sigma * np.sqrt(T)
    call = S * np.exp(-q * T) * norm.cdf(d1) - K * np.exp(-r * T) * norm.cdf(d2)
    put = call - S * np.exp(-q * T) + K * np.exp(-r * T)
    return np.where(np.asarray(is_call), call, put)


def _fx(dollars: float) -> int:
    """Dollars rounded to the cent, as DBN fixed point (1e-9)."""
    return round(float(dollars) * 100) * (SCALE // 100)


def volume_curve(minutes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Relative intraday volume at minute-of-session 0..389 (U shape, mean 1)."""
    x = minutes / 389.0
    w = 1.0 + 2.2 * np.exp(-x / 0.06) + 1.4 * np.exp(-(1 - x) / 0.08)
    return np.asarray(w / 1.55, dtype=np.float64)


def strike_step(spot: float) -> float:
    return 1.0 if spot < 100 else 2.5 if spot < 250 else 5.0


def smile_iv(atm: float, k_over_s: npt.NDArray[np.float64], t_years: npt.NDArray[np.float64]) -> Any:
    """IV on a smile: skew and curvature in log-moneyness, flattening with maturity."""
    m = np.log(k_over_s)
    sq = np.sqrt(np.maximum(t_years, 1 / 365) / 0.25)
    return np.clip(atm * (1 - 0.35 * m / sq + 1.2 * m * m / sq), 0.05, 3.0)


def expiries(today: dt.date, weeklies: int = 4, monthlies: int = 3) -> list[dt.date]:
    """Next ``weeklies`` Fridays (after today) plus the next ``monthlies`` third Fridays."""
    out: set[dt.date] = set()
    d = today + dt.timedelta(days=(4 - today.weekday()) % 7 or 7)
    for i in range(weeklies):
        out.add(d + dt.timedelta(weeks=i))
    y, m = today.year, today.month
    while len([e for e in out if _third_friday(e.year, e.month) == e]) < monthlies:
        tf = _third_friday(y, m)
        if tf > today:
            out.add(tf)
        m += 1
        if m > 12:
            y, m = y + 1, 1
    return sorted(out)


def _third_friday(y: int, m: int) -> dt.date:
    d = dt.date(y, m, 1)
    return d + dt.timedelta(days=(4 - d.weekday()) % 7 + 14)


def sessions_before(day: dt.date, n: int) -> list[dt.date]:
    """The ``n`` weekdays before ``day`` (oldest first). Holidays are ignored (a simulator)."""
    out: list[dt.date] = []
    d = day
    while len(out) < n:
        d -= dt.timedelta(days=1)
        if d.weekday() < 5:
            out.append(d)
    return out[::-1]


def _rth_open_ns(d: dt.date) -> int:
    return int(dt.datetime(d.year, d.month, d.day, 9, 30, tzinfo=NY).timestamp()) * NS


@dataclass
class Contract:
    """One simulated option contract."""

    occ: str
    instrument_id: int
    underlying: str
    expiry: dt.date
    strike: float
    right: str
    open_interest: int


@dataclass
class UnderlyingState:
    """Simulated state of one underlying."""

    symbol: str
    instrument_id: int
    price: float
    vol: float  # long-run annual vol
    var: float  # current annual variance (GARCH)
    atm_iv: float
    contracts: list[Contract] = field(default_factory=list)
    seq: int = 0


class MarketSimulator:
    """Generates DBN records for the underlyings and their option chains."""

    def __init__(self, symbols: Sequence[str], seed: int = 7, start_ns: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.now_ns = start_ns if start_ns is not None else int(dt.datetime.now(dt.UTC).timestamp()) * NS
        self.state: dict[str, UnderlyingState] = {}
        for i, s in enumerate(symbols):
            px, vol = PROFILES.get(s, DEFAULT_PROFILE)
            self.state[s] = UnderlyingState(s, 1000 + i, px, vol, vol * vol, vol * 1.1)
        self.price = _price_fn()
        self._next_iid = 100_000

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
            stype_out_symbol=sym, start_ts=self.now_ns, end_ts=self.now_ns + 86_400 * NS,
        )  # fmt: skip

    def build_chains(self) -> list[Any]:
        """(Re)list option chains around spot; returns InstrumentDefMsg + StatMsg(OI) + mappings."""
        today = dt.datetime.fromtimestamp(self.now_ns / NS, NY).date()
        maps: list[Any] = []
        recs: list[Any] = []
        for st in self.state.values():
            step = strike_step(st.price)
            center = round(st.price / step) * step
            strikes = [center + step * k for k in range(-8, 9)]
            st.contracts = []
            for exp in expiries(today):
                for k in strikes:
                    for right in ("C", "P"):
                        occ = occ_symbol(st.symbol, exp, right, k)
                        mny = abs(math.log(k / st.price))
                        oi = int(self.rng.integers(200, 5000) * math.exp(-8 * mny))
                        c = Contract(occ, self._next_iid, st.symbol, exp, k, right, max(oi, 10))
                        self._next_iid += 1
                        st.contracts.append(c)
                        maps.append(self._mapping(c.instrument_id, occ))
                        recs.append(self._definition(c))
                        recs.append(self._stat(c.instrument_id, dbn.StatType.OPEN_INTEREST, c.open_interest))
        return maps + recs

    def _definition(self, c: Contract) -> Any:
        exp_ns = int(dt.datetime(c.expiry.year, c.expiry.month, c.expiry.day, tzinfo=dt.UTC).timestamp()) * NS
        return dbn.InstrumentDefMsg(
            publisher_id=PUBLISHER_OPRA, instrument_id=c.instrument_id, ts_event=self.now_ns, ts_recv=self.now_ns,
            min_price_increment=10_000_000, display_factor=SCALE, raw_symbol=c.occ, asset=c.underlying,
            security_type="OPT",
            instrument_class=dbn.InstrumentClass.CALL if c.right == "C" else dbn.InstrumentClass.PUT,
            security_update_action=dbn.SecurityUpdateAction.ADD, expiration=exp_ns, activation=self.now_ns,
            strike_price=round(c.strike * SCALE), underlying_id=self.state[c.underlying].instrument_id,
            contract_multiplier=100, currency="USD", exchange="OPRA", underlying=c.underlying,
            strike_price_currency="USD",
        )  # fmt: skip

    def _stat(self, iid: int, stat_type: Any, qty: float) -> Any:
        return dbn.StatMsg(
            publisher_id=PUBLISHER_OPRA, instrument_id=iid, ts_event=self.now_ns, ts_recv=self.now_ns,
            ts_ref=self.now_ns, price=dbn.UNDEF_PRICE, quantity=int(qty), sequence=0, ts_in_delta=0,
            stat_type=stat_type, channel_id=0, stat_flags=0,
        )  # fmt: skip

    def step(self, seconds: float, *, option_quotes: bool = True) -> list[Any]:
        """Advance ``seconds`` of simulated time; returns the records of that interval in order."""
        recs: list[Any] = []
        t0 = self.now_ns
        dt_ns = int(seconds * NS)
        minute = (dt.datetime.fromtimestamp(t0 / NS, NY) - dt.datetime.fromtimestamp(t0 / NS, NY).replace(
            hour=9, minute=30, second=0, microsecond=0)).total_seconds() / 60  # fmt: skip
        intensity = float(volume_curve(np.array([min(max(minute, 0.0), 389.0)]))[0])
        for st in self.state.values():
            years = seconds / (252 * 6.5 * 3600)
            shock = self.rng.standard_normal()
            jump = self.rng.normal(0, 0.02) if self.rng.random() < 0.05 * years * 252 else 0.0
            ret = -0.5 * st.var * years + math.sqrt(st.var * years) * shock + jump
            st.price *= math.exp(ret)
            # GARCH(1,1)-like variance update (annualised), mean-reverting to vol^2
            realised = ret * ret / max(years, 1e-12)
            st.var = 0.9 * st.var + 0.05 * realised + 0.05 * st.vol * st.vol
            st.var = min(max(st.var, 0.0025), 4.0)
            st.atm_iv = 0.97 * st.atm_iv + 0.03 * math.sqrt(st.var) * 1.1
            n = int(self.rng.poisson(3.0 * intensity * seconds))
            ts = np.sort(self.rng.integers(t0, t0 + dt_ns, n)) if n else np.empty(0, np.int64)
            px = st.price * np.exp(self.rng.normal(0, math.sqrt(st.var * years) * 0.3, n))
            spread = max(0.01, round(st.price * 0.0001, 2))
            for i in range(n):
                st.seq += 1
                p = _fx(px[i])
                t = int(ts[i])
                recs.append(dbn.TradeMsg(
                    publisher_id=PUBLISHER_EQ, instrument_id=st.instrument_id, ts_event=t, price=p,
                    size=int(self.rng.integers(1, 5) * 100), action=dbn.Action.TRADE,
                    side=dbn.Side.BID if self.rng.random() < 0.5 else dbn.Side.ASK, depth=0, ts_recv=t,
                    sequence=st.seq,
                ))  # fmt: skip
            st.seq += 1
            mid = round(st.price, 2)
            bid, ask = mid - spread / 2, mid + spread / 2
            tq = t0 + dt_ns - 1
            recs.append(dbn.MBP1Msg(
                publisher_id=PUBLISHER_EQ, instrument_id=st.instrument_id, ts_event=tq,
                price=_fx(bid), size=100, action=dbn.Action.MODIFY, side=dbn.Side.BID, depth=0, ts_recv=tq,
                sequence=st.seq,
                levels=dbn.BidAskPair(bid_px=_fx(bid), ask_px=_fx(ask),
                                      bid_sz=int(self.rng.integers(1, 20) * 100),
                                      ask_sz=int(self.rng.integers(1, 20) * 100),
                                      bid_ct=1, ask_ct=1),
            ))  # fmt: skip
            if option_quotes and st.contracts:
                recs.extend(self._option_quotes(st, tq, seconds))
        self.now_ns = t0 + dt_ns
        return recs

    def chain_prices(self, st: UnderlyingState, now_ns: int) -> tuple[npt.NDArray[np.float64], Any]:
        """Model prices (per share) and IVs of the chain of ``st`` at ``now_ns``."""
        now = dt.datetime.fromtimestamp(now_ns / NS, dt.UTC)
        K = np.array([c.strike for c in st.contracts])
        T = np.array([
            max((dt.datetime(c.expiry.year, c.expiry.month, c.expiry.day, 16, tzinfo=NY) - now).total_seconds(), 3600)
            / YEAR_S for c in st.contracts
        ])  # fmt: skip
        is_call = np.array([c.right == "C" for c in st.contracts])
        iv = smile_iv(st.atm_iv, K / st.price, T)
        S = np.full(K.shape[0], st.price)
        px = np.asarray(self.price(S, K, T, RATE, iv, 0.0, is_call), dtype=np.float64)
        return np.maximum(px, 0.01), iv

    def _option_quotes(self, st: UnderlyingState, ts: int, seconds: float) -> list[Any]:
        px, _ = self.chain_prices(st, ts)
        half = np.maximum(0.01, np.round(px * 0.02, 2)) / 2 + 0.005
        bid = np.maximum(np.round(px - half, 2), 0.0)
        ask = np.round(px + half, 2)
        out: list[Any] = []
        for i, c in enumerate(st.contracts):
            out.append(dbn.CBBOMsg(
                rtype=dbn.RType.CBBO_1S, publisher_id=PUBLISHER_OPRA, instrument_id=c.instrument_id, ts_event=ts,
                price=dbn.UNDEF_PRICE, size=0, side=dbn.Side.NONE, ts_recv=ts,
                levels=dbn.ConsolidatedBidAskPair(bid_px=_fx(bid[i]), ask_px=_fx(ask[i]),
                                                  bid_sz=int(self.rng.integers(1, 50)),
                                                  ask_sz=int(self.rng.integers(1, 50)),
                                                  bid_pb=PUBLISHER_OPRA, ask_pb=PUBLISHER_OPRA),
            ))  # fmt: skip
            if self.rng.random() < 0.02 * seconds:
                st.seq += 1
                out.append(dbn.TradeMsg(
                    publisher_id=PUBLISHER_OPRA, instrument_id=c.instrument_id, ts_event=ts,
                    price=_fx(px[i]),
                    size=int(self.rng.integers(1, 20)), action=dbn.Action.TRADE, side=dbn.Side.NONE, depth=0,
                    ts_recv=ts, sequence=st.seq,
                ))  # fmt: skip
        return out


# --- seeded history ---------------------------------------------------------------------------
OHLCV_DTYPE = np.dtype(dbn.OHLCVMsg._dtypes)  # type: ignore[attr-defined]


def _ohlcv_array(rtype: int, iid: int, ts: npt.NDArray[np.int64], o: Any, h: Any, lo: Any, c: Any, v: Any) -> Any:
    a = np.zeros(ts.shape[0], dtype=OHLCV_DTYPE)
    a["length"] = OHLCV_DTYPE.itemsize // 4
    a["rtype"] = rtype
    a["publisher_id"] = PUBLISHER_EQ
    a["instrument_id"] = iid
    a["ts_event"] = ts
    for name, x in (("open", o), ("high", h), ("low", lo), ("close", c)):
        a[name] = np.round(np.asarray(x) * 100).astype(np.int64) * (SCALE // 100)
    a["volume"] = np.asarray(v).astype(np.uint64)
    return a


def history_batches(sim: MarketSimulator, sessions: int, days: int = 252) -> list[Batch]:
    """Seeded history as normalised batches: 1m bars (RTH), daily bars, ATM IV, OI; ends yesterday."""
    rng = np.random.default_rng(int(sim.rng.integers(1 << 31)))
    norm = Normalizer(SOURCE_SIMULATOR, dataset="SIM")
    today = dt.datetime.fromtimestamp(sim.now_ns / NS, NY).date()
    daily_days = sessions_before(today, days)
    minute_days = daily_days[-sessions:]
    out: list[Batch] = []
    curve = volume_curve(np.arange(390, dtype=np.float64))
    for st in sim.state.values():
        norm.map_id(st.instrument_id, st.symbol)
        # daily path ending at the current price (GARCH-ish vol, jumps), backwards from today
        sig = st.vol / math.sqrt(252)
        vols = sig * np.exp(np.cumsum(rng.normal(0, 0.08, days)) * 0.5)
        rets = rng.normal(0, 1, days) * vols + (rng.random(days) < 0.02) * rng.normal(0, 0.04, days)
        cum = np.cumsum(rets)
        closes = st.price * np.exp(cum - cum[-1])  # ends at the current price
        opens = closes * np.exp(-rets * rng.uniform(0.2, 0.8, days))
        span = np.abs(rng.normal(0, vols)) + np.abs(rets) * 0.3
        highs = np.maximum(opens, closes) * (1 + span)
        lows = np.minimum(opens, closes) * (1 - span)
        dvol = (rng.lognormal(0, 0.3, days) * 2e6 * (1 + 20 * np.abs(rets))).round()
        ts_d = np.array([int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) * NS for d in daily_days])
        out.append(norm.array(35, _ohlcv_array(35, st.instrument_id, ts_d, opens, highs, lows, closes, dvol)))
        # 1-minute bars for the last `sessions` days, consistent with that day's open/close
        m_ts, m_o, m_h, m_l, m_c, m_v = [], [], [], [], [], []
        for j, d in enumerate(minute_days):
            k = days - sessions + j
            steps = rng.normal(0, vols[k] / math.sqrt(390), 390)
            path = np.log(opens[k]) + np.cumsum(steps)
            path += np.linspace(0, np.log(closes[k]) - path[-1], 390)
            c = np.exp(path)
            o = np.concatenate([[opens[k]], c[:-1]])
            wig = np.abs(rng.normal(0, vols[k] / math.sqrt(390) * 0.5, 390))
            m_ts.append(_rth_open_ns(d) + np.arange(390, dtype=np.int64) * 60 * NS)
            m_o.append(o)
            m_c.append(c)
            m_h.append(np.maximum(o, c) * (1 + wig))
            m_l.append(np.minimum(o, c) * (1 - wig))
            m_v.append((curve * dvol[k] / 390 * rng.lognormal(0, 0.2, 390)).round())
        out.append(norm.array(33, _ohlcv_array(33, st.instrument_id, np.concatenate(m_ts), np.concatenate(m_o),
                                               np.concatenate(m_h), np.concatenate(m_l), np.concatenate(m_c),
                                               np.concatenate(m_v))))  # fmt: skip
        # daily ATM IV: realised vol (20d) times a premium, with noise
        rv = np.sqrt(np.convolve(rets**2, np.ones(20) / 20, mode="same") * 252)
        iv = np.clip(rv * 1.1 + rng.normal(0, 0.01, days), 0.05, 3.0)
        st.atm_iv = float(iv[-1])
        b = Batch()
        b.rows["atm_iv_history"].extend(
            (st.symbol, d, float(v), float(c)) for d, v, c in zip(daily_days, iv, closes, strict=True)
        )
        out.append(b)
    meta = Batch()
    meta.rows["instruments"].extend(norm.instrument_rows())
    out.insert(0, meta)
    return out


async def seed_history(pool: Any, writer: Any, sim: MarketSimulator, sessions: int, seed: int) -> bool:
    """Write the seeded history once per database (flag ``aiots_meta.simulator_history``)."""
    key = f"seed={seed};sessions={sessions}"
    done = await pool.fetchval("SELECT value FROM aiots_meta WHERE key = 'simulator_history'")
    if done == key:
        return False
    batches = await asyncio.to_thread(history_batches, sim, sessions)
    for b in batches:
        await writer.put(b)
    await writer.flush()
    await pool.execute(
        """INSERT INTO aiots_meta (key, value) VALUES ('simulator_history', $1)
           ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value""",
        key,
    )
    return True


class SimulatorSource:
    """Runs the simulator in (scaled) real time into a pipeline until stopped."""

    def __init__(
        self,
        pipeline: Pipeline,
        symbols: Sequence[str],
        *,
        seed: int = 7,
        speed: float = 1.0,
        tick_s: float = 1.0,
        option_every_s: float = 5.0,
        start_ns: int | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.sim = MarketSimulator(symbols, seed, start_ns)
        self.norm = Normalizer(SOURCE_SIMULATOR, dataset="SIM")
        self.speed = speed
        self.tick_s = tick_s
        self.option_every_s = option_every_s
        self.records = 0
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def setup(self) -> None:
        """Session start: chains, definitions, OI and symbol mappings."""
        recs = self.sim.mapping_records() + self.sim.build_chains()
        await self.pipeline.process(self.norm.records(recs))

    async def run_steps(self, n: int) -> None:
        """Advance ``n`` ticks as fast as possible (tests, benchmarks)."""
        since_opt = self.option_every_s
        for _ in range(n):
            since_opt += self.tick_s
            recs = self.sim.step(self.tick_s, option_quotes=since_opt >= self.option_every_s)
            if since_opt >= self.option_every_s:
                since_opt = 0.0
            self.records += len(recs)
            await self.pipeline.process(self.norm.records(recs))
            await self.pipeline.close_bars(self.sim.now_ns)

    async def run(self) -> None:
        """Tick every ``tick_s / speed`` wall seconds until :meth:`stop`."""
        await self.setup()
        since_opt = self.option_every_s
        while not self._stop.is_set():
            since_opt += self.tick_s
            with_opts = since_opt >= self.option_every_s
            if with_opts:
                since_opt = 0.0
            recs = self.sim.step(self.tick_s, option_quotes=with_opts)
            self.records += len(recs)
            await self.pipeline.process(self.norm.records(recs))
            await self.pipeline.close_bars(self.sim.now_ns)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.tick_s / self.speed)
