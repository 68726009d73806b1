"""The option-native cheap-volatility strategy on hand-built snapshots, and its realised-vol feature
against NumPy's sample variance."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from aiots.services.signals.config import SignalsConfig
from aiots.services.signals.features import MINUTES_PER_YEAR, RollingVariance, Snapshot, SymbolFeatures
from aiots.services.signals.models import Bar, Direction
from aiots.services.signals.strategies.cheap_volatility import CheapVolatility

T0 = 1_760_016_600 * 10**9


def snap(**kw: float) -> Snapshot:
    b = Bar("AAPL", T0, 100.0, 100.2, 99.9, 100.1, 5000)
    base = Snapshot(
        bar=b, prev_bar=b, atr=0.1, rsi=55, rsi_prev=54, adx=20, plus_di=25, minus_di=20, ema_fast=100.05,
        ema_fast_prev=100.0, ema_slow=99.9, bb_upper=101, bb_middle=100, bb_lower=99, volume_avg=4000,
        resistance=100.5, support=99.5, realized_vol=0.40, atm_iv=0.24,
    )  # fmt: skip
    return dataclasses.replace(base, **kw)


def test_cheap_iv_in_an_uptrend_is_a_bullish_idea() -> None:
    cfg = SignalsConfig()
    idea = CheapVolatility().evaluate(snap(), cfg)
    assert idea is not None and idea.direction is Direction.BULLISH
    c = cfg.strategies.cheap_volatility
    # 1 realised sigma over 60 one-minute bars, by hand
    assert idea.projected_move == pytest.approx(100.1 * 0.40 * math.sqrt(60 / MINUTES_PER_YEAR))
    assert idea.horizon_ns == c.horizon_bars * 60 * 10**9
    assert idea.reasons[0].value == pytest.approx(0.6) and idea.reasons[0].threshold == c.iv_rv_max


def test_rich_or_unknown_iv_and_no_trend_give_nothing() -> None:
    cfg = SignalsConfig()
    s = CheapVolatility()
    assert s.evaluate(snap(atm_iv=0.36), cfg) is None  # 0.9x realised: not cheap
    assert s.evaluate(snap(atm_iv=math.nan), cfg) is None
    assert s.evaluate(snap(realized_vol=0.02, atm_iv=0.01), cfg) is None  # dead tape
    assert s.evaluate(snap(ema_fast=99.85, ema_fast_prev=99.8), cfg) is None  # fast below slow yet rising
    down = s.evaluate(snap(ema_fast=99.8, ema_fast_prev=99.85, ema_slow=99.9), cfg)
    assert down is not None and down.direction is Direction.BEARISH and down.projected_move < 0


def test_a_proved_rich_iv_skips_the_read_and_an_unproved_one_reads_it() -> None:
    """The ATM IV read (IV solves) is skipped exactly when the book proves the IV is above
    iv_rv_max x realised vol (the same answer as reading it: no idea); otherwise it is read, and a
    cheap IV still gives the idea. The level asked for is that product, a hair above."""
    cfg = SignalsConfig()
    s = CheapVolatility()
    asked: list[float] = []

    def never() -> float:
        raise AssertionError("read although the bound was proved")

    def proved(level: float) -> bool:
        asked.append(level)
        return True

    rich = snap(atm_iv=math.nan).with_iv_source(never, proved)
    assert s.evaluate(rich, cfg) is None
    c = cfg.strategies.cheap_volatility
    assert asked == [pytest.approx(c.iv_rv_max * 0.40, rel=1e-9)] and asked[0] > c.iv_rv_max * 0.40
    reads: list[int] = []

    def source() -> float:
        reads.append(1)
        return 0.24

    cheap = snap(atm_iv=math.nan).with_iv_source(source, lambda _level: False)
    idea = s.evaluate(cheap, cfg)
    assert reads == [1] and idea is not None and idea.direction is Direction.BULLISH
    no_proof = snap(atm_iv=math.nan).with_iv_source(source)  # a book without the bound: read
    assert s.evaluate(no_proof, cfg) is not None and reads == [1, 1]


def test_snapshot_atm_iv_exceeds_uses_a_known_iv_first() -> None:
    assert snap(atm_iv=0.3).atm_iv_exceeds(0.29) and not snap(atm_iv=0.3).atm_iv_exceeds(0.3)
    assert not snap(atm_iv=math.nan).atm_iv_exceeds(0.01)  # nothing known, no source: no proof
    assert not snap(atm_iv=math.nan).with_iv_source(lambda: 0.5, None).atm_iv_exceeds(0.01)


def test_rolling_variance_matches_numpy() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1e-3, 2000)
    rv = RollingVariance(390)
    for i, v in enumerate(x):
        rv.push(float(v))
        if i >= 389:
            assert rv.value == pytest.approx(np.var(x[i - 389 : i + 1], ddof=1), rel=1e-9)
        else:
            assert math.isnan(rv.value)


def test_realised_vol_ignores_overnight_gaps() -> None:
    cfg = SignalsConfig()
    cfg.strategies.cheap_volatility.rv_bars = 30
    f = SymbolFeatures(cfg)
    rng = np.random.default_rng(9)
    px = 100 * np.exp(np.cumsum(rng.normal(0, 5e-4, 40)))
    for i, p in enumerate(px):
        ts = T0 + i * 60 * 10**9 + (86_400 * 10**9 if i >= 20 else 0)  # a one-day gap after bar 19
        s = f.update(Bar("AAPL", ts, float(p), float(p), float(p), float(p), 1000))
    r = np.diff(np.log(px))
    r = np.delete(r, 19)  # the return across the gap is not a 1-minute return
    assert s is not None
    assert s.realized_vol == pytest.approx(np.std(r[-30:], ddof=1) * math.sqrt(MINUTES_PER_YEAR), rel=1e-9)
