"""Calibration: a walk-forward logistic fit recovers a known link, beats the base rate out of
sample, never looks ahead, and round-trips through its versioned JSON artifact."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiots.services.signals.calibration import (
    DEFAULT_FILE,
    READABLE_VERSIONS,
    Calibrator,
    Context,
    block_bootstrap_ci,
    fit,
    load_calibrator,
    walk_forward,
)


def synthetic(n: int, seed: int = 3) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Outcomes drawn from P = sigmoid(-1 + 0.5 logit(p_model) + 1.5 evidence): a known truth."""
    rng = np.random.default_rng(seed)
    pm = rng.uniform(0.05, 0.95, n)
    ev = rng.uniform(0, 1, n)
    z = -1.0 + 0.5 * np.log(pm / (1 - pm)) + 1.5 * ev
    y = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-z))).astype(float)
    day0 = np.datetime64("2024-01-02")  # 50 outcomes a day: blocks are cut by date
    times = [f"{day0 + i // 50}T10:{i // 60 % 60:02d}:{i % 60:02d}-05:00" for i in range(n)]
    return times, pm, ev, y


def test_fit_recovers_the_true_link() -> None:
    _, pm, ev, y = synthetic(20_000)
    c = fit(pm, ev, y)
    assert c.intercept == pytest.approx(-1.0, abs=0.15)
    assert c.logit_p_model == pytest.approx(0.5, abs=0.1)
    assert c.evidence == pytest.approx(1.5, abs=0.2)


def test_walk_forward_is_out_of_sample_and_beats_the_base_rate() -> None:
    times, pm, ev, y = synthetic(5_000)
    wf = walk_forward(times, pm, ev, y, folds=5)
    assert wf.predicted.size == 4_000  # the first fold is never predicted
    assert wf.calibration.brier < wf.calibration.brier_base_rate
    assert wf.calibration.ece < 0.05
    # the raw p_model is miscalibrated against this truth; the calibrated one is better
    assert wf.calibration.brier < wf.raw_calibration.brier
    assert wf.final.n == 5_000 and wf.final.oos["n_oos"] == 4_000


def test_no_look_ahead() -> None:
    # the future is pure noise flipped against the past: a model that peeked would fit it
    times, pm, ev, y = synthetic(2_000)
    y2 = y.copy()
    y2[1_600:] = 1 - y2[1_600:]
    wf = walk_forward(times, pm, ev, y2, folds=5)
    # the last fold is predicted from the first 1,600 only, so its predictions are unchanged
    wf0 = walk_forward(times, pm, ev, y, folds=5)
    np.testing.assert_allclose(wf.predicted[-400:], wf0.predicted[-400:])


def test_too_few_outcomes_give_the_identity(tmp_path: Path) -> None:
    c = fit([0.3] * 5, [0.5] * 5, [1, 0, 1, 0, 1])
    assert c.identity and c(0.37, 0.9) == pytest.approx(0.37)


def test_artifact_round_trip_and_loading(tmp_path: Path) -> None:
    c = Calibrator(-0.5, 0.8, 0.3, 1234, "2024-02-01", "2024-05-31", {"brier": 0.2})
    p = tmp_path / "cal.json"
    p.write_text(c.to_json())
    back = load_calibrator(p)
    assert back == c
    z = -0.5 + 0.8 * math.log(0.4 / 0.6) + 0.3 * 0.7
    assert back(0.4, 0.7) == pytest.approx(1 / (1 + math.exp(-z)))
    assert load_calibrator(tmp_path / "missing.json").identity
    p.write_text('{"version": 99}')
    with pytest.raises(ValueError, match="version 99"):
        load_calibrator(p)


def test_the_packaged_artifact_loads() -> None:
    c = load_calibrator(DEFAULT_FILE)
    assert c.version in READABLE_VERSIONS and c.window_start < c.window_end
    assert 0.0 <= c(0.5, 0.5, Context("mean_reversion", 0.03, 0.5, 45.0)) <= 1.0


def test_a_version_1_artifact_still_loads(tmp_path: Path) -> None:
    p = tmp_path / "v1.json"
    p.write_text(
        '{"evidence": 1.5, "intercept": -1.0, "logit_p_model": 0.5, "n": 61, "oos": {}, "version": 1,'
        ' "window_end": "b", "window_start": "a"}'
    )
    c = load_calibrator(p)
    z = -1.0 + 0.5 * math.log(0.3 / 0.7) + 1.5 * 0.2
    assert c(0.3, 0.2, Context("momentum_breakout", 0.02, 1.0, 60.0)) == pytest.approx(1 / (1 + math.exp(-z)))


def contextual(n: int, seed: int = 5) -> tuple[list[str], np.ndarray, np.ndarray, list[Context], np.ndarray]:
    """A known truth where the strategy and the reward:risk carry the edge and p_model carries none:
    logit P = 0.3 - 1.2 log(rr) + 0.8 [strategy == a]; 20 outcomes a day."""
    rng = np.random.default_rng(seed)
    pm = rng.uniform(0.2, 0.8, n)
    ev = rng.uniform(0, 1, n)
    rr = np.exp(rng.uniform(-1.5, 0.5, n))
    strat = rng.choice(["a", "b", "c"], n)
    z = 0.3 - 1.2 * np.log(rr) + 0.8 * (strat == "a")
    y = (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-z))).astype(float)
    day0 = np.datetime64("2024-01-02")
    times = [f"{day0 + i // 20}T10:{i % 20:02d}:00-05:00" for i in range(n)]
    ctx = [Context(str(s), 0.03, float(r), 60.0) for s, r in zip(strat, rr, strict=True)]
    return times, pm, ev, ctx, y


