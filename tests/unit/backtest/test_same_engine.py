"""One engine, two clocks: the backtest's signals are exactly what a plain live-style loop
(``SignalEngine.on_bar`` per bar, as the signals service runs it) emits on the same bars and chain."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from aiots.core.conventions import ny_ns
from aiots.services.backtest.modelled import ModelledChainBook, ModelSettings
from aiots.services.backtest.readers import read_bars
from aiots.services.backtest.runner import BacktestSettings, Replay, _merge_bars
from aiots.services.signals.config import load_config
from aiots.services.signals.engine import SignalEngine

IV = 0.45


def test_replay_signals_equal_an_on_bar_loop(shared_data: Path) -> None:
    bars = read_bars(shared_data / "ohlcv/NVDA_1m_2024-03-01_2024-03-14.csv")
    model = ModelSettings(iv_by_symbol={"NVDA": IV})
    st = BacktestSettings(model=model, end_ns=ny_ns(dt.date(2024, 3, 7), dt.time(0, 0)))
    rp = Replay(load_config(), bars, [], [], st)
    res = rp.run()
    backtest = [
        (
            t.signal.id,
            t.signal.contract.occ_symbol,
            t.signal.entry_price,
            t.signal.target_price,
            t.signal.stop_price,
            t.signal.horizon_ns,
        )
        for t in res.trades
    ]

    cfg = rp.cfg  # the same config (open-interest/volume filters off: no such data)
    sel = cfg.selection
    book = ModelledChainBook(model, sel.risk_free_rate, sel.dte_min, sel.dte_max)
    live = SignalEngine(cfg, chains=book)
    got = []
    for bar in _merge_bars(bars.values(), None, st.end_ns):
        book.set_state(bar.symbol, bar.close_ts_ns, bar.close, IV)
        new, _updates = live.on_bar(bar)
        got += [(s.id, s.contract.occ_symbol, s.entry_price, s.target_price, s.stop_price, s.horizon_ns) for s in new]
    assert len(backtest) >= 3
    assert backtest == got
