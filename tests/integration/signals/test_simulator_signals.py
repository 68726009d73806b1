"""The default `aiots up` market (the simulator, seed 7) through the default strategies, the packaged
calibration and every gate of the engine gives signals at the README's ``min_confidence``.

The simulator's own DBN records are turned into what the signals service receives: 1-minute bars
built from the underlying's trades, and option quotes (bid/ask/sizes of each CBBO record, the
session's traded volume from the option trades, open interest from the listing) every
``OPTION_EVERY_S`` market seconds, as ``aiots up`` quotes them. The features are warmed on the
seeded history's last ``WARMUP_BARS`` minutes, as the service warms them from the stored bars, and
IV rank comes from the seeded daily ATM IV history, as the service reads it. Nothing is loosened:
``strategies.yaml`` and ``calibration.json`` as shipped.

Measured with this harness (docs/signals.md): over nine seeded sessions (2026-11-23..12-04), 9
signals over the nine symbols, 6 of them at 0.5 or more, in three sessions; none in the other six.
The contract is picked by its expected value at the model probability and only then gated at the
calibrated probability (the population the calibration was fitted on), so ideas that don't pay their
costs after the spread and fees are dropped, not re-routed to a contract where the calibration errs
high. This test pins one deterministic session: seed 7 on 2026-12-02, the whole regular session
(``aiots up --session 2026-12-02`` plays it; README). Bars close at the minute, before any record
stamped after it: the engine decides each bar on the quotes known at its close, as the live pipeline
does (an earlier version closed a bar at the symbol's next trade and let up to a second of later
quotes in first).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from aiots.core import conventions as cv
from aiots.services.ingestion.sources.simulator import history
from aiots.services.ingestion.sources.simulator import model as m
from aiots.services.ingestion.sources.simulator.records import MarketSimulator
from aiots.services.ingestion.sources.simulator.runner import OPTION_EVERY_S
from aiots.services.signals.config import load_config
from aiots.services.signals.engine import SignalEngine
from aiots.services.signals.models import Bar, OptionQuote, Signal

pytestmark = pytest.mark.integration

SYMBOLS = ("AAPL", "GOOGL", "MSFT", "AMZN", "TSLA", "NVDA", "META", "SPY", "QQQ")  # aiots up's default
SEED = 7  # aiots up's default simulator seed
SESSION = dt.date(2026, 12, 2)
README_MIN_CONFIDENCE = 0.5
BUDGET_MINUTES = 390  # simulated minutes after the open: one session (stops at the first signal shown)
WARMUP_BARS = 500  # settings.analytics.live_warmup_bars: the features' owner warms on these


def iv_ranks(sim: MarketSimulator) -> dict[str, float]:
    """IV rank per symbol from the seeded daily ATM IV history (``history.history_batches``'s draws)."""
    out = {}
    for st in sim.state.values():
        path = history.daily_path(SEED, st.symbol, sim.anchor, sim.history_days)
        rng = m.symbol_rng(SEED, st.symbol, sim.anchor, 1)
        for k, d in enumerate(path.days):  # the minute paths come first from this generator
            history._minute_session(
                rng, cv.calendar().session(d), path.opens[k], path.closes[k], path.sigmas[k], st.profile.adv
            )
        iv = np.array([m.atm_iv(float(s), st.vol, 30 / 365) for s in path.sigmas])
        iv = np.clip(iv * np.exp(rng.normal(0.0, history.IV_NOISE, len(path.days))), 0.05, 3.0)
        out[st.symbol] = cv.iv_rank(float(iv[-1]), iv)
    return out


def warm(engine: SignalEngine, sim: MarketSimulator) -> None:
    """The seeded history's last ``WARMUP_BARS`` 1-minute bars of each symbol, as the service warms."""
    for st in sim.state.values():
        path = history.daily_path(SEED, st.symbol, sim.anchor, sim.history_days)
        rng = m.symbol_rng(SEED, st.symbol, sim.anchor, 1)
        bars: list[Bar] = []
        for k, d in enumerate(path.days):
            ts, o, h, lo, c, v = history._minute_session(
                rng, cv.calendar().session(d), path.opens[k], path.closes[k], path.sigmas[k], st.profile.adv
            )
            if k >= len(path.days) - 2:
                bars += [
                    Bar(st.symbol, int(ts[i]), float(o[i]), float(h[i]), float(lo[i]), float(c[i]), float(v[i]))
                    for i in range(len(ts))
                ]
        for b in bars[-WARMUP_BARS:]:
            engine.warm(b)


def run_session(minutes: int) -> tuple[list[Signal], SignalEngine, Counter[str]]:
    s = cv.calendar().session(SESSION)
    sim = MarketSimulator(list(SYMBOLS), SEED, start_ns=s.open_ns)
    ranks = iv_ranks(sim)
    engine = SignalEngine(load_config(), iv_rank=lambda sym: ranks.get(sym, math.nan))
    warm(engine, sim)
    underlying = {st.instrument_id: st.symbol for st in sim.state.values()}
    contracts: dict[int, Any] = {}
    option_volume: Counter[int] = Counter()
    building: dict[str, list[Any]] = {}  # symbol -> [minute ns, o, h, l, c, volume, symbol]
    signals: list[Signal] = []
    ideas: Counter[str] = Counter()
    since_options = float(OPTION_EVERY_S)
    end = s.open_ns + minutes * cv.NS_PER_MIN
    while sim.now_ns < end:
        since_options += 1.0
        quote = since_options >= OPTION_EVERY_S
        records = sim.step(1.0, option_quotes=quote)
        if quote:
            since_options = 0.0
        if not contracts or any(type(r).__name__ == "InstrumentDefMsg" for r in records):
            contracts = {c.instrument_id: c for st in sim.state.values() for c in st.contracts}
        for r in sorted(records, key=lambda r: r.ts_event):  # a step's records come per symbol
            kind = type(r).__name__
            minute = r.ts_event - r.ts_event % cv.NS_PER_MIN
            # bars close at the minute, before any record stamped after it (no look-ahead: the
            # engine decides a bar on the quotes known at its close, as the live pipeline does)
            closed = [b for b in building.values() if b[0] < minute]
            for b in sorted(closed, key=lambda b: b[6]):
                del building[b[6]]
                bar = Bar(b[6], int(b[0]), b[1], b[2], b[3], b[4], b[5])
                found, _ = engine.evaluate(bar)
                ideas.update(i.strategy for i in found)
                signals += engine.select(bar, found) if found else []
            if kind == "TradeMsg" and r.instrument_id in underlying:
                sym, px = underlying[r.instrument_id], r.price / 1e9
                b = building.get(sym)
                if b is None:
                    b = building[sym] = [minute, px, px, px, px, 0.0, sym]
                b[2], b[3], b[4], b[5] = max(b[2], px), min(b[3], px), px, b[5] + r.size
            elif kind == "TradeMsg":
                option_volume[r.instrument_id] += r.size
            elif kind == "CBBOMsg" and r.instrument_id in contracts:
                c, lv = contracts[r.instrument_id], r.levels[0]
                engine.on_option_quote(
                    OptionQuote(
                        c.occ, c.underlying, c.expiry.isoformat(), cv.expiry_ns(c.expiry), c.strike, c.right == "C",
                        lv.bid_px / 1e9, lv.ask_px / 1e9, lv.bid_sz, lv.ask_sz, 0.0,
                        float(option_volume[r.instrument_id]), float(c.open_interest), r.ts_event,
                    )
                )  # fmt: skip
        if any(sg.confidence >= README_MIN_CONFIDENCE for sg in signals):
            break
    return signals, engine, ideas


def test_the_default_simulator_gives_signals_at_the_readme_min_confidence() -> None:
    signals, engine, ideas = run_session(BUDGET_MINUTES)
    shown = [s for s in signals if s.confidence >= README_MIN_CONFIDENCE]
    assert shown, (
        f"no signal >= {README_MIN_CONFIDENCE} in {BUDGET_MINUTES} min; ideas {ideas}, skipped {engine.skipped}"
    )
    for s in shown:
        # the engine's own rules held: entry at the ask, EV after costs positive, regular hours
        assert s.entry_price == s.contract.ask and s.expected_return_pct > 0
        assert s.stop_price <= s.entry_price - 2 * (s.contract.ask - s.contract.bid) + 1e-9
        assert cv.calendar().phase(s.created_ns) == "regular"
