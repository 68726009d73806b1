"""aiots.core.patterns candlestick functions against TA-Lib (the `talib` package) bar for bar."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aiots.core import patterns as P

from ._pattern_bars import load_ohlcv, ohlcv_files, random_bars

talib = pytest.importorskip("talib")

NAMES = sorted(P.CANDLESTICK_PATTERNS)
PENETRATION = {"morning_star", "evening_star", "dark_cloud_cover"}


def _oracle(name: str, *arrays: np.ndarray, **kw: float) -> np.ndarray:
    return getattr(talib, P.TALIB_NAMES[name])(*arrays, **kw)


def _assert_same(name: str, ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.dtype == np.int32
    assert ours.shape == ref.shape
    bad = np.flatnonzero(ours != ref)
    assert bad.size == 0, f"{name}: {bad.size} mismatches, first at {bad[:5]}: {ours[bad[:5]]} vs {ref[bad[:5]]}"


@pytest.fixture(scope="module")
def million() -> tuple[np.ndarray, ...]:
    return random_bars(1_000_000, seed=20240601)


def test_registry_is_complete() -> None:
    assert set(P.CANDLESTICK_PATTERNS) == set(P.TALIB_NAMES)
    assert len(NAMES) == 15
    for name in NAMES:
        assert hasattr(talib, P.TALIB_NAMES[name])


def test_real_csv_parity(shared_data: Path) -> None:
    files = ohlcv_files(shared_data)
    assert files, "no OHLC CSVs found"
    for path in files:
        o, h, lo, c, _ = load_ohlcv(path)
        scanned = P.scan_candlesticks(o, h, lo, c)
        for name in NAMES:
            ref = _oracle(name, o, h, lo, c)
            _assert_same(f"{path.name}:{name}", P.CANDLESTICK_PATTERNS[name](o, h, lo, c), ref)
            _assert_same(f"{path.name}:{name} (scan)", scanned[name], ref)


@pytest.mark.slow
def test_million_random_bars_parity(million: tuple[np.ndarray, ...]) -> None:
    o, h, lo, c = million
    scanned = P.scan_candlesticks(o, h, lo, c)
    for name in NAMES:
        ref = _oracle(name, o, h, lo, c)
        # The random set must exercise every pattern (else the parity check proves nothing).
        assert np.count_nonzero(ref) >= 100, f"{name} fired only {np.count_nonzero(ref)} times"
        _assert_same(name, scanned[name], ref)
    # Both signs and the +-80 variants are exercised where TA-Lib has them.
    for name in ("engulfing", "harami"):
        assert set(np.unique(scanned[name])) == {-100, -80, 0, 80, 100}
    for name in ("marubozu", "spinning_top"):
        assert set(np.unique(scanned[name])) == {-100, 0, 100}


@pytest.mark.parametrize("penetration", [0.0, 0.1, 0.5, 0.9, 2.0])
@pytest.mark.parametrize("name", sorted(PENETRATION))
def test_penetration_parity(name: str, penetration: float) -> None:
    o, h, lo, c = random_bars(100_000, seed=7)
    ref = _oracle(name, o, h, lo, c, penetration=penetration)
    _assert_same(name, P.CANDLESTICK_PATTERNS[name](o, h, lo, c, penetration=penetration), ref)
    _assert_same(name, P.CANDLESTICK_PATTERNS[name](o, h, lo, c, penetration), ref)


def test_nan_and_inf_parity() -> None:
    """Leading NaNs shift the lookback; interior NaN/inf poison running sums exactly as in C."""
    rng = np.random.default_rng(11)
    arrays = [a.copy() for a in random_bars(100_000, seed=3)]
    for k, a in enumerate(arrays):
        a[: 3 + k] = np.nan
        a[rng.random(a.size) < 0.001] = np.nan
    arrays[1][rng.random(arrays[1].size) < 0.0005] = np.inf
    arrays[2][rng.random(arrays[2].size) < 0.0005] = -np.inf
    for name in NAMES:
        _assert_same(name, P.CANDLESTICK_PATTERNS[name](*arrays), _oracle(name, *arrays))


def test_short_and_all_nan_inputs_match_talib() -> None:
    o, h, lo, c = random_bars(40, seed=1)
    for n in range(0, 16):
        nan = np.full(n, np.nan)
        for name in NAMES:
            fn = P.CANDLESTICK_PATTERNS[name]
            _assert_same(name, fn(o[:n], h[:n], lo[:n], c[:n]), _oracle(name, o[:n], h[:n], lo[:n], c[:n]))
            _assert_same(name, fn(nan, nan, nan, nan), _oracle(name, nan, nan, nan, nan))
            assert fn(o[:n], h[:n], lo[:n], c[:n]).shape == (n,)


def test_hand_built_engulfing_and_doji() -> None:
    """Independent hand-derived cases (no oracle): a clear bullish engulfing and a doji."""
    o = np.array([10.0, 10.5, 10.0, 10.5, 10.0, 10.5, 10.0, 10.5, 10.0, 10.5, 10.6, 10.0, 10.2])
    c = np.array([10.5, 10.0, 10.5, 10.0, 10.5, 10.0, 10.5, 10.0, 10.5, 10.0, 10.1, 10.8, 10.2])
    h = np.maximum(o, c) + 0.1
    lo = np.minimum(o, c) - 0.1
    eng = P.cdl_engulfing(o, h, lo, c)
    assert eng[11] == 100  # black 10.6->10.1 then white 10.0->10.8 engulfs it
    assert eng[10] == 0  # black after black
    doji = P.cdl_doji(o, h, lo, c)
    assert doji[12] == 100  # open == close, range 0.2 vs average 0.7: body 0 <= 0.07
    assert doji[11] == 0
