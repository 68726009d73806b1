"""Typed signatures of the compiled aiots.core.options module (see options.pyx for the docs)."""

from collections.abc import Sequence
from typing import Any, Final, Literal, overload

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
FloatOut = np.float64 | npt.NDArray[np.float64]
RecordOut = np.void | npt.NDArray[np.void]
Method = Literal[
    "bjerksund_stensland_2002", "bs2002", "bjerksund_stensland_1993", "baw", "barone_adesi_whaley", "binomial"
]
Tree = Literal["leisen_reimer", "lr", "crr"]
Dividends = Sequence[tuple[float, float]] | npt.NDArray[np.float64] | None

OK: Final[int]
BELOW_INTRINSIC: Final[int]
ABOVE_MAX: Final[int]
INVALID_INPUT: Final[int]
NO_CONVERGENCE: Final[int]
OUTSIDE_MODEL_RANGE: Final[int]
REASONS: Final[dict[int, str]]
GREEK_FIELDS: Final[tuple[str, ...]]
GREEKS_DTYPE: Final[np.dtype[Any]]
PRICE_GREEKS2_DTYPE: Final[np.dtype[Any]]
PRICE_GREEKS3_DTYPE: Final[np.dtype[Any]]
AMERICAN_GREEK_FIELDS: Final[tuple[str, ...]]
AMERICAN_GREEKS_DTYPE: Final[np.dtype[Any]]

def reason_name(code: int) -> str: ...
def _simd_isa() -> str: ...
def bs_price(
    S: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    sigma: ArrayLike,
    q: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> FloatOut: ...
def bs_greeks(
    S: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    sigma: ArrayLike,
    q: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> RecordOut: ...
def bs_price_greeks(
    S: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    sigma: ArrayLike,
    q: ArrayLike = 0.0,
    is_call: ArrayLike = True,
    third_order: bool = False,
) -> RecordOut: ...
def _parallel_thresholds(
    light: int | None = None,
    iv: int | None = None,
    am: int | None = None,
    heavy: int | None = None,
    am_iv: int | None = None,
) -> dict[str, int]: ...
def _out_pool(
    min_bytes: int | None = None,
    slots: int | None = None,
    max_bytes: int | None = None,
    stream_min_bytes: int | None = None,
) -> dict[str, int]: ...
def black76_price(
    F: ArrayLike, K: ArrayLike, T: ArrayLike, r: ArrayLike, sigma: ArrayLike, is_call: ArrayLike = True
) -> FloatOut: ...
def black76_greeks(
    F: ArrayLike, K: ArrayLike, T: ArrayLike, r: ArrayLike, sigma: ArrayLike, is_call: ArrayLike = True
) -> RecordOut: ...
def trader_units(greeks: RecordOut) -> RecordOut: ...
def norm_ppf(p: ArrayLike) -> FloatOut: ...
@overload
def implied_vol(
    price: ArrayLike,
    S: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    q: ArrayLike = 0.0,
    is_call: ArrayLike = True,
    style: Literal["european", "american"] = "european",
    return_reason: Literal[False] = False,
    *,
    method: Method = "bjerksund_stensland_2002",
    steps: int = 501,
    tree: Tree = "leisen_reimer",
    dividends: Dividends = None,
) -> FloatOut: ...
@overload
def implied_vol(
    price: ArrayLike,
    S: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    q: ArrayLike = 0.0,
    is_call: ArrayLike = True,
    style: Literal["european", "american"] = "european",
    *,
    return_reason: Literal[True],
    method: Method = "bjerksund_stensland_2002",
    steps: int = 501,
    tree: Tree = "leisen_reimer",
    dividends: Dividends = None,
) -> tuple[FloatOut, np.int8 | npt.NDArray[np.int8]]: ...
def american_price(
    S: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    sigma: ArrayLike,
    q: ArrayLike = 0.0,
    is_call: ArrayLike = True,
    method: Method = "bjerksund_stensland_2002",
    steps: int = 501,
    dividends: Dividends = None,
    *,
    tree: Tree = "leisen_reimer",
) -> FloatOut: ...
def modelled_atm_pair(
    S: float,
    K: float,
    t: float,
    r: float,
    sigma: float,
    q: float,
    half_frac: float,
    min_half: float,
    tick: float,
    tick_eps: float,
    price_scale: float,
    S_iv: float,
    T_iv: float,
    r_iv: float,
    q_iv: float,
) -> tuple[float, float, float, float, float, float] | None: ...
def american_greeks(
    S: ArrayLike,
    K: ArrayLike,
    T: ArrayLike,
    r: ArrayLike,
    sigma: ArrayLike,
    q: ArrayLike = 0.0,
    is_call: ArrayLike = True,
    method: Method = "binomial",
    steps: int = 501,
    dividends: Dividends = None,
    *,
    tree: Tree = "leisen_reimer",
    vol_bump: float = 1e-4,
    rate_bump: float = 1e-4,
) -> RecordOut: ...
def early_exercise_boundary(
    K: float, T: float, r: float, sigma: float, q: float = 0.0, n_points: int = 50, steps: int = 2000
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]: ...
