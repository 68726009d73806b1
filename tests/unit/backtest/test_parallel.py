"""Symbols replayed in parallel processes give exactly the joint replay's result: the same trades in
the same order (by bar close, then symbol), the same signal log, counts and sessions; a trade still
open when its symbol's data ends closes at the last bar of the whole data set, as in the joint run."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from aiots.core.conventions import ny_ns
from aiots.services.backtest.modelled import ModelSettings
from aiots.services.backtest.readers import read_bars
from aiots.services.backtest.runner import BacktestSettings, Replay, ReplayResult, null_plan
from aiots.services.signals.config import load_config


def rows(res: ReplayResult) -> list[tuple[object, ...]]:
    return [
        (t.signal.id, t.signal.contract.occ_symbol, t.entry, t.exit_ns, t.exit_price, t.exit_reason, t.refusal)
        for t in res.trades
    ]


def test_parallel_symbols_equal_the_joint_replay(shared_data: Path) -> None:
    o = shared_data / "ohlcv"
    bars = {
        **read_bars(o / "yf_SPY_1m_2026-03-12_2026-03-31.csv"),  # ends 03-31
        **read_bars(o / "yf_NVDA_1m_2026-03-12_2026-03-27.csv"),  # ends 03-27
        **read_bars(o / "yf_TSLA_1m_2026-03-12_2026-03-27.csv"),
    }
    model = ModelSettings(iv_by_symbol={"SPY": 0.12, "NVDA": 0.35, "TSLA": 0.30})
    st = BacktestSettings(model=model, start_ns=ny_ns(dt.date(2026, 3, 16), dt.time(0, 0)))
    cfg = load_config()
    joint = Replay(cfg, bars, [], [], st).run()
    par = Replay(cfg, bars, [], [], dataclasses.replace(st, workers=2)).run()
    assert len(joint.trades) >= 5 and len({t.signal.symbol for t in joint.trades}) >= 2
    assert rows(par) == rows(joint)
    assert par.signal_ts == joint.signal_ts
    assert (par.bars, par.symbols, par.sessions, par.iv_sources) == (
        joint.bars,
        joint.symbols,
        joint.sessions,
        joint.iv_sources,
    )
    assert par.engine_skipped == joint.engine_skipped
    plan = null_plan(joint.signal_ts, bars, 3, st.start_ns)
    zj = Replay(cfg, bars, [], [], st, null_plan=plan).run()
    zp = Replay(cfg, bars, [], [], dataclasses.replace(st, workers=3), null_plan=plan).run()
    assert rows(zp) == rows(zj) and len(zj.trades) >= 5
