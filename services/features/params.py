"""The feature periods: set once in the strategy file (``strategies.yaml``), read by every owner.

The signal strategies' thresholds live in the signals service's config; the *periods* of the
features those strategies read are also what analytics' live state computes and publishes, so
they are read here (a part both may import) from the same YAML file, at the paths
:data:`YAML_PATHS` names. ``SignalsConfig`` declares the same keys with the same defaults
(``tests/unit/features/test_params.py`` keeps them equal).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: the packaged strategy file (``services/signals/strategies.yaml``), used when none is configured
DEFAULT_STRATEGIES_FILE = Path(__file__).resolve().parent.parent / "signals" / "strategies.yaml"


@dataclass(frozen=True)
class FeatureParams:
    """Periods of the streaming features (bars of the feature's interval)."""

    atr_period: int = 14
    rsi_period: int = 14
    adx_period: int = 14
    ema_fast: int = 20
    ema_slow: int = 50
    bb_period: int = 20
    bb_nbdev: float = 2.0
    volume_period: int = 20  # SMA of volume (momentum breakout's volume filter)
    lookback: int = 20  # rolling high/low (momentum breakout's levels)
    rv_bars: int = 390  # 1-bar log returns in the realised-volatility window

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not (v > 0 and (f.name == "bb_nbdev" or v >= 2)):
                raise ValueError(f"feature parameter {f.name} must be >= 2 (bb_nbdev > 0), got {v!r}")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> FeatureParams:
        """From the strategy file's mapping (or ``SignalsConfig.model_dump()``); absent keys keep the defaults."""
        kw: dict[str, Any] = {}
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for name, path in YAML_PATHS.items():
            node: Any = raw
            for key in path:
                node = node.get(key) if isinstance(node, Mapping) else None
            if node is not None:
                kw[name] = float(node) if types[name] == "float" else int(node)
        return cls(**kw)

    @classmethod
    def load(cls, path: Path | None = None) -> FeatureParams:
        """From a strategy file (the packaged one when ``path`` is None)."""
        p = path or DEFAULT_STRATEGIES_FILE
        raw = yaml.safe_load(p.read_text()) or {}
        if not isinstance(raw, Mapping):
            raise ValueError(f"{p}: top level must be a mapping, got {type(raw).__name__}")
        return cls.from_mapping(raw)


#: where each period sits in the strategy file
YAML_PATHS: dict[str, tuple[str, ...]] = {
    "atr_period": ("atr_period",),
    "rsi_period": ("rsi_period",),
    "adx_period": ("adx_period",),
    "ema_fast": ("strategies", "trend_pullback", "ema_fast"),
    "ema_slow": ("strategies", "trend_pullback", "ema_slow"),
    "bb_period": ("strategies", "mean_reversion", "bb_period"),
    "bb_nbdev": ("strategies", "mean_reversion", "bb_nbdev"),
    "volume_period": ("strategies", "momentum_breakout", "volume_period"),
    "lookback": ("strategies", "momentum_breakout", "lookback"),
    "rv_bars": ("strategies", "cheap_volatility", "rv_bars"),
}