def test_context_inputs_recover_the_known_link() -> None:
    _times, pm, ev, ctx, y = contextual(20_000)
    c = fit(pm, ev, y, contexts=ctx)
    # standardised coefficient / scale = the raw-scale slope
    coef, _mean, scale = c.extra["log_reward_risk"]
    assert coef / scale == pytest.approx(-1.2, abs=0.1)
    a, b = c.extra["strategy=a"], c.extra["strategy=b"]
    assert a[0] / a[2] - b[0] / b[2] == pytest.approx(0.8, abs=0.15)
    assert c.logit_p_model == pytest.approx(0.0, abs=0.1)
    assert "spread_frac" not in c.extra  # constant over the fit: carries nothing


def test_walk_forward_with_context_has_skill_where_the_truth_has_it() -> None:
    times, pm, ev, ctx, y = contextual(4_000)
    wf = walk_forward(times, pm, ev, y, folds=5, contexts=ctx)
    assert wf.calibration.brier < wf.brier_climatology
    assert wf.skill_ci[0] > 0  # the interval of brier(climatology) - brier(model) excludes 0
    # the version-1 inputs (p_model, evidence) carry nothing here: no skill, interval includes 0
    v1 = walk_forward(times, pm, ev, y, folds=5)
    assert v1.skill_ci[0] < 0


def test_blocks_never_split_a_session_and_the_reference_is_the_training_rate() -> None:
    times, pm, ev, ctx, y = contextual(1_010)  # 20 a day: a block edge at 202 would split a day
    wf = walk_forward(times, pm, ev, y, folds=5, contexts=ctx)
    first_oos = wf.dates[0]
    assert all(t[:10] < first_oos for t in sorted(times)[: 1_010 - wf.predicted.size])
    n_train = 1_010 - wf.predicted.size
    assert wf.climatology[0] == pytest.approx(float(np.mean(y[:n_train])))
    assert wf.brier_climatology == pytest.approx(float(np.mean((wf.climatology - wf.outcome) ** 2)))


def test_block_bootstrap_interval_against_scipy() -> None:
    from scipy.stats import bootstrap

    rng = np.random.default_rng(2)
    dates = [f"d{i}" for i in range(300)]  # one outcome per date: the block bootstrap is the plain one
    a, b = rng.normal(1.0, 1.0, 300), rng.normal(0.8, 1.0, 300)
    lo, hi = block_bootstrap_ci(dates, a, b, resamples=20_000)
    ref = bootstrap((a - b,), np.mean, n_resamples=20_000, method="percentile", random_state=3).confidence_interval
    assert lo == pytest.approx(ref.low, abs=0.03) and hi == pytest.approx(ref.high, abs=0.03)


def test_a_nearly_constant_input_is_left_out_and_extrapolation_is_clipped() -> None:
    _times, pm, ev, ctx, y = contextual(3_000)
    # modelled premiums: a 2.5 % spread with only cent-rounding noise -> no slope may come of it
    rng = np.random.default_rng(1)
    flat = [Context(c.strategy, 0.025 + float(rng.normal(0, 0.0005)), c.reward_risk, 60.0) for c in ctx]
    c = fit(pm, ev, y, contexts=flat)
    assert "spread_frac" not in c.extra and "log_reward_risk" in c.extra
    # a reward:risk far outside the fitted range moves the prediction no further than 3 sd would
    coef, mean, scale = c.extra["log_reward_risk"]
    far = c(0.5, 0.5, Context("a", 0.03, math.exp(mean + 50 * scale), 60.0))
    edge = c(0.5, 0.5, Context("a", 0.03, math.exp(mean + 3 * scale), 60.0))
    assert far == pytest.approx(edge, rel=1e-12) and coef < 0


@settings(max_examples=300, deadline=None)
@given(
    p=st.floats(allow_nan=True, allow_infinity=True),
    ev=st.floats(allow_nan=True, allow_infinity=True),
    strategy=st.sampled_from(["", "mean_reversion", "momentum_breakout", "cheap_volatility", "other"]),
    spread=st.floats(allow_nan=True, allow_infinity=True),
    rr=st.floats(allow_nan=True, allow_infinity=True),
    minutes=st.floats(allow_nan=True, allow_infinity=True),
)
def test_one_decision_equals_the_vectorised_prediction(
    p: float, ev: float, strategy: str, spread: float, rr: float, minutes: float
) -> None:
    """The selector's per-contract call (plain floats) and ``predict`` (NumPy) are one formula:
    the packaged artifact and one with a zero scale, on any input, NaN and infinities included."""
    ctx = Context(strategy, spread, rr, minutes)
    packaged = load_calibrator(None)
    degenerate = Calibrator(
        intercept=0.3, logit_p_model=0.8, evidence=0.5, n=50,
        extra={"spread_frac": (0.7, 0.02, 0.0), "strategy=mean_reversion": (0.4, 0.5, 0.5)},
    )  # fmt: skip
    for cal in (packaged, degenerate):
        one = cal(p, ev, ctx)
        many = float(cal.predict([p], [ev], [ctx])[0])
        assert one == pytest.approx(many, rel=1e-12, abs=1e-300), (cal, one, many)
