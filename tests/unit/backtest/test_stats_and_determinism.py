"""Statistics against independent oracles (scipy's Wilson interval, hand-derived cases) and
determinism with a seed (null model draws, bootstrap, a whole report)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from aiots.core.conventions import NS_PER_MIN, ns_to_ny, ny_ns
from aiots.services.backtest.api import BacktestInputs, run_backtest
from aiots.services.backtest.readers import read_bars
from aiots.services.backtest.runner import NULL_CANDIDATES, SignalRecord, null_plan
from aiots.services.backtest.stats import bootstrap_difference, calibration, max_drawdown, wilson
from aiots.services.signals.models import Direction


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (7, 9), (50, 120), (120, 120)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)


def test_max_drawdown_by_hand() -> None:
    # equity 0, 10, 5, 12, 2, 4 -> worst fall from 12 to 2
    assert max_drawdown([10, -5, 7, -10, 2]) == 10
    assert max_drawdown([-3, -4]) == 7  # from the starting 0
    assert max_drawdown([]) == 0


def test_calibration_by_hand() -> None:
    conf = [0.15, 0.15, 0.15, 0.15, 0.75, 0.75]
    hit = [True, False, False, False, True, True]
    c = calibration(conf, hit)
    # Brier: 1/6 * (0.85^2 + 3*0.15^2 + 2*0.25^2)
    assert c["brier"] == pytest.approx((0.85**2 + 3 * 0.15**2 + 2 * 0.25**2) / 6, abs=1e-6)
    # ECE: 4/6*|0.15-0.25| + 2/6*|0.75-1|
    assert c["ece"] == pytest.approx(4 / 6 * 0.10 + 2 / 6 * 0.25, abs=1e-6)
    assert [(b["lo"], b["n"]) for b in c["bins"]] == [(0.1, 4), (0.7, 2)]


def test_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(1, 3, 50).tolist(), rng.normal(0, 3, 60).tolist()
    assert bootstrap_difference(a, b, seed=7) == bootstrap_difference(a, b, seed=7)
    assert bootstrap_difference(a, b, seed=7) != bootstrap_difference(a, b, seed=8)
    lo, hi = bootstrap_difference(a, b, seed=7)
    assert lo < np.mean(a) - np.mean(b) < hi


def test_null_plan_keeps_count_minute_of_day_and_direction_and_is_seeded(shared_data: Path) -> None:
    bars = read_bars(shared_data / "ohlcv/SPY_1m_2024-02-20_2024-05-17.csv")
    day = dt.date(2024, 3, 5)  # before the DST change of 2024-03-10: the null draws cross it
    sigs = [
        SignalRecord(
            "SPY",
            "mean_reversion",
            ny_ns(day, dt.time(10, m)),
            Direction.BULLISH if m % 2 else Direction.BEARISH,
            0.001,
            45 * NS_PER_MIN,
            0.4,
            0.0005,
        )
        for m in range(0, 50, 5)
    ]
    a, b, c = null_plan(sigs, bars, 3), null_plan(sigs, bars, 3), null_plan(sigs, bars, 4)
    assert a == b and a != c
    ideas = [(k[0], i) for k, v in a.items() for i in v]
    assert len(ideas) == len(sigs) * NULL_CANDIDATES
    for k, sig in enumerate(sigs):
        mine = [(at, i) for at, i in ideas if i.strategy.startswith(f"null:mean_reversion#{k}.")]
        assert len(mine) == NULL_CANDIDATES
        assert {ns_to_ny(at).time() for at, _ in mine} == {ns_to_ny(sig.ts_ns).time()}  # New York minute, DST-proof
        assert len({ns_to_ny(at).date() for at, _ in mine}) == NULL_CANDIDATES  # distinct sessions
        assert {i.direction for _, i in mine} == {sig.direction}


def test_whole_report_is_deterministic(shared_data: Path) -> None:
    inp = BacktestInputs(bars=(str(shared_data / "ohlcv/NVDA_1m_2024-03-01_2024-03-14.csv"),), seed=11)
    a = json.dumps(run_backtest(inp), sort_keys=True)
    b = json.dumps(run_backtest(inp), sort_keys=True)
    assert a == b
