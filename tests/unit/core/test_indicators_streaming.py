"""Streaming classes against the batch functions (which are TA-Lib-checked): bit for bit on random
and real data; pickling mid-stream; reset; ready/value; scalar update equals update_many."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import talib

from aiots.core import indicators as ind

from ._indicator_cases import STREAMS, as_tuple, load_bars, ohlcv_files, random_walk


def _assert_same(stream_out: object, batch_out: object, label: str) -> None:
    for a, b in zip(as_tuple(stream_out), as_tuple(batch_out), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=label)


@pytest.fixture(scope="module")
def datasets(shared_data: Path) -> dict[str, tuple[np.ndarray, ...]]:
    files = ohlcv_files(shared_data)
    picked = [p for p in files if "1m" in p.name][:1] + [p for p in files if "1d" in p.name][:2]
    out = {p.name: load_bars(p) for p in picked}
    out["random"] = random_walk(20_000, seed=11)
    return out


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_matches_batch_bit_for_bit(name: str, datasets: dict[str, tuple[np.ndarray, ...]]) -> None:
    args, feed, batch = STREAMS[name]
    for dname, d in datasets.items():
        obj = getattr(ind, name)(*args)
        _assert_same(feed(obj, d), batch(*d), f"{name} {dname}")


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_pickle_mid_stream_restores_state_exactly(name: str) -> None:
    args, feed, _ = STREAMS[name]
    d = random_walk(600, seed=3)
    first = tuple(a[:250] for a in d)
    rest = tuple(a[250:] for a in d)
    obj = getattr(ind, name)(*args)
    feed(obj, first)
    clone = pickle.loads(pickle.dumps(obj))
    assert clone.ready == obj.ready
    _assert_same(feed(clone, rest), feed(obj, rest), f"{name} pickled")
    assert repr(clone) == repr(obj)


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_reset_and_ready(name: str) -> None:
    args, feed, batch = STREAMS[name]
    d = random_walk(400, seed=5)
    obj = getattr(ind, name)(*args)
    assert not obj.ready
    assert np.isnan(as_tuple(obj.value)).all()
    feed(obj, d)
    assert obj.ready
    last = tuple(x[-1] for x in as_tuple(batch(*d)))
    np.testing.assert_array_equal(as_tuple(obj.value), last)
    obj.reset()
    assert not obj.ready
    _assert_same(feed(obj, d), batch(*d), f"{name} after reset")


def test_scalar_update_equals_block() -> None:
    h, lo, c, _v = random_walk(300, seed=9)
    e, r, m, a = ind.EMA(10), ind.RSI(14), ind.MACD(), ind.ADX(14)
    outs = np.array([e.update(x) for x in c])
    np.testing.assert_array_equal(outs, ind.ema(c, period=10))
    np.testing.assert_array_equal(np.array([r.update(x) for x in c]), ind.rsi(c))
    macd_rows = np.array([m.update(x) for x in c])
    for k, ref in enumerate(ind.macd(c)):
        np.testing.assert_array_equal(macd_rows[:, k], ref)
    np.testing.assert_array_equal(np.array([a.update(*bar) for bar in zip(h, lo, c, strict=True)]), ind.adx(h, lo, c))
    np.testing.assert_array_equal(a.plus_di, ind.plus_di(h, lo, c)[-1])
    np.testing.assert_array_equal(a.minus_di, ind.minus_di(h, lo, c)[-1])


def test_vwap_stream_sessions() -> None:
    h, lo, c, v = random_walk(50, seed=2)
    starts = np.zeros(50, dtype=bool)
    starts[[0, 17, 33]] = True
    obj = ind.VWAP()
    got = np.array([obj.update(h[i], lo[i], c[i], v[i], bool(starts[i])) for i in range(50)])
    np.testing.assert_array_equal(got, ind.vwap(h, lo, c, v, session_start=starts))


def test_stream_param_validation() -> None:
    with pytest.raises(ValueError, match="period must be >= 2, got 1"):
        ind.RSI(1)
    with pytest.raises(ValueError, match="acceleration must be >= 0"):
        ind.SAR(-0.1, 0.2)
    with pytest.raises(ValueError, match="nbdev_up must be finite"):
        ind.BBands(20, float("nan"), 2.0)


def test_handle_bar_reads_bar_objects_and_mappings() -> None:
    """handle_bar takes a NautilusTrader-style bar (attributes) or a mapping and feeds the indicator's
    registered inputs: the values match update() fed by hand and the batch function (TA-Lib checked)."""
    from collections import namedtuple

    import numpy as np

    from aiots.core import indicators as ind

    rng = np.random.default_rng(4)
    n = 200
    c = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    h = c * 1.01
    lo = c * 0.99
    v = rng.uniform(1e3, 1e4, n)
    Bar = namedtuple("Bar", "open high low close volume")
    atr_obj, atr_map, mfi_obj, ema_map = ind.ATR(14), ind.ATR(14), ind.MFI(14), ind.EMA(10)
    assert not atr_obj.initialized
    for i in range(n):
        bar = Bar(c[i], h[i], lo[i], c[i], v[i])
        a = atr_obj.handle_bar(bar)
        b = atr_map.handle_bar(bar._asdict())
        assert (np.isnan(a) and np.isnan(b)) or a == b
        mfi_obj.handle_bar(bar)
        ema_map.handle_bar({"close": c[i]})
    assert atr_obj.initialized and atr_obj.ready
    assert atr_obj.value == ind.atr(h, lo, c)[-1]
    assert mfi_obj.value == ind.mfi(h, lo, c, v)[-1]
    assert ema_map.value == ind.ema(c, period=10)[-1]
    with pytest.raises(ValueError, match="no field 'volume'"):
        ind.MFI(14).handle_bar({"high": 1.0, "low": 1.0, "close": 1.0})
    with pytest.raises(ValueError, match="not a number"):
        ind.EMA(3).handle_bar({"close": "abc"})
    atr_obj.reset()
    assert not atr_obj.initialized


def test_handle_bar_equals_update_for_every_registered_stream() -> None:
    """For every streaming class in INDICATORS, handle_bar(bar) feeds the registered inputs in order:
    the same values as update(*inputs), bar after bar (checked against a twin fed by update)."""
    from types import SimpleNamespace

    import numpy as np

    from aiots.core import indicators as ind

    rng = np.random.default_rng(8)
    n = 120
    c = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    cols = {"open": c, "high": c * 1.01, "low": c * 0.99, "close": c, "volume": rng.uniform(1e3, 1e4, n)}
    checked = 0
    for spec in ind.INDICATORS.values():
        if spec.stream is None:
            continue
        a, b = spec.stream(), spec.stream()
        for i in range(n):
            bar = SimpleNamespace(**{k: float(v[i]) for k, v in cols.items()})
            got = a.handle_bar(bar)
            want = b.update(*(getattr(bar, f) for f in spec.inputs))
            np.testing.assert_array_equal(
                np.asarray(got, dtype=float), np.asarray(want, dtype=float), err_msg=spec.name
            )
        assert a.initialized == b.ready, spec.name
        checked += 1
    assert checked >= 20


def test_adx_update_many_di_matches_talib_in_chunks() -> None:
    """``ADX.update_many_di`` fed in uneven chunks: the ADX, +DI and -DI after each bar equal TA-Lib's
    ADX/PLUS_DI/MINUS_DI over the whole series, and the stream's last ``plus_di``/``minus_di``."""
    h, lo, c, _v = random_walk(1_000, seed=21)
    a = ind.ADX(14)
    parts = [a.update_many_di(h[i:j], lo[i:j], c[i:j]) for i, j in ((0, 5), (5, 13), (13, 400), (400, 1_000))]
    got = [np.concatenate([p[k] for p in parts]) for k in range(3)]
    for mine, ref in zip(
        got, (talib.ADX(h, lo, c, 14), talib.PLUS_DI(h, lo, c, 14), talib.MINUS_DI(h, lo, c, 14)), strict=True
    ):
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(ref))
        np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=0)
    assert (a.plus_di, a.minus_di) == (got[1][-1], got[2][-1])
