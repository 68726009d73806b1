"""The options API's argument handling: the small-array fast path (every argument 0-d or 1-D and
C-contiguous) gives bit for bit what the general broadcasting path gives for the same values passed
as strided views, and the shapes numpy's broadcasting rules give."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import options as opt

Fn = Callable[[np.ndarray, ...], object]  # type: ignore[misc]


def strided(a: np.ndarray) -> np.ndarray:
    """The same values as a non-contiguous view (takes the general path)."""
    if a.ndim == 0:
        return a
    b = np.repeat(a, 2)[::2]
    assert not b.flags.c_contiguous or len(b) <= 1
    return b


CASES: dict[str, Callable[..., object]] = {
    "bs_price": lambda S, K, T, c: opt.bs_price(S, K, T, 0.03, 0.25, 0.01, c),
    "american_price": lambda S, K, T, c: opt.american_price(S, K, T, 0.03, 0.25, 0.01, c),
    "baw": lambda S, K, T, c: opt.american_price(S, K, T, 0.03, 0.25, 0.01, c, method="baw"),
    "bs_greeks": lambda S, K, T, c: opt.bs_greeks(S, K, T, 0.03, 0.25, 0.01, c),
    "implied_vol": lambda S, K, T, c: opt.implied_vol(np.asarray(S) * 0.05, S, K, T, 0.03, 0.01, c),
    "implied_vol_am": lambda S, K, T, c: opt.implied_vol(
        np.asarray(S) * 0.05, S, K, T, 0.03, 0.01, c, style="american"
    ),
}


def _as_bits(x: object) -> bytes:
    a = np.asarray(x)
    return a.tobytes() + repr((a.shape, a.dtype)).encode()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 9),
    shapes=st.tuples(*(st.sampled_from(["n", "1", "0d"]) for _ in range(4))),
    seed=st.integers(0, 2**31),
)
@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_path_equals_general_path(name: str, n: int, shapes: tuple[str, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    full = (
        rng.uniform(80, 120, n),
        rng.uniform(70, 130, n),
        rng.uniform(1 / 365, 1.0, n),
        rng.integers(0, 2, n).astype(bool),
    )
    args = []
    for kind, a in zip(shapes, full, strict=True):
        args.append(a if kind == "n" else a[:1] if kind == "1" else np.asarray(a[0]))
    fn = CASES[name]
    fast = fn(*args)
    general = fn(*(strided(a) for a in args))
    assert _as_bits(fast) == _as_bits(general)
    want = np.broadcast_shapes(*(np.shape(a) for a in args))
    assert np.shape(fast) == want


def test_mismatched_lengths_still_name_the_argument() -> None:
    with pytest.raises(ValueError, match="K has shape"):
        opt.bs_price(np.ones(3), np.ones(4), 0.5, 0.01, 0.2)


def test_scalars_give_a_scalar_and_inputs_are_not_modified() -> None:
    K = np.array([90.0, 100.0, 110.0])
    before = K.copy()
    out = opt.bs_price(100.0, K, 0.5, 0.01, 0.2)
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    assert np.array_equal(K, before)
    assert np.ndim(opt.bs_price(100.0, 100.0, 0.5, 0.01, 0.2)) == 0
