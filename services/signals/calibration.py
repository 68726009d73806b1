"""Calibrated confidence: P(target before stop or horizon) from what the engine knows at decision time.

A logistic model ``P = sigmoid(b0 + b1 * logit(p_model) + b2 * evidence + sum_j c_j * z_j)`` fitted
on backtest outcomes (1 = TARGET, 0 = any other exit). The extra inputs ``z_j`` come from the
decision's :class:`Context`: the quoted spread as a fraction of the mid, the log of the net
reward:risk (fees in), the share of a session the horizon spans, and the strategy (one indicator per
strategy seen in the fit). Each extra input is standardised with the training mean and scale stored in
the artifact; a missing value is imputed with that mean (contributes 0).

Fitting is maximum likelihood with a ridge penalty (``RIDGE`` on the standardised slopes, fixed before
any data was looked at; the intercept is not penalised). :func:`walk_forward` cuts the outcomes into
consecutive blocks **by date** (a session is never split) and predicts each block from a fit on the
blocks before it, so the reported Brier score, ECE and reliability table are out of sample. The
reference is the climatological forecast: the hit rate of the training blocks, predicted for every
outcome of the next block. The fitted coefficients ship as a small versioned JSON artifact
(``calibration.json`` beside this module) with the data window they came from, and are loaded at start.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from aiots.core.stats import Calibration, brier_score, calibration

DEFAULT_FILE = Path(__file__).with_name("calibration.json")
ARTIFACT_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: p_model and evidence only (no extra inputs)
P_CLIP = 1e-4  # logit(p) is taken of p clipped to [P_CLIP, 1 - P_CLIP]
RIDGE = 1.0  # L2 penalty on the standardised slopes (scikit-learn's default C = 1); never tuned on outcomes
MIN_FIT_OUTCOMES = 30
MIN_SCALE = 1e-9
# An input whose spread over the fit is under this share of its mean is treated as constant and left
# out: modelled premiums carry a fixed 1.25 % half-spread, whose cent rounding alone must not become a
# slope that live spreads (2-5 %) would extrapolate tens of standard deviations.
MIN_RELATIVE_SCALE = 0.05
Z_CLIP = 3.0  # standardised inputs are clipped to +-3 training standard deviations when predicting
BOOTSTRAP_RESAMPLES = 2000
MINUTES_PER_SESSION = 390.0  # the horizon input is the share of a regular session it spans
NUMERIC = ("spread_frac", "log_reward_risk", "horizon_frac")


@dataclass(frozen=True)
class Context:
    """What the engine knows about a decision besides ``p_model`` and the evidence (NaN/'' = unknown)."""

    strategy: str = ""
    spread_frac: float = math.nan  # (ask - bid) / mid of the contract bought
    reward_risk: float = math.nan  # net gain at the target / net loss at the stop, fees in
    horizon_minutes: float = math.nan  # regular-session minutes until the horizon ends

    def values(self) -> dict[str, float]:
        rr = self.reward_risk
        return {
            "spread_frac": self.spread_frac,
            "log_reward_risk": math.log(rr) if math.isfinite(rr) and rr > 0 else math.nan,
            "horizon_frac": self.horizon_minutes / MINUTES_PER_SESSION,
        }


def _logit(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    q = np.clip(np.asarray(p, dtype=np.float64), P_CLIP, 1.0 - P_CLIP)
    return np.asarray(np.log(q / (1.0 - q)), dtype=np.float64)


def _extra_raw(contexts: Sequence[Context], names: Sequence[str]) -> npt.NDArray[np.float64]:
    """The extra inputs named ``names`` (numeric ones, then ``strategy=NAME`` indicators), NaN when unknown."""
    out = np.full((len(contexts), len(names)), np.nan)
    for i, c in enumerate(contexts):
        vals = c.values()
        for j, name in enumerate(names):
            if name.startswith("strategy="):
                out[i, j] = 1.0 if c.strategy == name[len("strategy=") :] else 0.0
            else:
                out[i, j] = vals.get(name, math.nan)
    return out


#: the extra inputs that are one-hot strategy indicators are named ``strategy=<name>``
STRATEGY_PREFIX = "strategy="


def _finite(x: float, nan: float) -> float:
    """``np.nan_to_num`` for one float: NaN -> ``nan``, +-inf -> +-the largest float."""
    if math.isnan(x):
        return nan
    return max(-sys.float_info.max, min(sys.float_info.max, x))


def _div(a: float, b: float) -> float:
    """``a / b`` as NumPy divides floats (x/0 -> +-inf, 0/0 -> NaN) instead of raising."""
    if b != 0.0:
        return a / b
    return math.nan if a == 0.0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1.0, b)


def _clip_numeric(z: npt.NDArray[np.float64], names: Sequence[str]) -> npt.NDArray[np.float64]:
    """Standardised numeric inputs clipped to +-``Z_CLIP``; strategy indicators left as they are."""
    numeric = np.array([not n.startswith("strategy=") for n in names])
    return np.where(numeric, np.clip(z, -Z_CLIP, Z_CLIP), z)


@dataclass(frozen=True)
class Calibrator:
    """The fitted logistic map; ``identity`` (no artifact) returns the model probability unchanged."""

    intercept: float = 0.0
    logit_p_model: float = 1.0
    evidence: float = 0.0
    n: int = 0
    window_start: str = ""
    window_end: str = ""
    oos: dict[str, Any] = field(default_factory=dict)
    version: int = ARTIFACT_VERSION
    #: extra inputs: name -> (coefficient on the standardised value, training mean, training scale)
    extra: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    base_rate: float = math.nan  # hit rate of the outcomes it was fitted on
    source: str = ""  # what it was fitted on (outcomes, sessions, symbols, pricing)

    @property
    def identity(self) -> bool:
        return self.n == 0

    def _z(
        self, p_model: npt.ArrayLike, evidence: npt.ArrayLike, contexts: Sequence[Context]
    ) -> npt.NDArray[np.float64]:
        pm = np.nan_to_num(np.atleast_1d(np.asarray(p_model, dtype=np.float64)), nan=0.5)
        ev = np.nan_to_num(np.atleast_1d(np.asarray(evidence, dtype=np.float64)), nan=0.0)
        z = self.intercept + self.logit_p_model * _logit(pm) + self.evidence * ev
        if self.extra:
            names = list(self.extra)
            raw = _extra_raw(contexts, names)
            coef = np.array([self.extra[k][0] for k in names])
            mean = np.array([self.extra[k][1] for k in names])
            scale = np.array([self.extra[k][2] for k in names])
            std = _clip_numeric(np.nan_to_num((raw - mean) / scale, nan=0.0), names)
            z = z + std @ coef
        return np.asarray(z, dtype=np.float64)

    def __call__(self, p_model: float, evidence: float, context: Context | None = None) -> float:
        """One decision's probability: :meth:`predict`'s arithmetic in plain floats (the selector
        calls this per contract; NumPy's per-call overhead was a fifth of a backtest's CPU)."""
        if self.identity:
            return float(min(1.0, max(0.0, p_model))) if math.isfinite(p_model) else 0.0
        q = min(max(_finite(p_model, 0.5), P_CLIP), 1.0 - P_CLIP)
        z = self.intercept + self.logit_p_model * math.log(q / (1.0 - q)) + self.evidence * _finite(evidence, 0.0)
        if self.extra:
            c = context or Context()
            vals = c.values()
            for name, (coef, mean, scale) in self.extra.items():
                indicator = name.startswith(STRATEGY_PREFIX)
                if indicator:
                    raw = 1.0 if c.strategy == name[len(STRATEGY_PREFIX) :] else 0.0
                else:
                    raw = vals.get(name, math.nan)
                std = _finite(_div(raw - mean, scale), 0.0)
                z += coef * (std if indicator else min(max(std, -Z_CLIP), Z_CLIP))
        return float(1.0 / (1.0 + math.exp(-z))) if z > -700 else 0.0

    def predict(
        self, p_model: npt.ArrayLike, evidence: npt.ArrayLike, contexts: Sequence[Context] | None = None
    ) -> npt.NDArray[np.float64]:
        if self.identity:
            return np.clip(np.nan_to_num(np.asarray(p_model, dtype=np.float64)), 0.0, 1.0)
        n = np.atleast_1d(np.asarray(p_model)).size
        z = self._z(p_model, evidence, contexts if contexts is not None else [Context()] * n)
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def to_json(self) -> str:
        raw = asdict(self)
        raw["extra"] = {k: list(v) for k, v in self.extra.items()}
        raw["base_rate"] = None if not math.isfinite(self.base_rate) else self.base_rate
        return json.dumps(raw, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Calibrator:
        raw: dict[str, Any] = json.loads(text)
        got = raw.get("version")
        if got not in READABLE_VERSIONS:
            raise ValueError(f"calibration artifact version {got!r}; this build reads {READABLE_VERSIONS}")
        raw["extra"] = {str(k): (float(v[0]), float(v[1]), float(v[2])) for k, v in raw.get("extra", {}).items()}
        br = raw.get("base_rate")
        raw["base_rate"] = math.nan if br is None else float(br)
        return cls(**raw)


def load_calibrator(path: Path | None = None) -> Calibrator:
    """The artifact at ``path`` (the packaged one when None); identity when the file is absent."""
    p = path or DEFAULT_FILE
    if not p.is_file():
        return Calibrator()
    return Calibrator.from_json(p.read_text())


def fit(
    p_model: npt.ArrayLike,
    evidence: npt.ArrayLike,
    hit: npt.ArrayLike,
    *,
    contexts: Sequence[Context] | None = None,
    window: tuple[str, str] = ("", ""),
    ridge: float = RIDGE,
) -> Calibrator:
    """Maximum-likelihood logistic fit (scipy BFGS, ridge on the standardised slopes); identity on too few.

    Without ``contexts`` only ``logit(p_model)`` and the evidence are inputs (the version-1 model)."""
    from scipy.optimize import minimize

    y = np.asarray(hit, dtype=np.float64)
    if y.size < MIN_FIT_OUTCOMES or y.min() == y.max():
        return Calibrator()
    pm = np.nan_to_num(np.asarray(p_model, dtype=np.float64), nan=0.5)
    ev = np.nan_to_num(np.asarray(evidence, dtype=np.float64), nan=0.0)
    cols = [_logit(pm), ev]
    names = ["logit_p_model", "evidence"]
    if contexts is not None:
        strategies = sorted({c.strategy for c in contexts if c.strategy})
        names += list(NUMERIC) + [f"strategy={s}" for s in strategies]
        raw = _extra_raw(contexts, names[2:])
        cols += [raw[:, j] for j in range(raw.shape[1])]
    x = np.column_stack(cols)
    finite = np.isfinite(x)
    count = finite.sum(axis=0)
    x0 = np.where(finite, x, 0.0)
    mean = x0.sum(axis=0) / np.maximum(count, 1)
    scale = np.sqrt(np.where(finite, (x - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count, 1))
    # an input (nearly) constant over the fit carries nothing, and can't be scaled or extrapolated
    keep = (scale > MIN_SCALE) & (scale > MIN_RELATIVE_SCALE * np.abs(mean))
    keep[:2] = True
    scale = np.where(scale > MIN_SCALE, scale, 1.0)
    xs = _clip_numeric(np.nan_to_num((x - mean) / scale, nan=0.0), names)[:, keep]
    design = np.column_stack([np.ones(y.size), xs])

    def loss(b: npt.NDArray[np.float64]) -> tuple[float, npt.NDArray[np.float64]]:
        z = design @ b
        p = 1.0 / (1.0 + np.exp(-z))
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z)) + ridge * 0.5 * float(b[1:] @ b[1:])
        grad = design.T @ (p - y) + ridge * np.concatenate([[0.0], b[1:]])
        return nll, grad

    res = minimize(loss, np.zeros(design.shape[1]), jac=True, method="BFGS")
    coef = np.zeros(x.shape[1])
    coef[keep] = res.x[1:]
    # back to the raw scale for p_model and evidence (the version-1 fields); extra inputs stay standardised
    b_pm, b_ev = coef[0] / scale[0], coef[1] / scale[1]
    b0 = float(res.x[0]) - b_pm * mean[0] - b_ev * mean[1]
    extra = {names[j]: (float(coef[j]), float(mean[j]), float(scale[j])) for j in range(2, len(names)) if keep[j]}
    return Calibrator(
        b0, float(b_pm), float(b_ev), int(y.size), window[0], window[1], extra=extra, base_rate=float(y.mean())
    )


@dataclass(frozen=True)
class WalkForward:
    """Out-of-sample predictions of a walk-forward fit and their calibration; ``final`` is fitted on all."""

    predicted: npt.NDArray[np.float64]
    outcome: npt.NDArray[np.float64]
    raw: npt.NDArray[np.float64]  # the uncalibrated p_model of the same outcomes
    climatology: npt.NDArray[np.float64]  # the training blocks' hit rate, the reference forecast
    dates: list[str]  # New York date of each out-of-sample outcome
    calibration: Calibration
    raw_calibration: Calibration
    brier_climatology: float
    skill_ci: tuple[float, float]  # 95% date-block bootstrap interval of brier(climatology) - brier(model)
    final: Calibrator


def _date_blocks(dates: Sequence[str], folds: int) -> list[int]:
    """Edges (indices into the time-sorted outcomes) of ``folds`` blocks of about equal size, each
    edge moved forward to the next change of date so that no session is split between blocks."""
    n = len(dates)
    edges = [0]
    for k in range(1, folds):
        i = max(round(k * n / folds), edges[-1])
        while 0 < i < n and dates[i] == dates[i - 1]:
            i += 1
        edges.append(i)
    edges.append(n)
    return edges


def block_bootstrap_ci(
    dates: Sequence[str], a: npt.ArrayLike, b: npt.ArrayLike, *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> tuple[float, float]:
    """95% percentile interval of mean(a) - mean(b), resampling whole dates (outcomes of one session
    are not independent)."""
    av, bv = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if av.size == 0:
        return (math.nan, math.nan)
    uniq = sorted(set(dates))
    idx = {d: i for i, d in enumerate(uniq)}
    g = np.array([idx[d] for d in dates])
    sa = np.bincount(g, weights=av, minlength=len(uniq))
    sb = np.bincount(g, weights=bv, minlength=len(uniq))
    cnt = np.bincount(g, minlength=len(uniq)).astype(np.float64)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(uniq), size=(resamples, len(uniq)))
    n = cnt[pick].sum(axis=1)
    diff = (sa[pick].sum(axis=1) - sb[pick].sum(axis=1)) / n
    lo, hi = np.percentile(diff, [2.5, 97.5])
    return (float(lo), float(hi))


def walk_forward(
    times: Sequence[str],
    p_model: npt.ArrayLike,
    evidence: npt.ArrayLike,
    hit: npt.ArrayLike,
    folds: int = 5,
    *,
    contexts: Sequence[Context] | None = None,
    seed: int = 0,
) -> WalkForward:
    """Sort by time, cut into ``folds`` blocks by date, predict block k from a fit on blocks < k.

    ``times`` are RFC 3339 New York times (their first 10 characters are the session's date). The
    first block is never predicted (nothing before it)."""
    order = np.argsort(np.asarray(times), kind="stable")
    pm = np.asarray(p_model, dtype=np.float64)[order]
    ev = np.asarray(evidence, dtype=np.float64)[order]
    y = np.asarray(hit, dtype=np.float64)[order]
    ts = [times[i] for i in order]
    ctx = [contexts[i] for i in order] if contexts is not None else None
    dates = [t[:10] for t in ts]
    edges = _date_blocks(dates, folds)
    preds, outs, raws, clims, oos_dates = [], [], [], [], []
    for k in range(1, folds):
        lo, hi = edges[k], edges[k + 1]
        if hi <= lo or lo == 0:
            continue
        model = fit(pm[:lo], ev[:lo], y[:lo], contexts=ctx[:lo] if ctx else None, window=(ts[0], ts[lo - 1]))
        preds.append(model.predict(pm[lo:hi], ev[lo:hi], ctx[lo:hi] if ctx else None))
        outs.append(y[lo:hi])
        raws.append(np.clip(np.nan_to_num(pm[lo:hi]), 0, 1))
        clims.append(np.full(hi - lo, float(y[:lo].mean())))
        oos_dates += dates[lo:hi]
    pred = np.concatenate(preds) if preds else np.empty(0)
    out = np.concatenate(outs) if outs else np.empty(0)
    raw = np.concatenate(raws) if raws else np.empty(0)
    clim = np.concatenate(clims) if clims else np.empty(0)
    final = fit(pm, ev, y, contexts=ctx, window=(ts[0], ts[-1]) if ts else ("", ""))
    cal = calibration(pred, out)
    b_clim = brier_score(clim, out) if out.size else math.nan
    ci = block_bootstrap_ci(oos_dates, (clim - out) ** 2, (pred - out) ** 2, seed=seed)
    if not final.identity:
        oos = {
            "brier": cal.brier,
            "brier_climatology": b_clim,
            "skill_ci": list(ci),
            "brier_base_rate": cal.brier_base_rate,
            "ece": cal.ece,
            "base_rate": cal.base_rate,
            "n_oos": float(out.size),
            "folds": folds,
        }
        final = Calibrator(**{**final.__dict__, "oos": oos})
    return WalkForward(pred, out, raw, clim, oos_dates, cal, calibration(raw, out), b_clim, ci, final)
