"""Walk-forward evaluation and a parameter search over strategy YAML keys, scored out of sample.

The sessions of the data are cut into ``folds`` consecutive blocks by date. For fold k (1..folds-1)
the in-sample window is every block before k (anchored, expanding) and the out-of-sample window is
block k. Each parameter combination runs on the in-sample window; the one with the best in-sample
expectancy (with at least ``min_trades`` trades) is then run once on the out-of-sample window, and
only those out-of-sample trades make the reported score. The packaged/default config runs on the
same out-of-sample windows for comparison. Bars before a window only warm the features.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from aiots.core.conventions import NY, calendar, ny_ns
from aiots.services.backtest.api import PRICED_FROM, BacktestInputs, LoadedData, _window
from aiots.services.backtest.runner import BacktestSettings, Replay, Trade
from aiots.services.backtest.stats import summarize
from aiots.services.signals.config import SignalsConfig

Progress = Callable[[str, int, int], None]


def parse_search(items: Sequence[str]) -> dict[str, list[Any]]:
    """``key=v1,v2`` items (dotted YAML keys) -> {key: [values]} (numbers parsed, true/false as bools)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, vals = item.partition("=")
        if not sep or not key.strip() or not vals.strip():
            raise ValueError(f"search: {item!r} is not KEY=V1,V2 (e.g. strategies.momentum_breakout.move_atr=1,1.5,2)")
        out: list[Any] = []
        for v in vals.split(","):
            v = v.strip()
            if v.lower() in ("true", "false"):
                out.append(v.lower() == "true")
                continue
            try:
                out.append(int(v))
            except ValueError:
                try:
                    out.append(float(v))
                except ValueError:
                    out.append(v)
        grid[key.strip()] = out
    return grid


def apply_overrides(cfg: SignalsConfig, overrides: dict[str, Any]) -> SignalsConfig:
    """A validated copy of ``cfg`` with dotted YAML keys replaced; ValueError names a bad key."""
    raw = cfg.model_dump()
    for key, value in overrides.items():
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p), dict):
                raise ValueError(f"unknown config key {key!r} (no section {p!r})")
            node = node[p]
        if parts[-1] not in node:
            raise ValueError(f"unknown config key {key!r}")
        node[parts[-1]] = value
    try:
        return SignalsConfig.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{overrides} is not a valid config: {exc.errors()[0]['msg']}") from None


def _sessions(data: LoadedData, st: BacktestSettings) -> list[dt.date]:
    days: set[dt.date] = set()
    cal = calendar()
    for s in data.bars.values():
        if st.symbols and s.symbol not in st.symbols:
            continue
        local = pd.to_datetime(s.ts_ns, utc=True).tz_convert(NY)
        days.update(d for d in set(local.date) if cal.is_session(d))
    out = sorted(days)
    if st.start_ns is not None:
        out = [d for d in out if ny_ns(d, dt.time(23, 59)) > st.start_ns]
    if st.end_ns is not None:
        out = [d for d in out if ny_ns(d, dt.time(0, 0)) < st.end_ns]
    return out


def _run(data: LoadedData, cfg: SignalsConfig, st: BacktestSettings, first: dt.date, last: dt.date) -> list[Trade]:
    w = replace(st, start_ns=ny_ns(first, dt.time(0, 0)), end_ns=ny_ns(last + dt.timedelta(days=1), dt.time(0, 0)))
    return Replay(cfg, data.bars, data.quotes, data.chains, w).run().trades


def _score(trades: list[Trade], min_trades: int) -> float:
    done = [t.pnl_pct for t in trades if t.entry is not None and t.closed]
    return float(np.mean(done)) if len(done) >= min_trades else -math.inf


def _by_pf(trades: list[Trade]) -> dict[str, Any]:
    return {
        pf: summarize([t for t in trades if t.priced_from == pf])
        for pf in PRICED_FROM
        if any(t.priced_from == pf for t in trades)
    }


def walk_forward(
    inputs: BacktestInputs,
    data: LoadedData,
    grid: dict[str, list[Any]],
    folds: int = 4,
    min_trades: int = 5,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Anchored walk-forward with an in-sample parameter choice; the score is out of sample only."""
    if folds < 2:
        raise ValueError(f"walk_forward: folds must be >= 2, got {folds}")
    st = _window(inputs)
    days = _sessions(data, st)
    if len(days) < folds:
        raise ValueError(f"walk_forward: {len(days)} sessions cannot make {folds} folds")
    blocks = [list(b) for b in np.array_split(np.array(days, dtype=object), folds)]
    combos = [dict(zip(grid, vals, strict=True)) for vals in itertools.product(*grid.values())] or [{}]
    cfgs = [apply_overrides(data.config, c) for c in combos]
    total = (folds - 1) * (len(cfgs) + 2)
    done = 0
    out_folds: list[dict[str, Any]] = []
    oos_all: list[Trade] = []
    oos_default: list[Trade] = []
    for k in range(1, folds):
        is_first, is_last = blocks[0][0], blocks[k - 1][-1]
        oos_first, oos_last = blocks[k][0], blocks[k][-1]
        scored: list[tuple[float, int, list[Trade]]] = []
        for i, cfg in enumerate(cfgs):
            trades = _run(data, cfg, st, is_first, is_last)
            scored.append((_score(trades, min_trades), -i, trades))
            done += 1
            if progress:
                progress("walk-forward", done, total)
        best_score, neg_i, best_is = max(scored, key=lambda x: (x[0], x[1]))
        best = -neg_i
        oos = _run(data, cfgs[best], st, oos_first, oos_last)
        dflt = _run(data, data.config, st, oos_first, oos_last)
        done += 2
        if progress:
            progress("walk-forward", done, total)
        oos_all += oos
        oos_default += dflt
        out_folds.append(
            {
                "in_sample": {"from": is_first.isoformat(), "to": is_last.isoformat()},
                "out_of_sample": {"from": oos_first.isoformat(), "to": oos_last.isoformat()},
                "best_params": combos[best],
                "chosen_with_enough_trades": math.isfinite(best_score),
                "in_sample_result": _by_pf(best_is),
                "out_of_sample_result": _by_pf(oos),
                "default_out_of_sample_result": _by_pf(dflt),
            }
        )
    return {
        "folds": folds,
        "grid": grid,
        "min_trades": min_trades,
        "scoring": "in-sample expectancy_pct picks the parameters; only out-of-sample trades are scored",
        "by_fold": out_folds,
        "out_of_sample": _by_pf(oos_all),
        "default_out_of_sample": _by_pf(oos_default),
    }
