"""Type stub for the compiled aiots.core.candidates (see core/candidates.pyx)."""

import numpy as np
import numpy.typing as npt

def considered_rows(
    ts_ns: npt.NDArray[np.int64],
    is_call: npt.NDArray[np.uint8],
    open_interest: npt.NDArray[np.float64],
    volume: npt.NDArray[np.float64],
    ask_size: npt.NDArray[np.float64],
    bid: npt.NDArray[np.float64],
    ask: npt.NDArray[np.float64],
    expiry_code: npt.NDArray[np.int64],
    expiry_ok: npt.NDArray[np.uint8],
    now_ns: int,
    max_age_ns: int,
    want_call: bool,
    min_open_interest: float,
    min_volume: float,
    min_quote_size: float,
    min_premium: float,
    max_spread_frac: float,
) -> tuple[npt.NDArray[np.intp], int]: ...
