"""The options API's argument handling: the small-call fast paths (every argument a Python float /
bool or a float64 / bool ndarray that is 0-d or 1-D and C-contiguous) give bit for bit what the
general broadcasting path gives for the same values passed as strided views or ndarray subclasses
(which the fast paths refuse), and the shapes and scalar types numpy's broadcasting rules give."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.core import options as opt

Arg = float | bool | np.ndarray


class _Sub(np.ndarray):
    """An ndarray subclass: the fast paths take only exact ndarrays, so this forces the general path."""


def strided(a: np.ndarray) -> np.ndarray:
    """The same values as a non-contiguous view (takes the general path)."""
    if a.ndim == 0:
        return a
    b = np.repeat(a, 2)[::2]
    assert not b.flags.c_contiguous or len(b) <= 1
    return b


def general(a: Arg) -> np.ndarray:
    """The same values in a form only the general path accepts."""
    if isinstance(a, np.ndarray) and a.ndim > 0:
        return strided(a).view(_Sub)
    return np.asarray(a).view(_Sub)


# Arguments: price, S, K, T, r, sigma, q, is_call.
CASES: dict[str, Callable[..., object]] = {
    "bs_price": lambda P, S, K, T, r, v, q, c: opt.bs_price(S, K, T, r, v, q, c),
    "american_price": lambda P, S, K, T, r, v, q, c: opt.american_price(S, K, T, r, v, q, c),
    "baw": lambda P, S, K, T, r, v, q, c: opt.american_price(S, K, T, r, v, q, c, method="baw"),
    "bs_greeks": lambda P, S, K, T, r, v, q, c: opt.bs_greeks(S, K, T, r, v, q, c),
    "black76_greeks": lambda P, S, K, T, r, v, q, c: opt.black76_greeks(S, K, T, r, v, c),
    "implied_vol": lambda P, S, K, T, r, v, q, c: opt.implied_vol(P, S, K, T, r, q, c, return_reason=True),
    "implied_vol_am": lambda P, S, K, T, r, v, q, c: opt.implied_vol(
        P, S, K, T, r, q, c, style="american", return_reason=True
    ),
    "implied_vol_am_crr": lambda P, S, K, T, r, v, q, c: opt.implied_vol(
        P, S, K, T, r, q, c, style="american", method="binomial", steps=31, tree="crr", return_reason=True
    ),
    "implied_vol_am_baw": lambda P, S, K, T, r, v, q, c: opt.implied_vol(
        P, S, K, T, r, q, c, style="american", method="baw"
    ),
}


# Which of the eight generated arguments each case passes on (the rest do not shape its result).
PRICE_ARGS = (1, 2, 3, 4, 5, 6, 7)
USED: dict[str, tuple[int, ...]] = {name: PRICE_ARGS for name in CASES}
USED["black76_greeks"] = (1, 2, 3, 4, 5, 7)
for _iv in ("implied_vol", "implied_vol_am", "implied_vol_am_baw", "implied_vol_am_crr"):
    USED[_iv] = (0, 1, 2, 3, 4, 6, 7)


def _as_bits(x: object) -> bytes:
    parts = x if isinstance(x, tuple) else (x,)
    out = b""
    for p in parts:
        a = np.asarray(p)
        out += a.tobytes() + repr((type(p), a.shape, a.dtype)).encode()
    return out


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 9),
    shapes=st.tuples(*(st.sampled_from(["n", "1", "0d", "py"]) for _ in range(8))),
    seed=st.integers(0, 2**31),
)
@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_path_equals_general_path(name: str, n: int, shapes: tuple[str, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    S = rng.uniform(80, 120, n)
    full = (
        S * rng.uniform(0.005, 0.25, n),
        S,
        rng.uniform(70, 130, n),
        rng.uniform(1 / 365, 1.0, n),
        rng.uniform(-0.01, 0.08, n),
        rng.uniform(0.05, 0.8, n),
        rng.uniform(0.0, 0.05, n),
        rng.integers(0, 2, n).astype(bool),
    )
    args: list[Arg] = []
    for kind, a in zip(shapes, full, strict=True):
        if kind == "n":
            args.append(a)
        elif kind == "1":
            args.append(a[:1])
        elif kind == "0d":
            args.append(np.asarray(a[0]))
        else:
            args.append(a[0].item())  # a Python float / bool
    fn = CASES[name]
    fast = fn(*args)
    slow = fn(*(general(a) for a in args))
    assert _as_bits(fast) == _as_bits(slow)
    want = np.broadcast_shapes(*(np.shape(args[i]) for i in USED[name]))
    first = fast[0] if isinstance(fast, tuple) else fast
    assert np.shape(first) == want
    assert isinstance(first, np.ndarray) == (want != ())


def test_mismatched_lengths_still_name_the_argument() -> None:
    with pytest.raises(ValueError, match="K has shape"):
        opt.bs_price(np.ones(3), np.ones(4), 0.5, 0.01, 0.2)
    with pytest.raises(ValueError, match="K has shape"):
        opt.american_price(np.ones(3), np.ones(4), 0.5, 0.01, 0.2)


def test_bad_arguments_still_raise_the_general_messages() -> None:
    with pytest.raises(ValueError, match="method:"):
        opt.american_price(100.0, 100.0, 0.5, 0.01, 0.2, method="nope")
    with pytest.raises(ValueError, match="steps:"):
        opt.implied_vol(5.0, 100.0, 100.0, 0.5, 0.01, style="american", steps=2)
    with pytest.raises(ValueError, match="is_call: expected bool"):
        opt.implied_vol(5.0, 100.0, 100.0, 0.5, 0.01, is_call=1.0)
    with pytest.raises(ValueError, match="sigma: expected real numbers"):
        opt.bs_greeks(100.0, 100.0, 0.5, 0.01, "x")


def test_scalars_give_a_scalar_and_inputs_are_not_modified() -> None:
    K = np.array([90.0, 100.0, 110.0])
    before = K.copy()
    out = opt.bs_price(100.0, K, 0.5, 0.01, 0.2)
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    assert np.array_equal(K, before)
    assert np.ndim(opt.bs_price(100.0, 100.0, 0.5, 0.01, 0.2)) == 0
