"""Walk-forward: folds by date with no overlap, parameters chosen in sample, bad keys named."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiots.services.backtest.api import BacktestInputs, load
from aiots.services.backtest.walkforward import apply_overrides, parse_search, walk_forward
from aiots.services.signals.config import load_config


def test_parse_and_apply() -> None:
    grid = parse_search(["cooldown_bars=15,30", "strategies.mean_reversion.enabled=true,false"])
    assert grid == {"cooldown_bars": [15, 30], "strategies.mean_reversion.enabled": [True, False]}
    cfg = apply_overrides(load_config(), {"cooldown_bars": 7, "strategies.momentum_breakout.move_atr": 2.5})
    assert cfg.cooldown_bars == 7 and cfg.strategies.momentum_breakout.move_atr == 2.5
    with pytest.raises(ValueError, match=r"unknown config key 'strategies\.nope\.x'"):
        apply_overrides(load_config(), {"strategies.nope.x": 1})
    with pytest.raises(ValueError, match="cooldown_bars"):
        apply_overrides(load_config(), {"cooldown_bars": -1})
    with pytest.raises(ValueError, match="KEY=V1,V2"):
        parse_search(["cooldown_bars"])


def test_folds_do_not_overlap_and_out_of_sample_follows_in_sample(shared_data: Path) -> None:
    inp = BacktestInputs(bars=(str(shared_data / "ohlcv/NVDA_1m_2024-03-01_2024-03-14.csv"),))
    wf = walk_forward(inp, load(inp), {"cooldown_bars": [15, 30]}, folds=3)
    assert len(wf["by_fold"]) == 2
    for f in wf["by_fold"]:
        assert f["in_sample"]["from"] == "2024-03-01"
        assert f["in_sample"]["to"] < f["out_of_sample"]["from"] <= f["out_of_sample"]["to"]
        assert f["best_params"]["cooldown_bars"] in (15, 30)
    assert wf["by_fold"][0]["out_of_sample"]["to"] < wf["by_fold"][1]["out_of_sample"]["from"]
    assert wf["by_fold"][1]["out_of_sample"]["to"] == "2024-03-14"
