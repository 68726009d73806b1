"""Backtest throughput: bars per second through the full engine, beside backtesting.py and
NautilusTrader's BacktestEngine on the same bars (the 63 SPY sessions of 2024-02-20..05-17), and
the wall time of one year of 1-minute bars for nine symbols with modelled chains (``--year``).

* ours: ``aiots.services.backtest`` replaying 1-minute bars through the live SignalEngine (features,
  every built-in strategy, contract selection on modelled chains, fills and exits through the
  execution model), strategies pass only (no null model); the clock starts after the bars are
  loaded and the process-wide NYSE calendar is built (as NautilusTrader's starts after its data
  and instruments are added);
* backtesting.py: an EMA(20/50) cross with an RSI(14) filter, one position, on the same bars;
* NautilusTrader: the same EMA/RSI rule as a Strategy in a BacktestEngine (bars of one equity).

The comparison is not like for like (ours prices option chains and selects contracts on each
idea; the others trade the underlying): the printed ratios say how much that costs. One run each.

``--year``: the shared data holds 12-14 sessions of 1-minute bars for the nine symbols (yfinance,
2026-03), not a year. A year is **synthesised for this benchmark only** by a session bootstrap:
each of the 250 NYSE sessions of 2025 (early closes cut short) gets the intraday path of one real
session of the same symbol, drawn at random (seeded): its bars' open/high/low/close as ratios of
that session's first open, its volumes, and its overnight gap, chained from the previous
synthetic close. The result is real intraday structure on a real calendar, not a real year. The
whole ``run_backtest`` (strategies, null model, statistics) runs on it with the nine symbols'
real chain snapshots for the modelled IV, ``--workers`` processes (one symbol per process).

    .venv/bin/python bench/backtest.py [--bars FILE] [--sessions N] [--workers N] [--year]
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from aiots.core.conventions import NS_PER_MIN, NY, calendar, ny_date

if TYPE_CHECKING:
    from aiots.services.backtest.readers import BarSeries

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AIOTS_SHARED_DATA", ROOT.parent / "shared" / "data"))
SPY = DATA / "ohlcv" / "SPY_1m_2024-02-20_2024-05-17.csv"
CHAIN = DATA / "options" / "yfinance_chains_26symbols_2024-07-31.csv"


def cpu_s() -> float:
    """CPU seconds of this process and its finished children (the machine is shared: wall time
    there includes waiting for a core, CPU time does not)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def ours(bars_path: Path, sessions: int | None) -> tuple[int, float, float, int]:
    from aiots.services.backtest.api import BacktestInputs, _window, load
    from aiots.services.backtest.runner import Replay

    inp = BacktestInputs(bars=(str(bars_path),), chains=(str(CHAIN),) if CHAIN.is_file() else ())
    data = load(inp)
    if sessions:
        s = data.bars["SPY"]
        days = pd.to_datetime(s.ts_ns, utc=True).tz_convert(NY).normalize()
        last = sorted(set(days))[sessions - 1]
        inp = BacktestInputs(inp.bars, chains=inp.chains, date_to=last.date())
    calendar()  # the process-wide NYSE table (~0.4 s, built once per process): setup, like loading the bars
    t0, c0 = time.perf_counter(), cpu_s()
    res = Replay(data.config, data.bars, data.quotes, data.chains, _window(inp)).run()
    return res.bars, time.perf_counter() - t0, cpu_s() - c0, sum(t.entry is not None for t in res.trades)


NINE = ("SPY", "QQQ", "AAPL", "AMZN", "GOOG", "META", "MSFT", "NVDA", "TSLA")
YEAR = 2025


def nine_bar_files() -> list[Path]:
    return [DATA / "ohlcv" / f"yf_{s}_1m_2026-03-12_2026-03-{31 if s in ('SPY', 'QQQ') else 27}.csv" for s in NINE]


