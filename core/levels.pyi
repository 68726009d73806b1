"""Typed signatures of the compiled aiots.core.levels module (see levels.pyx for the docs)."""

from typing import overload

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
F64 = npt.NDArray[np.float64]
Levels = tuple[npt.NDArray[np.bool_], F64, F64, F64, F64, F64, F64, F64, F64, F64, F64, npt.NDArray[np.int64], F64]

def exit_for_return(entry_price: float, pct: float, fee_per_share: float) -> float: ...
@overload
def move_for_option_change(delta: float, gamma: float, theta_day: float, days: float, dv: float) -> float: ...
@overload
def move_for_option_change(
    delta: ArrayLike, gamma: ArrayLike, theta_day: ArrayLike, days: ArrayLike, dv: ArrayLike
) -> F64 | float: ...
@overload
def race_probability(spot: float, upper: float, lower: float, sigma: float, mu: float) -> float: ...
@overload
def race_probability(
    spot: ArrayLike, upper: ArrayLike, lower: ArrayLike, sigma: ArrayLike, mu: ArrayLike
) -> F64 | float: ...
@overload
def reach_probability(spot: float, level: float, sigma: float, years: float, drift: float = 0.0) -> float: ...
@overload
def reach_probability(
    spot: ArrayLike, level: ArrayLike, sigma: ArrayLike, years: ArrayLike, drift: ArrayLike = 0.0
) -> F64 | float: ...
@overload
def expected_value(
    conf: float, p_model: float, p_stop: float, gain: float, loss: float, at_horizon: float
) -> float: ...
@overload
def expected_value(
    conf: ArrayLike, p_model: ArrayLike, p_stop: ArrayLike, gain: ArrayLike, loss: ArrayLike, at_horizon: ArrayLike
) -> F64 | float: ...
def contract_levels(
    bid: ArrayLike,
    ask: ArrayLike,
    multiplier: ArrayLike,
    iv: ArrayLike,
    delta: ArrayLike,
    gamma: ArrayLike,
    theta: ArrayLike,
    *,
    spot: float,
    move: float,
    trading_days: float,
    years: float,
    log_drift: float,
    bullish: bool,
    theta_days_per_year: float,
    sessions_per_year: float,
    noise_move: float,
    fee_per_contract: float,
    exit_fee_per_share: float,
    spread_cover: float,
    target_min_pct: float,
    target_max_pct: float,
    target_capture: float,
    stop_spread_mult: float,
    stop_noise_mult: float,
    max_stop_pct: float,
    min_reward_risk: float,
    risk_per_trade_usd: float,
) -> Levels: ...
