"""The replay: bars and option quotes in time order through the live :class:`SignalEngine`,
entries and exits through the shared :class:`aiots.core.execution.ExecutionModel`.

Clock: a bar is decided on at its close (``Bar.close_ts_ns``). Option quote bars are stamped at
their **end**; before the bars closing at time T are evaluated, every quote known at T (ending
at or before T) is fed to the engine. So a decision at T fills at the ask of the quote bar ending
at T (stale or one-sided quotes refuse the fill, as the execution model says).

Exits (a long option, one contract per signal, checked on every later quote of the contract):
TARGET when the bid reaches the signal's target, STOP when the bid falls to its stop, both sold
at that bid; HORIZON at the signal's horizon, CLOSE ``close_buffer`` before the session's close
(early closes included) and EXPIRY ``close_buffer`` before the contract's expiry: the live
tracker's deadline rule (``signals.lifecycle``): sold at the deadline at the bid of the latest
quote known then if the execution model accepts it, else at the first accepted quote after. A
contract that expires with no executable bid settles at its intrinsic value from the
underlying's last close. Entries are refused outside regular hours
and within ``close_buffer`` of the close.

The strategies, the features, contract selection and the signal levels are the engine's own:
this module only calls :meth:`SignalEngine.evaluate` (as the engine's own feature state streamed
in columns, then :meth:`SignalEngine.decide_lazily`) and :meth:`SignalEngine.select`, the two
halves of :meth:`SignalEngine.on_bar` that live mode runs.

Size: the replay loop, the exits of open positions, the null model's plan and the per-symbol
parallel run all work on one :class:`Replay`'s state; apart they would pass that state around.
"""

from __future__ import annotations

import dataclasses
import gc
import heapq
import math
import multiprocessing
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from aiots.core.conventions import NS_PER_DAY, NS_PER_MIN, NY, calendar, expiry_ns, ny_date
from aiots.core.execution import ExecutionModel, Fill, Quote, Refused
from aiots.services.backtest.modelled import ChainIV, ModelledChainBook, ModelSettings, RealisedVol
from aiots.services.backtest.readers import BarSeries, ChainSnapshots, OptionQuoteBars
from aiots.services.common.gc_tuning import frozen_heap
from aiots.services.features.state import new_bar
from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.engine import SignalEngine
from aiots.services.signals.lifecycle import exec_quote, exit_at_deadline, exit_past_deadline
from aiots.services.signals.models import Bar, Direction, Idea, OptionQuote, Signal

PricedFrom = Literal["quotes", "modelled"]
ExitReason = Literal["TARGET", "STOP", "HORIZON", "CLOSE", "EXPIRY"]
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class BacktestSettings:
    """Replay and execution settings (times ns; prices dollars per share)."""

    execution: ExecutionModel = field(default_factory=ExecutionModel)
    close_buffer_ns: int = 5 * NS_PER_MIN
    model: ModelSettings = field(default_factory=ModelSettings)
    start_ns: int | None = None  # decisions from this time (bars before it only warm the features)
    end_ns: int | None = None
    symbols: tuple[str, ...] = ()
    seed: int = 0
    #: (symbol, continuous yield) the engine prices with: the live services' ``market.dividend_yields``
    dividend_yields: tuple[tuple[str, float], ...] = ()
    workers: int = 1  # processes: > 1 replays the symbols in parallel (same result, see Replay.run)


@dataclass
class Trade:
    """One signal, its fill (or refusal) and its exit."""

    signal: Signal
    priced_from: PricedFrom
    iv_source: str
    entry: Fill | None = None
    refusal: str = ""
    exit_ns: int = 0
    exit_price: float = math.nan
    exit_reason: ExitReason | None = None
    exit_note: str = ""
    pnl_usd: float = math.nan
    pnl_pct: float = math.nan
    model_iv: float = math.nan
    deadline_ns: int = 0
    deadline_reason: ExitReason = "HORIZON"
    last_bid: float = math.nan
    last_quote: Quote | None = None  # the contract's latest quote known (the entry's, then each later one)

    @property
    def closed(self) -> bool:
        return self.exit_reason is not None

    @property
    def hit(self) -> bool:
        return self.exit_reason == "TARGET"


