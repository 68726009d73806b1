"""Type stub for the compiled aiots.core.quote_bounds (see core/quote_bounds.pyx)."""

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
F64 = npt.NDArray[np.float64]

class GainMargins:
    def __init__(
        self,
        *,
        sigma_slack: float,
        price_slack: float,
        d_slack: float,
        bound_slack: float,
        max_condition: float,
        abs_slack: float,
    ) -> None: ...

def all_settled(
    is_call: bool,
    S: float,
    r: float,
    sigma: float,
    half_spread_frac: float,
    min_half_spread: float,
    tick: float,
    K: ArrayLike,
    T: ArrayLike,
    dS: float,
    trading_days: float,
    delta_min: float,
    delta_max: float,
    prefilter_margin: float,
    spread_cover: float,
    margins: GainMargins,
) -> bool: ...
def settled(
    is_call: bool,
    S: float,
    r: float,
    sigma: float,
    half_spread_frac: float,
    min_half_spread: float,
    tick: float,
    K: ArrayLike,
    T: ArrayLike,
    dS: float,
    trading_days: float,
    delta_min: float,
    delta_max: float,
    prefilter_margin: float,
    spread_cover: float,
    margins: GainMargins,
) -> npt.NDArray[np.bool_]: ...
def iv_bracket(
    mid: ArrayLike,
    iv_eu: ArrayLike,
    S: float,
    K: ArrayLike,
    T: ArrayLike,
    r: float,
    q: float,
    is_call: bool,
    american: bool,
    margins: GainMargins,
) -> tuple[F64, F64]: ...
def gain_bounds(
    is_call: bool,
    S: float,
    K: ArrayLike,
    T: ArrayLike,
    r: float,
    q: float,
    sigma_lo: ArrayLike,
    sigma_hi: ArrayLike,
    dS: float,
    trading_days: float,
    delta_max: float,
    margins: GainMargins,
) -> tuple[F64, F64, F64]: ...
def bracket_gain_bounds(
    mid: ArrayLike,
    iv_eu: ArrayLike,
    S: float,
    K: ArrayLike,
    T: ArrayLike,
    r: float,
    q: float,
    is_call: bool,
    dS: float,
    trading_days: float,
    delta_max: float,
    margins: GainMargins,
) -> tuple[F64, F64, F64]: ...
