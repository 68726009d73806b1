"""Typed, documented strategy configuration, loaded from YAML and reloadable.

The default file ships with the package (``strategies.yaml`` beside this module); point
``AIOTS_SIGNALS__STRATEGIES_FILE`` at another one. :class:`ConfigSource` re-reads the file when
its modification time changes, so edits apply from the next closed bar without a restart.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from aiots.core.conventions import DEFAULT_RATE

log = logging.getLogger(__name__)

DEFAULT_FILE = Path(__file__).with_name("strategies.yaml")


class SelectionConfig(BaseModel):
    """How a contract is chosen and how target/stop are set (premiums in dollars per share).

    Levels are executable: entry at the ask, target and stop measured on the bid a long holder can
    sell at, returns after the execution model's fees on both legs.
    """

    dte_min: float = Field(2.0, ge=0, description="minimum calendar days to expiry")
    dte_max: float = Field(21.0, gt=0, description="maximum calendar days to expiry")
    delta_min: float = Field(0.30, ge=0, le=1, description="minimum |delta|")
    delta_max: float = Field(0.65, ge=0, le=1, description="maximum |delta|")
    max_spread_frac: float = Field(0.08, gt=0, description="(ask - bid) / mid at most")
    min_open_interest: float = Field(100.0, ge=0)
    min_volume: float = Field(10.0, ge=0)
    min_premium: float = Field(0.20, ge=0, description="mid at least, dollars per share")
    target_min_pct: float = Field(5.0, gt=0, description="smallest target gain on premium after costs, %")
    target_max_pct: float = Field(10.0, gt=0, description="largest target gain on premium after costs, %")
    target_capture: float = Field(0.6, gt=0, le=1, description="share of the expected move targeted")
    min_reward_risk: float = Field(0.3, ge=0, description="net reward / net risk at least (after costs)")
    max_stop_pct: float = Field(35.0, gt=0, description="largest loss on premium at the stop, after costs, %")
    stop_spread_mult: float = Field(2.0, ge=0, description="stop at least this many spreads below the entry")
    stop_noise_mult: float = Field(1.0, ge=0, description="and at least this many option noise units below it")
    noise_bars: int = Field(5, ge=1, description="bars of underlying ATR (through delta/gamma) in one noise unit")
    spread_cover: float = Field(2.0, ge=0, description="expected gain must exceed this x half-spread")
    min_quote_size: float = Field(1.0, ge=0, description="contracts quoted on the ask at least (when sizes are known)")
    event_iv_ratio: float = Field(
        1.5, gt=1, description="front-expiry ATM IV / next expiry's at or above this = event risk: skip the idea"
    )
    min_expected_value_pct: float = Field(
        0.0, description="expected value after costs at the calibrated probability, % of premium, above this"
    )
    max_iv_rank_debit: float = Field(80.0, ge=0, le=100, description="skip buying premium above this IV rank")
    low_iv_rank: float = Field(30.0, ge=0, le=100, description="IV rank counted as cheap premium")
    risk_free_rate: float = Field(DEFAULT_RATE, description="continuously compounded")

    @model_validator(mode="after")
    def _ranges(self) -> SelectionConfig:
        if self.dte_min >= self.dte_max:
            raise ValueError(f"dte_min ({self.dte_min}) must be < dte_max ({self.dte_max})")
        if self.delta_min >= self.delta_max:
            raise ValueError(f"delta_min ({self.delta_min}) must be < delta_max ({self.delta_max})")
        if self.target_min_pct > self.target_max_pct:
            raise ValueError("target_min_pct must be <= target_max_pct")
        return self


class ConfidenceConfig(BaseModel):
    """Confidence is the calibrated probability that the target is reached before the stop or the horizon.

    The calibration artifact (``calibration.json`` beside this module, refitted by ``aiots backtest
    --refit-calibration``) maps the model probability and the strategy evidence to that probability;
    without an artifact the confidence is the model probability itself. ``model_weight`` is kept for
    old configs and no longer used.
    """

    model_weight: float = Field(0.6, ge=0, le=1, description="unused (kept so older YAML files still load)")
    low_iv_bonus: float = Field(0.05, ge=0, le=0.5, description="added to evidence when IV rank is low")
    calibration_file: Path | None = Field(None, description="calibration artifact (JSON); the packaged one if unset")


class MarketHoursConfig(BaseModel):
    """When ideas may fire: regular hours only, after the opening minutes, horizons ending before the close."""

    open_delay_minutes: float = Field(5.0, ge=0, description="no signal in the first minutes (stale quotes)")
    close_buffer_minutes: float = Field(5.0, ge=0, description="every horizon ends this long before the close")
    min_horizon_minutes: float = Field(10.0, gt=0, description="skip ideas with less time than this left")


class SizingConfig(BaseModel):
    """Suggested size: contracts whose loss at the stop (after costs) fits the dollar risk per trade."""

    risk_per_trade_usd: float = Field(500.0, gt=0, description="dollars at risk per signal")


class MomentumBreakoutConfig(BaseModel):
    """Close breaks the highest high (lowest low) of ``lookback`` bars on heavy volume."""

    enabled: bool = True
    lookback: int = Field(20, ge=2)
    volume_mult: float = Field(1.5, gt=0, description="volume / SMA(volume, volume_period) at least")
    volume_period: int = Field(20, ge=2)
    breakout_atr: float = Field(0.1, ge=0, description="close beyond the level by this many ATRs")
    rsi_cap: float = Field(80.0, gt=50, le=100, description="skip exhausted moves (RSI beyond)")
    move_atr: float = Field(1.5, gt=0, description="projected move in ATRs")
    horizon_bars: int = Field(60, ge=1)


class MeanReversionConfig(BaseModel):
    """Close outside a Bollinger band with an RSI extreme and a reversal candle."""

    enabled: bool = True
    bb_period: int = Field(20, ge=2)
    bb_nbdev: float = Field(2.0, gt=0)
    rsi_low: float = Field(30.0, gt=0, lt=50)
    rsi_high: float = Field(70.0, gt=50, lt=100)
    move_atr_cap: float = Field(2.0, gt=0, description="projected move at most this many ATRs")
    horizon_bars: int = Field(45, ge=1)


class TrendPullbackConfig(BaseModel):
    """Pullback to a rising (falling) fast EMA in a strong trend (ADX)."""

    enabled: bool = True
    ema_fast: int = Field(20, ge=2)
    ema_slow: int = Field(50, ge=3)
    adx_min: float = Field(25.0, ge=0, le=100)
    touch_atr: float = Field(0.25, ge=0, description="low within this many ATRs of the EMA")
    move_atr: float = Field(1.2, gt=0)
    horizon_bars: int = Field(90, ge=1)


class CheapVolatilityConfig(BaseModel):
    """Option-native: buy premium in the trend's direction when the traded expiry's ATM implied
    volatility is cheap against the realised volatility of the underlying's 1-minute returns."""

    enabled: bool = True
    rv_bars: int = Field(390, ge=30, description="1-minute returns in the realised-vol window (one session)")
    iv_rv_max: float = Field(0.8, gt=0, description="ATM IV / realised vol at most this: premium is cheap")
    min_rv: float = Field(0.05, ge=0, description="annualised realised vol at least (ignore dead tape)")
    move_sigma: float = Field(1.0, gt=0, description="projected move in realised sigmas over the horizon")
    horizon_bars: int = Field(60, ge=1)


