"""The strategy features, as the signal engine reads them: :mod:`aiots.services.features`.

The features are computed in one place (:class:`aiots.services.features.state.SymbolFeatures`):
live, analytics' live state feeds it each closed 1-minute bar once and publishes the snapshot on
``features:1m``, which the signals service turns back into a :class:`Snapshot`
(:func:`aiots.services.features.conversions.snapshot_from_event`); in a backtest the engine drives
the same class in-process. This module adds only the periods' source: the strategy config.
"""

from __future__ import annotations

from aiots.services.features.params import FeatureParams
from aiots.services.features.state import MINUTES_PER_YEAR as MINUTES_PER_YEAR
from aiots.services.features.state import RollingExtreme as RollingExtreme
from aiots.services.features.state import RollingVariance as RollingVariance
from aiots.services.features.state import Snapshot as Snapshot
from aiots.services.features.state import SymbolFeatures as _SymbolFeatures
from aiots.services.signals.config import SignalsConfig


def feature_params(cfg: SignalsConfig) -> FeatureParams:
    """The feature periods of a strategy config (the keys :data:`aiots.services.features.params.YAML_PATHS` names)."""
    return FeatureParams.from_mapping(cfg.model_dump())


class SymbolFeatures(_SymbolFeatures):
    """:class:`aiots.services.features.state.SymbolFeatures` with the periods of a strategy config."""

    def __init__(self, cfg: SignalsConfig | FeatureParams) -> None:
        super().__init__(cfg if isinstance(cfg, FeatureParams) else feature_params(cfg))
