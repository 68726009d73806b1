"""The feature periods are read from the strategy file at the keys the signals config declares.

Oracle: the signals service's own config model (``SignalsConfig``, pydantic) parsing the same
file, and hand-written YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiots.services.features.params import DEFAULT_STRATEGIES_FILE, FeatureParams
from aiots.services.signals.config import DEFAULT_FILE, SignalsConfig, load_config
from aiots.services.signals.features import feature_params


def test_defaults_agree_with_the_signals_config() -> None:
    assert feature_params(SignalsConfig()) == FeatureParams()


def test_the_packaged_file_gives_what_the_signals_config_reads() -> None:
    assert DEFAULT_FILE.resolve() == DEFAULT_STRATEGIES_FILE
    assert FeatureParams.load() == feature_params(load_config())


def test_every_period_is_read_from_its_key(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(
        "atr_period: 10\nrsi_period: 9\nadx_period: 21\nstrategies:\n"
        "  momentum_breakout: {lookback: 30, volume_period: 15}\n"
        "  mean_reversion: {bb_period: 25, bb_nbdev: 2.5}\n"
        "  trend_pullback: {ema_fast: 12, ema_slow: 40}\n"
        "  cheap_volatility: {rv_bars: 120}\n"
    )
    want = FeatureParams(10, 9, 21, 12, 40, 25, 2.5, 15, 30, 120)
    assert FeatureParams.load(p) == want == feature_params(load_config(p))


def test_absent_keys_keep_the_defaults_and_bad_values_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("strategies: {trend_pullback: {ema_fast: 8}}\n")
    assert FeatureParams.load(p) == FeatureParams(ema_fast=8)
    p.write_text("rsi_period: 1\n")
    with pytest.raises(ValueError, match="rsi_period"):
        FeatureParams.load(p)
    p.write_text("- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        FeatureParams.load(p)
