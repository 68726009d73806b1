"""One backtest from files to the report dictionary (the JSON the CLI writes and the service stores).

:func:`run_backtest` loads and validates every file first (nothing is half-loaded), replays the
strategies, draws the seeded null model from the signals it got, replays that, and computes the
statistics per strategy, per symbol and overall, separately for real-quote and modelled trades.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from aiots.core.conventions import NS_PER_MIN, NS_PER_S, REGULAR_OPEN, ny_ns, rfc3339
from aiots.services.backtest import readers
from aiots.services.backtest.runner import BacktestSettings, Replay, ReplayResult, Trade, null_plan, pick_null
from aiots.services.backtest.stats import calibration, null_comparison, summarize
from aiots.services.common.settings import Settings
from aiots.services.signals.config import SignalsConfig, load_config

REPORT_VERSION = 1
PRICED_FROM = ("quotes", "modelled")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class BacktestInputs:
    """Paths and filters of one run (``date_from``/``date_to`` inclusive New York dates)."""

    bars: tuple[str, ...]
    option_quotes: tuple[str, ...] = ()
    chains: tuple[str, ...] = ()
    config: str | None = None
    symbols: tuple[str, ...] = ()
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    seed: int = 0
    settings: BacktestSettings = field(default_factory=BacktestSettings)


@dataclass
class LoadedData:
    bars: dict[str, readers.BarSeries]
    quotes: list[readers.OptionQuoteBars]
    chains: list[readers.ChainSnapshots]
    config: SignalsConfig


def live_settings(s: Settings) -> BacktestSettings:
    """Backtest settings on the live services' terms: the execution model (fees, quote age, hours)
    and the dividend yields the signals service selects contracts with."""
    yields = tuple(sorted((k.upper(), float(v)) for k, v in s.market.dividend_yields.items()))
    return BacktestSettings(execution=s.execution.model(), dividend_yields=yields)


def load(inputs: BacktestInputs) -> LoadedData:
    """Read and validate every input file (raises :class:`readers.DataFileError` on the first bad one)."""
    if not inputs.bars:
        raise ValueError("bars: at least one bar file is required")
    bars: dict[str, readers.BarSeries] = {}
    for p in inputs.bars:
        for sym, s in readers.read_any_bars(p).items():
            bars[sym] = s if sym not in bars else _concat(bars[sym], s, p)
    if inputs.symbols:
        missing = [s for s in inputs.symbols if s not in bars]
        if missing:
            raise ValueError(f"symbols: {missing} not in the bar files (they hold {sorted(bars)})")
    quotes = [readers.read_any_option_quotes(p) for p in inputs.option_quotes]
    chains = [readers.read_chains(p) for p in inputs.chains]
    cfg = load_config(Path(inputs.config)) if inputs.config else load_config()
    return LoadedData(bars, quotes, chains, cfg)


def _concat(a: readers.BarSeries, b: readers.BarSeries, path: str) -> readers.BarSeries:
    """Bars of one symbol from two files: same interval, no shared timestamp."""
    if a.interval_ns != b.interval_ns:
        raise readers.DataFileError(path, f"{b.symbol}: bar interval differs from {a.source}", column="datetime")
    ts = np.concatenate([a.ts_ns, b.ts_ns])
    order = np.argsort(ts, kind="stable")
    ts = ts[order]
    dup = np.diff(ts) == 0
    if dup.any():
        raise readers.DataFileError(
            path, f"{b.symbol}: a bar time also in {a.source} (overlapping files)", column="datetime"
        )

    def cat(x: Any, y: Any) -> Any:
        return np.concatenate([x, y])[order]

    return readers.BarSeries(
        a.symbol,
        ts,
        cat(a.open, b.open),
        cat(a.high, b.high),
        cat(a.low, b.low),
        cat(a.close, b.close),
        cat(a.volume, b.volume),
        a.interval_ns,
        f"{a.source}+{b.source}",
    )


def _window(inputs: BacktestInputs) -> BacktestSettings:
    st = replace(inputs.settings, symbols=tuple(inputs.symbols), seed=inputs.seed)
    if inputs.date_from is not None:
        st = replace(st, start_ns=ny_ns(inputs.date_from, dt.time(0, 0)))
    if inputs.date_to is not None:
        st = replace(st, end_ns=ny_ns(inputs.date_to + dt.timedelta(days=1), dt.time(0, 0)))
    return st


def _num(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


def trade_row(t: Trade) -> dict[str, Any]:
    s = t.signal
    assert t.entry is not None
    return {
        "signal_id": s.id,
        "strategy": s.strategy,
        "symbol": s.symbol,
        "contract": s.contract.occ_symbol,
        "direction": s.direction.name,
        "created_at": rfc3339(s.created_ns),
        "entry_time": rfc3339(t.entry.ts_ns),
        "entry_price": _num(t.entry.price),
        "exit_time": rfc3339(t.exit_ns),
        "exit_price": _num(t.exit_price),
        "exit_reason": t.exit_reason,
        "pnl_pct": _num(t.pnl_pct),
        "pnl_usd": _num(t.pnl_usd),
        "fees_usd": _num(2 * t.entry.fees),
        "confidence": _num(s.confidence),
        "p_model": _num(s.p_model),
        "evidence": _num(s.evidence),
        "target_price": _num(s.target_price),
        "stop_price": _num(s.stop_price),
        "signal_entry_mid": _num(s.entry_price),
        "bid_at_entry": _num(t.entry.bid),
        "ask_at_entry": _num(t.entry.ask),
        "horizon_at": rfc3339(s.horizon_ns),
        "minutes_in_trade": _num((t.exit_ns - s.created_ns) / NS_PER_MIN),
        "priced_from": t.priced_from,
        "iv_source": t.iv_source,
        "model_iv": _num(t.model_iv),
        "exit_note": t.exit_note,
    }


def refused_row(t: Trade) -> dict[str, Any]:
    s = t.signal
    return {
        "signal_id": s.id,
        "strategy": s.strategy,
        "symbol": s.symbol,
        "contract": s.contract.occ_symbol,
        "created_at": rfc3339(s.created_ns),
        "refusal": t.refusal,
        "priced_from": t.priced_from,
    }


def _group_rows(trades: Sequence[Trade], key: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for pf in PRICED_FROM:
        sub = [t for t in trades if t.priced_from == pf]
        names = sorted({getattr(t.signal, key) for t in sub})
        for name in names:
            rows.append({key: name, "priced_from": pf, **summarize([t for t in sub if getattr(t.signal, key) == name])})
    return rows


def build_report(
    inputs: BacktestInputs, data: LoadedData, res: ReplayResult, null: ReplayResult | None
) -> dict[str, Any]:
    """The report dictionary (see docs/backtest.md for the schema)."""
    trades = res.trades
    st = _window(inputs)
    summary: dict[str, Any] = {}
    cal: dict[str, Any] = {}
    nulls: dict[str, Any] = {}
    for pf in PRICED_FROM:
        sub = [t for t in trades if t.priced_from == pf]
        if not sub:
            continue
        summary[pf] = summarize(sub)
        done = [t for t in sub if t.entry is not None and t.closed]
        cal[pf] = {"priced_from": pf, **calibration([t.signal.confidence for t in done], [t.hit for t in done])}
        if null is not None:
            zsub = [t for t in null.trades if t.priced_from == pf]
            by_strat = []
            for strat in sorted({t.signal.strategy for t in sub}):
                zs = [t for t in zsub if t.signal.strategy.startswith(f"null:{strat}#")]
                by_strat.append(
                    {
                        "strategy": strat,
                        **null_comparison([t for t in sub if t.signal.strategy == strat], zs, inputs.seed),
                    }
                )
            nulls[pf] = {"priced_from": pf, **null_comparison(sub, zsub, inputs.seed), "by_strategy": by_strat}
    real = {str(u) for q in data.quotes for u in set(q.underlying.tolist())}
    primary = "quotes" if "quotes" in summary or real & set(res.symbols) else "modelled"
    ex = st.execution
    filled = sorted(
        (t for t in trades if t.entry is not None and t.closed), key=lambda t: (t.signal.created_ns, t.signal.id)
    )
    return {
        "version": REPORT_VERSION,
        "inputs": {
            "bars": list(inputs.bars),
            "option_quotes": list(inputs.option_quotes),
            "chains": list(inputs.chains),
            "config": inputs.config,
            "symbols": list(inputs.symbols),
            "from": inputs.date_from.isoformat() if inputs.date_from else None,
            "to": inputs.date_to.isoformat() if inputs.date_to else None,
            "seed": inputs.seed,
        },
        "settings": {
            "fee_per_contract": ex.fee_per_contract,
            "max_quote_age_s": ex.max_quote_age_ns / NS_PER_S,
            "regular_hours_only": ex.regular_hours_only,
            "close_buffer_min": st.close_buffer_ns / NS_PER_MIN,
            "modelled_half_spread_frac": st.model.half_spread_frac,
            "modelled_min_half_spread": st.model.min_half_spread,
            "hit_definition": "exit_reason == TARGET",
            "pnl_definition": "(bid_out x 100 - fee) / (ask_in x 100 + fee) - 1, in %",
        },
        "data": {
            "bars": res.bars,
            "symbols": res.symbols,
            "sessions": res.sessions,
            "priced_from_by_symbol": {s: ("quotes" if s in real else "modelled") for s in res.symbols},
            "ideas_without_contract": res.engine_skipped,
            "filters_skipped": res.filters_skipped,
            "filters_skipped_reason": (
                "no input carries per-minute open interest or volume; those selection filters were not applied"
            ),
            "iv_sources": res.iv_sources,
        },
        "summary": summary,
        "by_strategy": _group_rows(trades, "strategy"),
        "by_symbol": _group_rows(trades, "symbol"),
        "calibration": cal.get(primary, {"priced_from": primary, **calibration([], [])}),
        "calibration_by_priced_from": cal,
        "null_model": nulls.get(primary, {"priced_from": primary, "expectancy_pct": None}),
        "null_model_by_priced_from": nulls,
        "trades": [trade_row(t) for t in filled],
        "refused_signals": [refused_row(t) for t in trades if t.entry is None],
    }


def run_backtest(
    inputs: BacktestInputs, progress: Progress | None = None, data: LoadedData | None = None
) -> dict[str, Any]:
    """Load, replay the strategies, replay the null model, and build the report."""
    data = data or load(inputs)
    st = _window(inputs)

    def cb(stage: str) -> Callable[[int, int], None] | None:
        return (lambda d, t: progress(stage, d, t)) if progress else None

    res = Replay(data.config, data.bars, data.quotes, data.chains, st, progress=cb("strategies")).run()
    plan = null_plan(res.signal_ts, {k: v for k, v in data.bars.items() if k in res.symbols}, inputs.seed, st.start_ns)
    null = Replay(data.config, data.bars, data.quotes, data.chains, st, null_plan=plan, progress=cb("null model")).run()
    null.trades = pick_null(null.trades)
    return build_report(inputs, data, res, null)


def session_start_ns(day: dt.date) -> int:
    return ny_ns(day, REGULAR_OPEN)