class StrategiesConfig(BaseModel):
    momentum_breakout: MomentumBreakoutConfig = Field(default_factory=MomentumBreakoutConfig)
    mean_reversion: MeanReversionConfig = Field(default_factory=MeanReversionConfig)
    trend_pullback: TrendPullbackConfig = Field(default_factory=TrendPullbackConfig)
    cheap_volatility: CheapVolatilityConfig = Field(default_factory=CheapVolatilityConfig)


class SignalsConfig(BaseModel):
    """Everything the engine reads from the YAML file."""

    atr_period: int = Field(14, ge=2)
    rsi_period: int = Field(14, ge=2)
    adx_period: int = Field(14, ge=2)
    cooldown_bars: int = Field(30, ge=0, description="bars before the same (symbol, strategy) fires again")
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    confidence: ConfidenceConfig = Field(default_factory=ConfidenceConfig)
    market_hours: MarketHoursConfig = Field(default_factory=MarketHoursConfig)
    sizing: SizingConfig = Field(default_factory=SizingConfig)
    strategies: StrategiesConfig = Field(default_factory=StrategiesConfig)

    @property
    def strategy_names(self) -> list[str]:
        return list(StrategiesConfig.model_fields)


def load_config(path: Path | None = None) -> SignalsConfig:
    """Parse and validate a YAML file (the packaged default when ``path`` is None)."""
    p = path or DEFAULT_FILE
    raw = yaml.safe_load(p.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{p}: top level must be a mapping, got {type(raw).__name__}")
    return SignalsConfig.model_validate(raw)


class ConfigSource:
    """Holds the current config and reloads it when the file changes (bad edits are logged and ignored)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or DEFAULT_FILE
        self._mtime = self.path.stat().st_mtime
        self.config = load_config(self.path)

    def current(self) -> SignalsConfig:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return self.config
        if mtime != self._mtime:
            self._mtime = mtime
            try:
                self.config = load_config(self.path)
                log.info("strategy config reloaded", extra={"path": str(self.path)})
            except (ValueError, ValidationError, yaml.YAMLError) as exc:
                log.error("strategy config rejected; keeping the previous one: %s", exc)
        return self.config