@dataclass
class ReplayResult:
    trades: list[Trade]
    bars: int
    symbols: list[str]
    sessions: dict[str, list[str]]
    filters_skipped: list[str]
    iv_sources: dict[str, str]
    signal_ts: list[SignalRecord]
    engine_skipped: dict[str, int] = field(default_factory=dict)  # the engine's count of ideas with no contract


@dataclass(frozen=True)
class SignalRecord:
    """What the null model copies from a strategy signal (move and ATR as fractions of spot)."""

    symbol: str
    strategy: str
    ts_ns: int
    direction: Direction
    move_frac: float
    horizon_ns: int
    evidence: float
    atr_frac: float


def _merge_bars(series: Iterable[BarSeries], start_ns: int | None, end_ns: int | None) -> list[Bar]:
    """Every bar of ``series`` closing at or before ``end_ns``, ordered by (close, symbol, row).

    The cyclic GC is paused while the bars are made: they hold no cycles, and each collection it
    would start meanwhile walks every bar made so far (a fifth of the replay's time on 50k bars)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return _merge(series, end_ns)
    finally:
        if paused:
            gc.enable()


def _merge(series: Iterable[BarSeries], end_ns: int | None) -> list[Bar]:
    parts: list[tuple[BarSeries, npt.NDArray[np.int64]]] = []
    for s in series:
        close = s.ts_ns + s.interval_ns
        keep = np.ones(len(s), dtype=bool)
        if end_ns is not None:
            keep &= close <= end_ns
        parts.append((s, np.flatnonzero(keep)))
    if not parts:
        return []
    parts.sort(key=lambda p: p[0].symbol)  # (close, symbol, row): a stable sort on close over symbol order
    close = np.concatenate([p[0].ts_ns[p[1]] + p[0].interval_ns for p in parts])
    order = np.argsort(close, kind="stable")
    cols = [
        np.concatenate([getattr(p[0], c)[p[1]] for p in parts]).tolist()
        for c in ("ts_ns", "open", "high", "low", "close", "volume")
    ]
    syms = [p[0].symbol for p in parts for _ in range(len(p[1]))]
    ivs = [p[0].interval_ns for p in parts for _ in range(len(p[1]))]
    ts, o, h, lo, c, v = cols  # python ints and floats (tolist of int64 / float64 columns)
    return [new_bar(syms[k], ts[k], o[k], h[k], lo[k], c[k], v[k], ivs[k]) for k in order.tolist()]


def _regular_hours(bars: list[Bar]) -> list[bool]:
    """``calendar().is_regular_hours(bar.ts_ns)`` of each bar (its column form)."""
    ts = np.fromiter((b.ts_ns for b in bars), dtype=np.int64, count=len(bars))
    flags: list[bool] = calendar().regular_hours_mask(ts).tolist()
    return flags


class _QuoteFeed:
    """Real option quote bars merged in time order, converted once per row on demand."""

    def __init__(self, files: list[OptionQuoteBars]) -> None:
        self._files = files
        self._heap: list[tuple[int, int, int]] = []
        for fi, f in enumerate(files):
            if len(f):
                heapq.heappush(self._heap, (int(f.ts_ns[0]), fi, 0))
        self._exp_ns: dict[str, int] = {}

    def pop_until(self, t_ns: int) -> Iterable[OptionQuote]:
        h = self._heap
        while h and h[0][0] <= t_ns:
            ts, fi, i = heapq.heappop(h)
            f = self._files[fi]
            if i + 1 < len(f):
                heapq.heappush(h, (int(f.ts_ns[i + 1]), fi, i + 1))
            e = str(f.expiry[i])
            ens = self._exp_ns.get(e)
            if ens is None:
                ens = self._exp_ns[e] = expiry_ns(e)
            bid, ask = float(f.bid[i]), float(f.ask[i])
            yield OptionQuote(
                occ_symbol=str(f.occ[i]),
                underlying=str(f.underlying[i]),
                expiry=e,
                expiry_ns=ens,
                strike=float(f.strike[i]),
                is_call=bool(f.is_call[i]),
                bid=bid if math.isfinite(bid) else 0.0,
                ask=ask if math.isfinite(ask) else 0.0,
                bid_size=float(f.bid_size[i]) if math.isfinite(f.bid_size[i]) else 0.0,  # the engine's 0 = unknown
                ask_size=float(f.ask_size[i]) if math.isfinite(f.ask_size[i]) else 0.0,
                ts_ns=ts,
            )


class Replay:
    """One pass over the data. ``null_plan`` (bar close ns, symbol) -> ideas replaces the strategies."""

    def __init__(
        self,
        cfg: SignalsConfig,
        bars: dict[str, BarSeries],
        quotes: list[OptionQuoteBars],
        chains: list[ChainSnapshots],
        settings: BacktestSettings,
        *,
        null_plan: dict[tuple[int, str], list[Idea]] | None = None,
        progress: ProgressFn | None = None,
        engine: SignalEngine | None = None,
        chain_iv: ChainIV | None = None,
    ) -> None:
        self.settings = settings
        self.real_symbols = {str(u) for f in quotes for u in set(f.underlying.tolist())}
        self.filters_skipped = ["min_open_interest", "min_volume"]  # no file the backtest reads carries them per minute
        sel = cfg.selection.model_copy(update={"min_open_interest": 0.0, "min_volume": 0.0})
        self.cfg = cfg.model_copy(update={"selection": sel})
        self.book = ModelledChainBook(settings.model, sel.risk_free_rate, sel.dte_min, sel.dte_max)
        self.book.real = set(self.real_symbols)
        self.null_plan = null_plan
        # The live engine; ``engine`` lets tests script the decisions (it must use ``self.book``).
        # The live engine with the live inputs: this run's execution model and dividend yields (the
        # signals service passes the same from the settings; a default here selected on other terms).
        yields = dict(settings.dividend_yields)
        self.engine = (
            engine
            if engine is not None
            else SignalEngine(
                self.cfg,
                chains=self.book,
                execution=settings.execution,
                dividend_yield=lambda s: yields.get(s, 0.0),
            )
        )
        self._inputs = (cfg, bars, quotes, chains, null_plan, engine is None)
        if null_plan is not None:
            self.engine.strategies = []  # the null model's ideas come from the plan
        syms = set(settings.symbols) if settings.symbols else None
        self.series = {k: v for k, v in bars.items() if syms is None or k in syms}
        self.chain_iv = (
            chain_iv
            if chain_iv is not None
            else ChainIV(chains, 0.5 * (sel.dte_min + sel.dte_max), symbols=set(self.series))
        )
        self.rv = RealisedVol(settings.model.realised_halflife_bars, settings.model.realised_min_returns)
        #: the regular-hours bars of each symbol not yet folded into ``self.rv``: it is read only
        #: when no other IV source answers, so they are folded in, in order, just before a read
        self._rv_pending: dict[str, list[Bar]] = {}
        self.quotes = quotes
        self.progress = progress
        self.trades: list[Trade] = []
        self._open: dict[str, list[Trade]] = {}  # occ -> open trades
        self._last_close: dict[str, float] = {}
        self.iv_sources: dict[str, str] = {}
        self.signal_log: list[SignalRecord] = []
        self._snap_labels: dict[int, str] = {}  # chain snapshot ns -> its IV source label

    # --- IV for modelled premiums ---------------------------------------------------------
    def _model_iv(self, symbol: str, now_ns: int, interval_ns: int) -> tuple[float, str]:
        m = self.settings.model
        if symbol in m.iv_by_symbol:
            return m.iv_by_symbol[symbol], "configured"
        iv, snap = self.chain_iv.iv(symbol, now_ns)
        if math.isfinite(iv) and snap is not None:
            label = self._snap_labels.get(snap)
            if label is None:
                label = self._snap_labels[snap] = f"chain {ny_date(snap).isoformat()}"
            return max(iv, m.min_iv), label
        if m.default_iv is not None:
            return m.default_iv, "configured default"
        pending = self._rv_pending.get(symbol)
        if pending:
            for b in pending:  # the updates the replay deferred, as it would have made them
                self.rv.update(symbol, b.ts_ns, b.close, b.interval_ns, regular=True)
            pending.clear()
        rv = self.rv.vol(symbol, interval_ns)
        return (max(rv, m.min_iv), "realised") if math.isfinite(rv) else (math.nan, "none yet")

    # --- positions ------------------------------------------------------------------------
    def _close(self, t: Trade, now_ns: int, price: float, reason: ExitReason, note: str = "") -> None:
        assert t.entry is not None
        t.exit_ns, t.exit_price, t.exit_reason, t.exit_note = now_ns, price, reason, note
        t.pnl_usd, t.pnl_pct = self.settings.execution.round_trip_pnl(t.entry, price)
        occ = t.signal.contract.occ_symbol
        lst = self._open.get(occ, [])
        if t in lst:
            lst.remove(t)
        if not lst:
            self._open.pop(occ, None)

    def _on_contract_quote(self, q: OptionQuote) -> None:
        """A new quote of a contract with open trades: check stops, targets and deadlines."""
        trades = self._open.get(q.occ_symbol)
        if not trades:
            return
        ex = self.settings.execution
        eq = exec_quote(q)
        for t in list(trades):
            assert t.entry is not None
            if q.ts_ns <= t.entry.ts_ns:
                continue
            if eq.has_bid:
                t.last_bid = eq.bid
            known, t.last_quote = t.last_quote, eq
            if q.ts_ns >= t.deadline_ns:  # the live tracker's horizon rule (signals.lifecycle)
                dl = exit_past_deadline(ex, known, eq, t.deadline_ns)
                if dl is not None:
                    self._close(t, dl.ts_ns, dl.price, t.deadline_reason)
                    continue
            if q.ts_ns >= q.expiry_ns:
                self._settle(t, q.ts_ns)
                continue
            if q.ts_ns >= t.deadline_ns:  # refused: still open, waits for an executable quote
                continue
            fill = ex.sell(eq, q.ts_ns)
            if isinstance(fill, Refused):
                continue
            if fill.price >= t.signal.target_price:
                self._close(t, q.ts_ns, fill.price, "TARGET")
            elif fill.price <= t.signal.stop_price:
                self._close(t, q.ts_ns, fill.price, "STOP")

    def _settle(self, t: Trade, now_ns: int) -> None:
        c = t.signal.contract
        spot = self._last_close.get(t.signal.symbol, math.nan)
        intrinsic = max(0.0, (spot - c.strike) if c.is_call else (c.strike - spot)) if math.isfinite(spot) else 0.0
        self._close(t, now_ns, intrinsic, "EXPIRY", "expired with no executable bid; settled at intrinsic value")

    def _enter(self, sig: Signal, now_ns: int, priced_from: PricedFrom, iv: float, iv_source: str) -> None:
        t = Trade(sig, priced_from, iv_source, model_iv=iv)
        self.trades.append(t)
        q = sig.contract  # the latest quote of the contract known now (the one selection used)
        session = calendar().session_of(now_ns)
        if session is not None and session.close_ns - self.settings.close_buffer_ns <= now_ns < session.close_ns:
            t.refusal = "NEAR_CLOSE"
            return
        t.last_quote = exec_quote(q)
        res = self.settings.execution.buy(t.last_quote, now_ns)
        if isinstance(res, Refused):
            t.refusal = res.reason.value
            return
        t.entry = res
        assert session is not None  # buy() refuses outside regular hours
        buf = self.settings.close_buffer_ns
        cands: list[tuple[int, ExitReason]] = [
            (sig.horizon_ns, "HORIZON"),
            (session.close_ns - buf, "CLOSE"),
            (q.expiry_ns - buf, "EXPIRY"),
        ]
        # On expiry day the close and the expiry coincide: call it EXPIRY.
        t.deadline_ns, t.deadline_reason = min(cands, key=lambda c: (c[0], c[1] != "EXPIRY"))
        self._open.setdefault(q.occ_symbol, []).append(t)

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> ReplayResult:
        """Replay every bar. With ``settings.workers > 1`` each symbol replays in its own process
        (symbols share nothing: features, cooldowns, chains and positions are per symbol) and the
        results are merged in the order one joint replay produces them (by bar close, then symbol)."""
        if self.settings.workers > 1 and len(self.series) > 1 and self._inputs[-1]:
            return _run_parallel(self)
        return self._run(None)

    def _run(self, data_end_ns: int | None) -> ReplayResult:
        """The replay; ``data_end_ns``: the last bar close of the whole data set (default: of these bars).

        Each symbol's features come from the engine's own feature state, fed the symbol's bars by
        :meth:`SymbolFeatures.stream` (in columns); each bar goes to :meth:`SignalEngine.decide_lazily`
        with its snapshot (that is :meth:`SignalEngine.evaluate`) or, before ``start_ns``, only warms
        the features (:meth:`SignalEngine.warm`)."""
        st = self.settings
        bars = _merge_bars(self.series.values(), None, st.end_ns)
        feed = _QuoteFeed(self.quotes) if self.quotes else None
        total = len(bars)
        eng = self.engine
        book = self.book
        real = book.real
        sessions: dict[str, set[str]] = {}
        step = max(1, total // 200)
        regular_at = _regular_hours(bars)
        by_symbol: dict[str, list[Bar]] = {}
        for bar in bars:
            by_symbol.setdefault(bar.symbol, []).append(bar)
        streams = {sym: eng.features(sym).stream(sb) for sym, sb in by_symbol.items()}
        del by_symbol
        start_ns = st.start_ns
        open_trades = self._open
        last_close = self._last_close
        rv_pending = self._rv_pending
        progress = self.progress
        day_iso: dict[int, str] = {}
        # the loaded data and the bars made above are out of the cyclic GC's reach while the replay runs
        # (one full collection walked them for ~7 % of a replay): gc_tuning.frozen_heap
        with frozen_heap():
            for n, bar in enumerate(bars):
                now = bar.ts_ns + bar.interval_ns  # bar.close_ts_ns
                # 1. every real option quote known at `now`
                if feed is not None:
                    for q in feed.pop_until(now):
                        eng.on_option_quote(q)
                        if q.occ_symbol in open_trades:
                            self._on_contract_quote(q)
                sym = bar.symbol
                last_close[sym] = bar.close
                regular = regular_at[n]
                if regular:  # RealisedVol.update ignores the other bars
                    pend = rv_pending.get(sym)
                    if pend is None:
                        pend = rv_pending[sym] = []
                    pend.append(bar)
                modelled = sym not in real
                # 2. modelled quotes of the open modelled trades of this symbol, at this bar's close
                if modelled and open_trades:
                    for occ in [o for o, ts in open_trades.items() if ts and ts[0].signal.symbol == sym]:
                        for t in list(open_trades.get(occ, [])):
                            b, a = book.reprice(t.signal.contract, now, bar.close, t.model_iv)
                            c = t.signal.contract
                            self._on_contract_quote(
                                OptionQuote(
                                    c.occ_symbol,
                                    c.underlying,
                                    c.expiry,
                                    c.expiry_ns,
                                    c.strike,
                                    c.is_call,
                                    b,
                                    a,
                                    ts_ns=now,
                                )
                            )
                # 3. decisions (the features of this bar first: warming only before start_ns)
                snapshot = next(streams[sym])  # the features move on; the snapshot is made if read
                if start_ns is None or now > start_ns:
                    if regular:  # a regular session lies inside one UTC day: its date is cached per UTC day
                        day = day_iso.get(bar.ts_ns // NS_PER_DAY)
                        if day is None:
                            day = day_iso[bar.ts_ns // NS_PER_DAY] = ny_date(bar.ts_ns).isoformat()
                        sessions.setdefault(sym, set()).add(day)
                    iv, src = (math.nan, "quotes")
                    if modelled:  # the chain the engine reads at this bar (synthesised only if it is read)
                        iv, src = self._model_iv(sym, now, bar.interval_ns)
                        book.set_state(sym, now, bar.close, iv)
                    if self.null_plan is None:
                        ideas = eng.decide_lazily(bar, snapshot)[0] if snapshot is not None else []
                    else:  # features only (done above): the null model's ideas come from the plan
                        ideas = [
                            dataclasses.replace(
                                i,
                                underlying_price=bar.close,
                                projected_move=i.projected_move * bar.close,
                                atr=i.atr * bar.close,
                            )
                            for i in self.null_plan.get((now, sym), [])
                        ]
                    if ideas:
                        if modelled:
                            self.iv_sources[sym] = src  # the latest source used
                        by_name = {i.strategy: i for i in ideas}
                        for sig in eng.select(bar, ideas):
                            idea = by_name[sig.strategy]
                            self.signal_log.append(
                                SignalRecord(
                                    sym,
                                    sig.strategy,
                                    now,
                                    sig.direction,
                                    idea.projected_move / bar.close,
                                    idea.horizon_ns,
                                    idea.evidence,
                                    getattr(idea, "atr", math.nan) / bar.close,
                                )
                            )
                            self._enter(sig, now, "modelled" if modelled else "quotes", iv, src)
                if progress is not None and (n % step == 0 or n == total - 1):
                    progress(n + 1, total)
        # trades still open at the end of the data: the last executable bid, or intrinsic if expired
        end = data_end_ns if data_end_ns is not None else (bars[-1].close_ts_ns if bars else 0)
        for occ in list(self._open):
            for t in list(self._open.get(occ, [])):
                dl = exit_at_deadline(st.execution, t.last_quote, t.deadline_ns) if t.deadline_ns <= end else None
                if dl is not None:  # no quote of the contract came after its deadline
                    self._close(t, dl.ts_ns, dl.price, t.deadline_reason)
                elif math.isfinite(t.last_bid):
                    self._close(t, end, t.last_bid, t.deadline_reason, "data ended; last bid seen")
                else:
                    self._settle(t, end)
        return ReplayResult(
            self.trades,
            total,
            sorted(self.series),
            {k: sorted(v) for k, v in sorted(sessions.items())},
            self.filters_skipped,
            dict(sorted(self.iv_sources.items())),
            self.signal_log,
            dict(sorted(getattr(self.engine, "skipped", {}).items())),
        )


# --- symbols in parallel processes -----------------------------------------------------------
_FORKED: tuple[Replay, int] | None = None  # what a forked worker reads (inherited, never pickled)


def _last_close_ns(series: Iterable[BarSeries], end_ns: int | None) -> int:
    """The last bar close of all ``series`` (at or before ``end_ns``), as the joint replay sees it."""
    last = 0
    for s in series:
        close = s.ts_ns + s.interval_ns
        if end_ns is not None:
            close = close[close <= end_ns]
        if len(close):
            last = max(last, int(close.max()))
    return last


def _replay_symbol(sym: str) -> ReplayResult:
    assert _FORKED is not None
    parent, end = _FORKED
    cfg, bars, quotes, chains, plan, _own = parent._inputs
    st = dataclasses.replace(parent.settings, symbols=(sym,), workers=1)
    sub = None if plan is None else {k: v for k, v in plan.items() if k[1] == sym}
    return Replay(cfg, {sym: bars[sym]}, quotes, chains, st, null_plan=sub, chain_iv=parent.chain_iv)._run(end)


def _run_parallel(rp: Replay) -> ReplayResult:
    """:meth:`Replay.run` with one process per symbol (``settings.workers`` at a time), merged."""
    global _FORKED
    syms = sorted(rp.series)
    end = _last_close_ns(rp.series.values(), rp.settings.end_ns)
    order = sorted(syms, key=lambda s: -len(rp.series[s]))  # longest first: the pool finishes together
    _FORKED = (rp, end)
    try:
        with multiprocessing.get_context("fork").Pool(min(rp.settings.workers, len(syms))) as pool:
            done: dict[str, ReplayResult] = {}
            total = sum(len(rp.series[s]) for s in syms)
            for sym, res in zip(order, pool.imap(_replay_symbol, order), strict=True):
                done[sym] = res
                if rp.progress is not None:
                    rp.progress(sum(r.bars for r in done.values()), total)
            pool.close()
            pool.join()  # workers exit normally (their CPU time is then accounted to this process)
    finally:
        _FORKED = None
    parts = [done[s] for s in syms]
    # stable sorts over the symbols in name order: the joint replay's order (bar close, then symbol)
    trades = sorted((t for r in parts for t in r.trades), key=lambda t: t.signal.created_ns)
    log = sorted((x for r in parts for x in r.signal_ts), key=lambda x: x.ts_ns)
    skipped: dict[str, int] = {}
    for r in parts:
        for k, v in r.engine_skipped.items():
            skipped[k] = skipped.get(k, 0) + v
    rp.trades, rp.signal_log = trades, log
    rp.iv_sources = {k: v for r in parts for k, v in r.iv_sources.items()}
    return ReplayResult(
        trades,
        sum(r.bars for r in parts),
        syms,
        dict(sorted((k, v) for r in parts for k, v in r.sessions.items())),
        rp.filters_skipped,
        dict(sorted(rp.iv_sources.items())),
        log,
        dict(sorted(skipped.items())),
    )


NULL_CANDIDATES = 10  # random sessions tried per signal; the first (in random order) that gets a contract counts


def _ny_minute(ts_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Minute of the New York day (0..1439) of each ns timestamp."""
    local = pd.to_datetime(ts_ns, utc=True).tz_convert(NY)
    return np.asarray(local.hour * 60 + local.minute, dtype=np.int64)