def nine_chain_files() -> list[Path]:
    o = DATA / "options"
    snaps = [
        o / f"yfinance_{s}_chain-snapshots_2025-11-24_2025-12-05.csv.gz"
        for s in ("AAPL", "AMZN", "GOOG", "META", "NVDA")
    ]
    return [
        *snaps,
        o / "yfinance_MSFT_chain-snapshots_2025-11-24_2025-11-24.csv.gz",
        o / "yfinance_chains_26symbols_2024-07-31.csv",
        o / "yfinance_chains_13symbols_2024-07-31.csv",
    ]


def bootstrap_year(real: BarSeries, days: list[dt.date], seed: int) -> BarSeries:
    """A year of 1-minute bars on ``days`` from ``real``'s sessions (see the module docstring)."""
    from aiots.services.backtest.readers import BarSeries

    cal = calendar()
    dates = np.array([ny_date(int(t)) for t in real.ts_ns.tolist()])
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]] = []  # (minute offsets, ohlc ratios, volume, gap)
    prev_close = math.nan
    for d in sorted(set(dates.tolist())):
        if not cal.is_session(d):
            continue
        s = cal.session(d)
        i = np.flatnonzero((dates == d) & (real.ts_ns >= s.open_ns) & (real.ts_ns < s.close_ns))
        if not len(i):
            continue
        o0 = float(real.open[i[0]])
        ratios = np.stack([real.open[i], real.high[i], real.low[i], real.close[i]]) / o0
        gap = o0 / prev_close if math.isfinite(prev_close) else 1.0
        pieces.append(((real.ts_ns[i] - s.open_ns) // NS_PER_MIN, ratios, real.volume[i], gap))
        prev_close = float(real.close[i[-1]])
    rng = np.random.default_rng(seed)
    ts: list[np.ndarray] = []
    px: list[np.ndarray] = []
    vol: list[np.ndarray] = []
    close = float(real.open[0])
    for d in days:
        s = cal.session(d)
        off, ratios, v, gap = pieces[int(rng.integers(len(pieces)))]
        keep = off < (s.close_ns - s.open_ns) // NS_PER_MIN
        o0 = close * gap
        bars = np.round(ratios[:, keep] * o0, 4)
        ts.append(s.open_ns + off[keep] * NS_PER_MIN)
        px.append(bars)
        vol.append(v[keep])
        close = float(bars[3, -1])
    p = np.concatenate(px, axis=1)
    return BarSeries(
        real.symbol,
        np.concatenate(ts).astype(np.int64),
        p[0],
        p[1],
        p[2],
        p[3],
        np.concatenate(vol),
        NS_PER_MIN,
        f"session bootstrap of {real.source} onto {YEAR} (seed {seed})",
    )


def year_nine(workers: int, seed: int = 0, sessions: int | None = None) -> tuple[int, float, float, float, int]:
    """(bars, seconds to synthesise and load, wall and CPU seconds of run_backtest, trades) for the
    synthetic year."""
    from aiots.services.backtest.api import BacktestInputs, LoadedData, run_backtest
    from aiots.services.backtest.readers import read_bars, read_chains
    from aiots.services.backtest.runner import BacktestSettings
    from aiots.services.signals.config import load_config

    t0 = time.perf_counter()
    days = calendar().sessions_between(dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))[:sessions]
    bars = {}
    for k, f in enumerate(nine_bar_files()):
        for sym, real in read_bars(f).items():
            bars[sym] = bootstrap_year(real, days, seed + k)
    chains = [read_chains(p) for p in nine_chain_files()]
    data = LoadedData(bars, [], chains, load_config())
    inp = BacktestInputs(
        bars=tuple(f"synthetic:{s}" for s in bars),
        chains=tuple(str(p) for p in nine_chain_files()),
        settings=BacktestSettings(workers=workers),
        seed=seed,
    )
    t1, c1 = time.perf_counter(), cpu_s()
    rep = run_backtest(inp, data=data)
    t2, c2 = time.perf_counter(), cpu_s()
    return int(rep["data"]["bars"]), t1 - t0, t2 - t1, c2 - c1, len(rep["trades"])


def frame(bars_path: Path, sessions: int | None) -> pd.DataFrame:
    df = pd.read_csv(bars_path, parse_dates=["datetime"])
    if sessions:
        days = df["datetime"].dt.normalize()
        df = df[days <= sorted(days.unique())[sessions - 1]]
    return df.rename(columns=str.capitalize).set_index("Datetime")[["Open", "High", "Low", "Close", "Volume"]]


def backtesting_py(df: pd.DataFrame) -> tuple[int, float, float, int]:
    from backtesting import Backtest, Strategy

    def ema(x: np.ndarray, n: int) -> np.ndarray:
        return np.asarray(pd.Series(x).ewm(span=n, adjust=False).mean().to_numpy(), dtype=np.float64)

    def rsi(x: np.ndarray, n: int) -> np.ndarray:
        d = pd.Series(x).diff()
        up = d.clip(lower=0).ewm(alpha=1 / n, adjust=False).mean()
        dn = (-d.clip(upper=0)).ewm(alpha=1 / n, adjust=False).mean()
        return np.asarray((100 - 100 / (1 + up / dn)).to_numpy(), dtype=np.float64)

    class EmaRsi(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.f = self.I(ema, self.data.Close, 20)
            self.s = self.I(ema, self.data.Close, 50)
            self.r = self.I(rsi, self.data.Close, 14)

        def next(self) -> None:
            if not self.position and self.f[-1] > self.s[-1] and self.f[-2] <= self.s[-2] and self.r[-1] < 70:
                self.buy(size=1)
            elif self.position and self.f[-1] < self.s[-1]:
                self.position.close()

    t0, c0 = time.perf_counter(), cpu_s()
    st = Backtest(df, EmaRsi, cash=1_000_000, commission=0.0, finalize_trades=True).run()  # tqdm bar on stderr
    return len(df), time.perf_counter() - t0, cpu_s() - c0, int(st["# Trades"])


def nautilus(df: pd.DataFrame) -> tuple[int, float, float, int] | str:
    try:
        from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
        from nautilus_trader.config import LoggingConfig, StrategyConfig
        from nautilus_trader.indicators import ExponentialMovingAverage, RelativeStrengthIndex
        from nautilus_trader.model.currencies import USD
        from nautilus_trader.model.data import Bar, BarType
        from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
        from nautilus_trader.model.identifiers import Venue
        from nautilus_trader.model.objects import Money, Quantity
        from nautilus_trader.persistence.wranglers import BarDataWrangler
        from nautilus_trader.test_kit.providers import TestInstrumentProvider
        from nautilus_trader.trading.strategy import Strategy
    except ImportError as exc:  # optional (bench extra)
        return f"not installed ({exc.name})"

    class Cfg(StrategyConfig, frozen=True):  # type: ignore[call-arg,misc]
        bar_type: str

    class EmaRsi(Strategy):  # type: ignore[misc]
        def __init__(self, config: Cfg) -> None:
            super().__init__(config)
            self.bar_type = BarType.from_str(config.bar_type)
            self.fast, self.slow, self.rsi = (
                ExponentialMovingAverage(20),
                ExponentialMovingAverage(50),
                RelativeStrengthIndex(14),
            )
            self.prev_diff: float | None = None
            self.trades = 0

        def on_start(self) -> None:
            self.register_indicator_for_bars(self.bar_type, self.fast)
            self.register_indicator_for_bars(self.bar_type, self.slow)
            self.register_indicator_for_bars(self.bar_type, self.rsi)
            self.subscribe_bars(self.bar_type)

        def on_bar(self, bar: Bar) -> None:
            if not (self.fast.initialized and self.slow.initialized and self.rsi.initialized):
                return
            diff = self.fast.value - self.slow.value
            flat = self.portfolio.is_flat(self.bar_type.instrument_id)
            if flat and self.prev_diff is not None and self.prev_diff <= 0 < diff and self.rsi.value < 0.70:
                self.submit_order(
                    self.order_factory.market(self.bar_type.instrument_id, OrderSide.BUY, Quantity.from_int(1))
                )
                self.trades += 1
            elif not flat and diff < 0:
                self.close_all_positions(self.bar_type.instrument_id)
            self.prev_diff = diff

    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True)))
    venue = Venue("XNAS")
    engine.add_venue(
        venue, oms_type=OmsType.NETTING, account_type=AccountType.CASH, starting_balances=[Money(1_000_000, USD)]
    )
    inst = TestInstrumentProvider.equity("SPY", "XNAS")
    engine.add_instrument(inst)
    bar_type = BarType.from_str(f"{inst.id}-1-MINUTE-LAST-EXTERNAL")
    nd = df.rename(columns=str.lower)
    nd.index = nd.index.tz_localize(NY).tz_convert("UTC") + pd.Timedelta(minutes=1)  # bar end
    bars = BarDataWrangler(bar_type, inst).process(nd)
    engine.add_data(bars)
    strat = EmaRsi(Cfg(bar_type=str(bar_type)))
    engine.add_strategy(strat)
    t0, c0 = time.perf_counter(), cpu_s()
    engine.run()
    dt_s, c_s = time.perf_counter() - t0, cpu_s() - c0
    n = strat.trades
    engine.dispose()
    return len(bars), dt_s, c_s, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=Path, default=SPY)
    ap.add_argument("--sessions", type=int, default=None, help="only the first N sessions (default: all)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for --year (default: CPUs)")
    ap.add_argument("--year", action="store_true", help="also one synthetic year x nine symbols (minutes)")
    a = ap.parse_args()
    if not a.bars.is_file():
        print(f"bars not found: {a.bars} (set AIOTS_SHARED_DATA)", file=sys.stderr)
        return 1
    print(f"bars: {a.bars.name}; machine: {os.cpu_count()} CPUs; {dt.datetime.now():%Y-%m-%d %H:%M}")
    rows: list[tuple[str, int, float, float, int]] = []
    rows.append(("aiots backtest (full engine, modelled chains)", *ours(a.bars, a.sessions)))
    df = frame(a.bars, a.sessions)
    rows.append(("backtesting.py EMA/RSI", *backtesting_py(df)))
    r = nautilus(df)
    if isinstance(r, str):
        print(f"NautilusTrader: {r}")
    else:
        rows.append(("NautilusTrader BacktestEngine EMA/RSI", *r))
    base, base_cpu = rows[0][1] / rows[0][2], rows[0][1] / rows[0][3]
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs)")
    print(
        f"{'engine':48} {'bars':>8} {'wall s':>8} {'bars/s':>10} {'CPU s':>8} {'bars/CPU-s':>11} {'trades':>7} "
        f"{'x ours':>7} {'x ours CPU':>10}"
    )
    for name, n, t, c, k in rows:
        print(
            f"{name:48} {n:8d} {t:8.2f} {n / t:10.0f} {c:8.2f} {n / c:11.0f} {k:7d} {n / t / base:7.1f} "
            f"{n / c / base_cpu:10.1f}"
        )
    if a.year:
        n, load_s, run_s, run_cpu, k = year_nine(a.workers)
        print(
            f"one synthetic year ({YEAR}) x nine symbols, modelled chains, run_backtest with the null model, "
            f"{a.workers} processes: {n} bars, synthesis + chain loading {load_s:.1f} s, "
            f"backtest {run_s:.1f} s wall ({run_s / 60:.2f} min, target < 5 min), {run_cpu:.1f} CPU s, "
            f"{n / run_s:.0f} bars/s, {k} trades; load average {os.getloadavg()[0]:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
