"""Contract selection micro-benchmark (not a test): CPU time of one ``ContractSelector.select`` call.

    .venv/bin/python bench/selection.py [--reps N]

The calls are recorded, then replayed one by one:

(a) SPY modelled: the ``select`` calls of the backtest on the SPY 1-minute bars of
    2024-02-20..2024-03-08 with the modelled chains (yfinance snapshot of 2024-07-31 for the IV);
(b) GOOG real quotes: the calls of the backtest on GOOG's real 1-minute option quotes of
    2015-12-23/24 (QuantConnect LEAN sample data);
(c) live-like: ``bench/signals.py``'s chain (one 9-day expiry, 21 strikes a side, a
    ``QuoteListView``) with random ideas of both directions under its latency config (every idea
    gets a contract: the selection runs in full).

Each call is replayed ``--reps`` times (default 3) on a fresh copy of the chain view it saw (its
memos emptied as they were) and a fresh selector; a call's time is the least of its reps in thread
CPU time. The table gives the median and p90 over the calls. Needs the shared data at
``../shared/data`` (a case whose files are missing is skipped with a message). About 30 s on a
loaded 2-core VM.

No anchor runs beside it: the times are absolute, for comparing two trees on one machine in the
same minutes (a profiling aid). The anchored comparison of the engine is ``bench/backtest.py``
(NautilusTrader and backtesting.py in the same run).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aiots.core.conventions import NS_PER_MIN, NS_PER_MS, calendar
from aiots.services.backtest.api import BacktestInputs, _window, load
from aiots.services.backtest.runner import Replay
from aiots.services.signals import selection as sel
from aiots.services.signals.chainview import ChainView, as_view
from aiots.services.signals.models import Direction, Idea

sys.path.insert(0, str(Path(__file__).resolve().parent))
import signals as sig_bench

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPY_BARS = DATA / "ohlcv" / "SPY_1m_2024-02-20_2024-05-17.csv"
SPY_CHAINS = DATA / "options" / "yfinance_chains_26symbols_2024-07-31.csv"
SPY_FROM, SPY_TO = dt.date(2024, 2, 20), dt.date(2024, 3, 8)
GOOG_BARS = DATA / "ohlcv" / "lean_GOOG_1m_2015-12-23_2015-12-28.csv"
GOOG_QUOTES = (
    DATA / "options-intraday" / "lean_GOOG_options_1m_quotes_2015-12-23.csv",
    DATA / "options-intraday" / "lean_GOOG_options_1m_quotes_2015-12-24.csv.gz",
)
GOOG_FROM, GOOG_TO = dt.date(2015, 12, 23), dt.date(2015, 12, 24)
LIVE_CALLS = 400
LIVE_SPOT = 100.0
LIVE_HORIZON_NS = 30 * NS_PER_MIN
LIVE_CONFIDENCE = 0.6
SEED = 1
P90 = 90


@dataclass
class Call:
    """One recorded ``select`` call: the selector's models, its arguments, a snapshot of the view."""

    selector: sel.ContractSelector
    idea: Idea
    view: Any
    now_ns: int
    cfg: Any
    kwargs: dict[str, Any]


def _snapshot(view: Any) -> Any:
    """A copy of ``view`` as it stood: memo dicts and a modelled view's lazily priced arrays copied."""
    v = copy.copy(view)
    v.atm_memo = dict(view.atm_memo)
    if type(view).__name__ == "ModelledChainView":
        for attr in ("_bid", "_ask", "_priced"):
            if attr in vars(view):
                setattr(v, attr, getattr(view, attr).copy())
    return v