def null_plan(
    signals: list[SignalRecord],
    bars: dict[str, BarSeries],
    seed: int,
    start_ns: int | None = None,
    candidates: int = NULL_CANDIDATES,
) -> dict[tuple[int, str], list[Idea]]:
    """Random entries with the same count, symbol, direction, projected move and ATR (as fractions
    of spot), horizon and New York minute of the day as the strategies' signals, on random
    sessions (seeded).

    Each signal k gets up to ``candidates`` random bars at its minute (distinct sessions), named
    ``null:<strategy>#<k>.<rank>``. They all go through the same contract selection in a second
    replay; :func:`pick_null` then keeps, per signal, the lowest-rank candidate that got a contract,
    so the null model has the strategies' count wherever a contract could be selected at all.
    """
    rng = random.Random(seed)
    by_minute: dict[tuple[str, int], list[int]] = {}
    for sym, s in bars.items():
        close = s.ts_ns + s.interval_ns
        if start_ns is not None:
            close = close[close > start_ns]
        for c, m in zip(close.tolist(), _ny_minute(close).tolist(), strict=True):
            by_minute.setdefault((sym, int(m)), []).append(int(c))
    plan: dict[tuple[int, str], list[Idea]] = {}
    ordered = sorted(signals, key=lambda x: (x.ts_ns, x.symbol, x.strategy))
    minutes = _ny_minute(np.array([x.ts_ns for x in ordered], dtype=np.int64)).tolist() if ordered else []
    for k, (rec, m) in enumerate(zip(ordered, minutes, strict=True)):
        pool = by_minute.get((rec.symbol, int(m)))
        if not pool:
            continue
        for r, at in enumerate(rng.sample(pool, min(candidates, len(pool)))):
            idea = Idea(
                symbol=rec.symbol,
                strategy=f"null:{rec.strategy}#{k}.{r}",
                direction=rec.direction,
                underlying_price=0.0,
                projected_move=rec.move_frac,
                horizon_ns=rec.horizon_ns,
                evidence=rec.evidence,
                reasons=(),
                atr=rec.atr_frac,
            )
            plan.setdefault((at, rec.symbol), []).append(idea)
    return plan


def pick_null(trades: list[Trade]) -> list[Trade]:
    """Per null slot ``null:<strategy>#<k>``, the candidate of lowest rank that got a contract."""
    best: dict[str, tuple[int, Trade]] = {}
    for t in trades:
        slot, _, rank = t.signal.strategy.rpartition(".")
        r = int(rank)
        if slot not in best or r < best[slot][0]:
            best[slot] = (r, t)
    return [t for _r, t in sorted(best.values(), key=lambda x: x[1].signal.id)]