def _record(inputs: BacktestInputs) -> list[Call]:
    """Run the backtest once with ``select`` wrapped; each call keeps a snapshot of its view."""
    calls: list[Call] = []
    original = sel.ContractSelector.select

    def recording(self: sel.ContractSelector, idea: Idea, chain: Any, now_ns: int, cfg: Any, **kw: Any) -> Any:
        view = as_view(chain)
        calls.append(Call(self, idea, _snapshot(view), now_ns, cfg, kw))
        return original(self, idea, view, now_ns, cfg, **kw)

    sel.ContractSelector.select = recording  # type: ignore[method-assign]
    try:
        data = load(inputs)
        Replay(data.config, data.bars, data.quotes, data.chains, _window(inputs)).run()
    finally:
        sel.ContractSelector.select = original  # type: ignore[method-assign]
    return calls


def spy_calls() -> list[Call] | str:
    if not (SPY_BARS.exists() and SPY_CHAINS.exists()):
        return f"missing {SPY_BARS} or {SPY_CHAINS}"
    return _record(BacktestInputs(bars=(str(SPY_BARS),), chains=(str(SPY_CHAINS),), date_from=SPY_FROM, date_to=SPY_TO))


def goog_calls() -> list[Call] | str:
    missing = [p for p in (GOOG_BARS, *GOOG_QUOTES) if not p.exists()]
    if missing:
        return f"missing {', '.join(map(str, missing))}"
    return _record(
        BacktestInputs(
            bars=(str(GOOG_BARS),),
            option_quotes=tuple(map(str, GOOG_QUOTES)),
            date_from=GOOG_FROM,
            date_to=GOOG_TO,
        )
    )


def live_calls() -> list[Call]:
    """bench/signals.py's chain per call (a QuoteListView) and ideas of both directions."""
    cfg = sig_bench.latency_config()
    rng = np.random.default_rng(SEED)
    selector = sel.ContractSelector()
    calls: list[Call] = []
    for i in range(LIVE_CALLS):
        now = sig_bench.lat_bar_ts(i) + NS_PER_MIN
        spot = LIVE_SPOT * float(np.exp(rng.normal(0.0, 0.01)))
        view = ChainView.from_quotes(sig_bench.chain_for("AAPL", LIVE_SPOT, now))
        d = Direction.BULLISH if i % 2 else Direction.BEARISH
        move = float(rng.uniform(0.1, 1.5)) * (1 if d is Direction.BULLISH else -1)
        atr = float(rng.uniform(0.05, 0.3))
        idea = Idea("AAPL", "momentum_breakout", d, spot, move, LIVE_HORIZON_NS, LIVE_CONFIDENCE, (), atr=atr)
        calls.append(Call(selector, idea, view, now, cfg, {}))
    return calls


def time_calls(calls: list[Call], reps: int) -> tuple[float, float]:
    """Median and p90 (ms) over the calls of each call's least thread CPU time over ``reps``."""
    per: list[int] = []
    for c in calls:
        best = None
        for _ in range(reps):
            view = _snapshot(c.view)
            s = sel.ContractSelector(c.selector.execution, c.selector.calibrator)
            t = time.thread_time_ns()
            s.select(c.idea, view, c.now_ns, c.cfg, **c.kwargs)
            took = time.thread_time_ns() - t
            best = took if best is None else min(best, took)
        per.append(best or 0)
    a = np.asarray(per, dtype=np.float64) / NS_PER_MS
    return float(np.median(a)), float(np.percentile(a, P90))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3, help="replays per call (least CPU time kept)")
    args = ap.parse_args()
    calendar()  # the process-wide calendar is built before any timing
    cases = [
        ("(a) SPY modelled, backtest calls", spy_calls),
        ("(b) GOOG real quotes, backtest calls", goog_calls),
        ("(c) live-like QuoteListView chain", live_calls),
    ]
    rows = []
    for name, make in cases:
        calls = make()
        if isinstance(calls, str):
            print(f"skipped {name}: {calls}", file=sys.stderr)
            continue
        med, p90 = time_calls(calls, args.reps)
        rows.append(f"| {name} | {len(calls)} | {med:.3f} | {p90:.3f} |")
    print("| case | calls | select CPU median (ms) | p90 (ms) |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
